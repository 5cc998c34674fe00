"""The pacing rule and the validation of HubSpot's rate-limit headers, on a fake clock (no network, no sleeping).

A request "goes" at the slot `reserve` gives it; the tests advance the clock to a slot as a waiting caller
would, and count the slots in every window as HubSpot would count arrivals."""

import bisect
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubspot_destination.hubspot.pacing import ARRIVAL_MARGIN_S, BURST_INTERVAL_S, Pacer, RateLimit, retry_after_s

WINDOW_S = BURST_INTERVAL_S + ARRIVAL_MARGIN_S
# Professional (190 per 10 s), two clients: a reserve of max(2, 190 // 20) = 9, each client (190 - 9) // 2.
LIMIT, SHARE, RESERVE, ALLOWANCE = 190, 2, 9, 90


class FakeClock:
    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def pacer(clock: FakeClock, limit: int | None = LIMIT, share: int = SHARE) -> Pacer:
    return Pacer(limit, share=share, clock=clock)


def window(max="190", remaining="190", interval="10000"):
    return RateLimit.from_headers(
        {
            "X-HubSpot-RateLimit-Max": max,
            "X-HubSpot-RateLimit-Remaining": remaining,
            "X-HubSpot-RateLimit-Interval-Milliseconds": interval,
        }
    )


def burst(paced: Pacer, most: int = 1000) -> list[float]:
    """Every slot the client may take now without waiting (up to `most`)."""
    slots = []
    while len(slots) < most and (taken := paced.reserve(latest_s=0.0)) is not None:
        slots.append(taken[0])
    return slots


def most_in_a_window(slots: list[float], length: float) -> int:
    """The most slots in any window `(end - length, end]`, as HubSpot counts a rolling window."""
    ordered = sorted(slots)
    return max((in_window(ordered, end, length) for end in ordered), default=0)


def in_window(ordered: list[float], end: float, length: float) -> int:
    # A slot exactly one window after another is outside it; `slot + length - length` may round below `slot`.
    return bisect.bisect_right(ordered, end) - bisect.bisect_right(ordered, end - length + 1e-9)


def test_without_headers_a_client_may_burst_its_share_of_the_tier_less_the_reserve():
    clock = FakeClock()
    paced = pacer(clock)
    assert paced.allowance() == ALLOWANCE == (LIMIT - RESERVE) // SHARE
    assert burst(paced) == [100.0] * ALLOWANCE  # at once, not one per 10 s / allowance
    assert paced.reserve() == (100.0 + WINDOW_S, WINDOW_S)  # the next one when the first left the window


def test_after_being_busy_elsewhere_a_client_catches_up_at_once_up_to_its_allowance():
    clock = FakeClock()
    paced = pacer(clock)
    assert len(burst(paced, most=10)) == 10  # a HubSpot phase of 10 upserts
    clock.now += 3.0  # other work: DynamoDB, building properties
    assert len(burst(paced)) == ALLOWANCE - 10  # the rest of the window's allowance, at once
    clock.now = 100.0 + WINDOW_S  # the first ten left the window
    assert len(burst(paced)) == 10
    clock.now += 60.0  # idle: the whole allowance again
    assert len(burst(paced)) == ALLOWANCE


# A caller's pattern: send n requests one after another (each waiting for its slot), reserve n at once (calls
# in flight, each waiting for its own slot), or be busy elsewhere for a while.
steps = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(1, 100)),
        st.tuples(st.just("in_flight"), st.integers(1, 10)),
        st.tuples(st.just("busy"), st.floats(0.0, 25.0)),
    ),
    max_size=30,
)


def run(paced: Pacer, clock: FakeClock, pattern) -> list[float]:
    slots: list[float] = []
    for kind, amount in pattern:
        if kind == "busy":
            clock.now += amount
            continue
        taken = [paced.reserve() for _ in range(amount if kind == "in_flight" else 1)]
        for _ in range(amount - 1 if kind == "send" else 0):
            clock.now = max(clock.now, taken[-1][0])  # waited for its slot, sent, answered
            taken.append(paced.reserve())
        assert all(t is not None and t[1] >= 0 for t in taken)
        slots += [t[0] for t in taken if t is not None]
        clock.now = max(clock.now, slots[-1])
    return slots


@given(steps)
def test_a_client_never_exceeds_its_allowance_in_any_window(pattern):
    clock = FakeClock()
    slots = run(pacer(clock), clock, pattern)
    assert slots == sorted(slots)
    assert most_in_a_window(slots, WINDOW_S) <= ALLOWANCE


@given(steps, steps)
def test_two_clients_of_share_2_together_stay_below_the_limit_less_the_reserve_in_every_window(first, second):
    clock = FakeClock()
    a, b = pacer(clock), pacer(clock)
    slots = []
    for one, other in zip(first, second, strict=False):  # interleaved, on one clock
        slots += run(a, clock, [one]) + run(b, clock, [other])
    assert most_in_a_window(slots, BURST_INTERVAL_S) <= LIMIT - RESERVE
    assert most_in_a_window(slots, WINDOW_S) <= LIMIT - RESERVE


@given(steps, st.lists(st.integers(0, 190), min_size=1, max_size=30))
def test_with_headers_every_request_goes_within_the_allowance_in_force_when_it_goes(pattern, remainings):
    clock = FakeClock()
    paced = pacer(clock)
    allowed = {}
    slots: list[float] = []
    for step, remaining in zip(pattern, remainings * len(pattern), strict=False):
        new = run(paced, clock, [step])
        allowed.update((slot, paced.allowance(at=slot)) for slot in new)
        slots += new
        if new:  # the answer to the last request comes back, telling what was left
            paced.observe(window(remaining=str(remaining)), slot=new[-1])
    ordered = sorted(slots)
    for end in ordered:
        assert in_window(ordered, end, WINDOW_S) <= allowed[end]
    assert most_in_a_window(slots, WINDOW_S) <= ALLOWANCE  # the headers never raise it above the tier's


def test_another_integration_using_the_budget_shrinks_the_allowance():
    clock = FakeClock()
    paced = pacer(clock)
    (first, _) = paced.reserve()
    # `Remaining` at the first request: another integration used 100 of the window, this client 1.
    paced.observe(window(remaining=str(LIMIT - 100 - 1)), slot=first)
    expected = (LIMIT - 100 - 1 + 1 * SHARE - RESERVE) // SHARE  # 41: what rolls out of the window counted once
    assert len(burst(paced)) == expected - 1


def test_a_full_window_leaves_the_tier_allowance():
    clock = FakeClock()
    paced = pacer(clock)
    (first, _) = paced.reserve()
    paced.observe(window(remaining=str(LIMIT - 1)), slot=first)
    assert len(burst(paced)) == ALLOWANCE - 1  # (189 + 2 - 9) // 2 = 91, never above the tier's 90


def test_headers_never_raise_the_allowance_above_the_tier_configured():
    clock = FakeClock()
    paced = pacer(clock, limit=100)  # the setting says free; the portal is an add-on one
    paced.observe(window(max="250", remaining="250"))
    assert len(burst(paced)) == (100 - 5) // 2


def test_requests_in_flight_are_not_counted_as_budget_twice():
    clock = FakeClock()
    paced = pacer(clock)
    first, _ = paced.reserve()
    for _ in range(4):  # four more sent before the first one's answer came back
        clock.now += 0.01
        paced.reserve()
    clock.now = first + 0.6
    # `Remaining` counted the first request only (another integration used 89): the four after it count in
    # the client's own window, not again as budget that rolls out.
    paced.observe(window(remaining="100"), slot=first)
    allowance = (100 + 1 * SHARE - RESERVE) // SHARE
    assert len(burst(paced)) == allowance - 5


def test_an_answer_to_an_older_request_than_the_one_observed_is_passed_over():
    clock = FakeClock()
    paced = pacer(clock)
    older, _ = paced.reserve()
    clock.now += 0.01
    newer, _ = paced.reserve()
    paced.observe(window(remaining="150"), slot=newer)
    paced.observe(window(remaining="0"), slot=older)  # came back last, knows less
    assert paced.allowance() == (150 + 2 * SHARE - RESERVE) // SHARE


def test_what_the_headers_said_expires_after_one_interval():
    clock = FakeClock()
    paced = pacer(clock)
    (first, _) = paced.reserve()
    paced.observe(window(remaining="0"), slot=first)  # nothing left: 1 request per window
    assert paced.allowance() == 1
    # The next slot is when the headers are outdated (one interval after the answer), not a window later.
    assert paced.reserve() == (100.0 + BURST_INTERVAL_S, BURST_INTERVAL_S)
    clock.now = 100.0 + BURST_INTERVAL_S
    assert len(burst(paced)) == ALLOWANCE - 2  # a warm client recovers on its own


def test_headers_of_another_window_than_the_one_paced_are_passed_over():
    clock = FakeClock()
    paced = pacer(clock)
    paced.observe(window(remaining="0", interval="1000"))  # a 1-s window: not the burst limit paced
    assert len(burst(paced)) == ALLOWANCE


@pytest.mark.parametrize(
    "poisoned",
    [
        {"interval": "999999999999"},
        {"interval": "86400000"},
        {"interval": "0"},
        {"interval": "-10000"},
        {"interval": "10000.5"},
        {"interval": "1e12"},
        {"interval": "ten"},
        {"interval": ""},
        {"max": "0"},
        {"max": "99999999999999999999"},
        {"remaining": "-1"},
        {"remaining": "191"},  # more left than the window holds
        {"remaining": "NaN"},
        {"remaining": "\u0661\u0669\u0660"},  # Arabic-Indic digits: str.isdigit says yes, int() reads 190
    ],
)
def test_a_header_out_of_its_range_counts_as_absent_and_leaves_the_allowance_alone(poisoned):
    headers = window(**poisoned, **({} if "remaining" in poisoned else {"remaining": "0"}))
    assert not headers.describes_window
    clock = FakeClock()
    paced = pacer(clock)
    paced.observe(headers)
    assert len(burst(paced)) == ALLOWANCE


def test_a_slot_further_than_the_caller_can_wait_is_not_reserved():
    clock = FakeClock()
    paced = pacer(clock)
    assert len(burst(paced)) == ALLOWANCE
    assert paced.reserve(latest_s=WINDOW_S - 0.1) is None  # nothing taken: the next caller gets the same slot
    assert paced.reserve(latest_s=WINDOW_S) == (100.0 + WINDOW_S, WINDOW_S)
    assert paced.reserve(latest_s=WINDOW_S) == (100.0 + WINDOW_S, WINDOW_S)
    clock.now = 100.0 + WINDOW_S
    assert paced.reserve(latest_s=-0.5) is None  # a caller with no time left gets nothing, not even now


def test_threads_reserving_at_once_never_exceed_the_allowance_in_any_window():
    clock = FakeClock()
    paced = pacer(clock)
    slots: list[float] = []
    start = threading.Barrier(8)

    def take() -> None:
        start.wait()
        for _ in range(25):
            slot, wait_s = paced.reserve()
            slots.append(slot)
            assert wait_s == slot - clock.now

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(slots) == 200
    assert most_in_a_window(slots, WINDOW_S) == ALLOWANCE
    assert sorted(slots) == [100.0] * 90 + [100.0 + WINDOW_S] * 90 + [100.0 + 2 * WINDOW_S] * 20


def test_a_tier_of_one_request_still_lets_one_request_go_per_window():
    clock = FakeClock()
    paced = pacer(clock, limit=1, share=1)
    assert paced.reserve() == (100.0, 0.0)
    assert paced.reserve() == (100.0 + WINDOW_S, WINDOW_S)


def test_another_interval_paces_that_window():
    clock = FakeClock()
    paced = Pacer(5, clock=clock, interval_s=1.0)  # search: 5 per second, one kept in reserve
    assert len(burst(paced)) == 4
    assert paced.reserve() == (100.0 + 1.0 + ARRIVAL_MARGIN_S, 1.0 + ARRIVAL_MARGIN_S)


def test_without_a_limit_nothing_is_paced():
    clock = FakeClock()
    paced = pacer(clock, limit=None)
    paced.observe(window(remaining="0"))
    assert paced.allowance() is None
    assert [paced.reserve() for _ in range(500)] == [(100.0, 0.0)] * 500
    assert paced.reserve(latest_s=-0.5) is None  # even now is too late for a caller with no time left


def test_a_pause_holds_until_it_ends():
    clock = FakeClock()
    paced = pacer(clock)
    assert paced.paused_for() == 0.0
    paced.pause(900.0)
    paced.pause(10.0)  # a shorter pause does not end a longer one
    clock.now += 300.0
    assert paced.paused_for() == 600.0
    clock.now += 600.0
    assert paced.paused_for() == 0.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("2", 2.0), ("0.5", 0.5), ("0", 0.0), (" 10 ", 10.0), ("86400", 86400.0)],
)
def test_retry_after_in_seconds_is_read(value, seconds):
    assert retry_after_s({"Retry-After": value}) == seconds


@pytest.mark.parametrize(
    "value",
    ["999999999999", "86401", "-1", "inf", "NaN", "1e3", "Wed, 21 Oct 2026 07:28:00 GMT", "", "two", "\u0662"],
)
def test_retry_after_that_is_not_a_number_of_seconds_up_to_a_day_counts_as_absent(value):
    assert retry_after_s({"Retry-After": value}) is None

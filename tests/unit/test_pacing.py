"""The pacing rule and the validation of HubSpot's rate-limit headers (no network: only the arithmetic)."""

import itertools
import threading

import pytest

from hubspot_destination.hubspot.pacing import Pacer, RateLimit, retry_after_s

TIER_SHARE = 10.0 * 2 / 190


def pacer(share=2, limit=190):
    return Pacer(requests_per_10s=limit, share=share)


def window(max="190", remaining="190", interval="10000"):
    return RateLimit.from_headers(
        {
            "X-HubSpot-RateLimit-Max": max,
            "X-HubSpot-RateLimit-Remaining": remaining,
            "X-HubSpot-RateLimit-Interval-Milliseconds": interval,
        }
    )


def test_without_headers_each_client_takes_its_share_of_the_tier():
    assert pacer(share=2, limit=190).spacing_s(now=100.0) == TIER_SHARE


def test_a_full_window_paces_close_to_the_tier_share_keeping_a_reserve():
    paced = pacer()
    paced.observe(window(), now=100.0)
    assert TIER_SHARE < paced.spacing_s(now=100.0) < 1.1 * TIER_SHARE


def test_recent_sends_count_as_budget_that_rolls_out_of_the_window():
    paced = pacer()
    paced.observe(window(remaining="100"), now=100.0)
    alone = paced.spacing_s(now=100.0)
    paced._sent_at.extend(99.0 - i * 0.1 for i in range(45))  # 45 sends in the last 10 s
    assert paced.spacing_s(now=100.0) < alone
    paced._sent_at.clear()
    paced._sent_at.extend([80.0, 85.0])  # older than the window: forgotten
    assert paced.spacing_s(now=100.0) == alone


def test_another_integration_using_the_budget_slows_this_client():
    paced = pacer()
    paced.observe(window(remaining="20"), now=100.0)
    assert paced.spacing_s(now=100.0) > TIER_SHARE
    paced.observe(window(remaining="0"), now=100.0)
    assert paced.spacing_s(now=100.0) == 10.0 * 2 / 1  # nothing left: one request per share of the window


def test_what_the_headers_said_expires_after_one_interval():
    paced = pacer()
    paced.observe(window(remaining="0"), now=100.0)
    assert paced.spacing_s(now=109.9) == 10.0 * 2
    assert paced.spacing_s(now=110.0) == TIER_SHARE  # a warm client recovers on its own


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
def test_a_header_out_of_its_range_counts_as_absent_and_never_slows_pacing_beyond_a_window(poisoned):
    headers = window(**poisoned)
    assert not headers.describes_window
    paced = pacer()
    paced.observe(headers, now=100.0)
    assert paced.spacing_s(now=100.0) == TIER_SHARE


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


class FakeClock:
    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_threads_reserving_at_once_get_distinct_slots_spaced_by_the_rule():
    clock = FakeClock()
    paced = Pacer(requests_per_10s=190, share=2, clock=clock)
    slots: list[float] = []

    def take() -> None:
        for _ in range(25):
            slot, wait_s = paced.reserve()
            slots.append(slot)
            assert wait_s == slot - clock.now

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ordered = sorted(slots)
    assert len(set(ordered)) == 200
    assert min(b - a for a, b in itertools.pairwise(ordered)) == pytest.approx(TIER_SHARE)


def test_a_slot_further_than_the_caller_can_wait_is_not_reserved():
    clock = FakeClock()
    paced = Pacer(requests_per_10s=190, share=2, clock=clock)
    assert paced.reserve() == (100.0, 0.0)
    assert paced.reserve(latest_s=TIER_SHARE / 2) is None  # nothing taken: the next caller gets the same slot
    assert paced.reserve(latest_s=TIER_SHARE * 1.01) == pytest.approx((100.0 + TIER_SHARE, TIER_SHARE))


def test_requests_in_flight_are_not_counted_as_budget_twice():
    clock = FakeClock()
    paced = Pacer(requests_per_10s=190, share=2, clock=clock)
    first, _ = paced.reserve()
    for _ in range(4):  # four more sent before the first one's answer came back
        paced.reserve()
    clock.now = first + 0.6
    paced.observe(window(remaining="100"), slot=first)
    # `Remaining` counted the first request only: the four after it still count against the window.
    assert paced.spacing_s(clock.now) == pytest.approx(10.0 * 2 / (100 + 1 * 2 - 9))
    paced.observe(window(remaining="96"), slot=paced._sent_at[-1])
    assert paced.spacing_s(clock.now) == pytest.approx(10.0 * 2 / (96 + 5 * 2 - 9))


def test_an_answer_to_an_older_request_than_the_one_observed_is_passed_over():
    clock = FakeClock()
    paced = Pacer(requests_per_10s=190, share=2, clock=clock)
    older, _ = paced.reserve()
    newer, _ = paced.reserve()
    paced.observe(window(remaining="150"), slot=newer)
    paced.observe(window(remaining="0"), slot=older)  # came back last, knows less
    assert paced.spacing_s(clock.now) == pytest.approx(10.0 * 2 / (150 + 2 * 2 - 9))

"""Pacing: a rolling-window allowance per client inside the portal's burst limit, from the tier and the headers.

What HubSpot enforces (hubspot-api.md §3.1-§3.2, https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines):
each app may make `max` requests in any rolling 10 s (`TEN_SECONDLY_ROLLING`); the per-second limit is deprecated
and no longer enforced. So a client may send whenever its own requests in the last window number fewer than
its allowance: not one request every `10 s / allowance`, but its whole allowance at once after it was busy
elsewhere, limited only by its calls in flight.

The window a client counts its own requests in is the interval plus `ARRIVAL_MARGIN_S` (0.5 s). HubSpot counts
a request when it arrives, we count it at its slot: a request may leave a little after its slot (the thread
wakes late, a new connection's TCP and TLS handshakes, the body on the wire) and arrive later still, so an
early request that is slow and a request one interval later that is fast could otherwise fall in one of
HubSpot's windows. With the margin, the requests HubSpot sees in any interval were all sent within interval +
margin of each other, as long as none arrives more than 0.5 s after its slot; the few that might are what the
reserve below is for. The cost: at most `allowance` requests per 10.5 s, 95% of the window's rate.

The allowance is the client's share of the budget, less a reserve of `max(share, max // 20)` (`share`:
clients splitting the budget, the deliver function's concurrent invocations):
- before any header was seen, or once what they said expired: `(tier limit - reserve) // share`, so the
  clients together stay `reserve` below the limit in every window;
- while the `X-HubSpot-RateLimit-Max`, `-Remaining` and `-Interval-Milliseconds` of an answer are current:
  `(remaining + counted * share - reserve) // share`, never more than the tier's. `Remaining` is what was left
  in the window when the answered request arrived, that request and every other request of the app (our other
  clients, another integration with the same token) counted; `counted` is this client's own requests in that
  same window, those with a slot in `(slot - interval, slot]`. They, and as many of each other client's
  (`* share`: the clients are assumed alike), roll out of the window in time, so the budget the app's clients
  have per window is what remains plus what they used; what it leaves out is another integration's use,
  which shrinks the allowance. The sum over the clients is `remaining + (sum of their counts) - reserve` when
  they read answers of about the same time, whatever their counts were: one client that sent more than the
  others gets a larger allowance and they a smaller one.
  Only the requests up to the answered request's slot are counted: the client's requests sent after it (in
  flight, or answered since) are not in its `Remaining`, and they count against the allowance in the client's
  own window anyway (counting them as rolling out would count each as budget twice). A request sent just
  before the answered one may arrive after it, or one sent one interval earlier be counted or not, depending on
  how late each arrived; and whether HubSpot counts a request it refused with a 429 is not documented (the
  emulator does not), while `counted` does: a request or two, which the reserve (at least `share`) covers.
  An answer to a request sent before the one whose answer is held says less and is passed over; headers
  whose interval is not the window paced (a 1-s one when pacing 10 s) describe another limit and are passed
  over too.

Several requests of one client may be in flight at once (threads sharing the pacer): each takes a slot with
`reserve`, under a lock, and the slots are handed out in order (a slot is never before an earlier one), so
each new slot is the earliest at which the client's requests in the window, that one included, are within
the allowance, and no window, future ones included, holds more. A slot reserved under a larger allowance
stays reserved when an answer shrinks it.

Every header value is distrusted: a value out of its documented range counts as absent, and what the headers
said expires one interval after the answer (a slot after that is given under the tier's allowance), so a single
poisoned answer can slow a warm client for at most one window (10 s) and never stall it (the allowance is
at least 1).
"""

import bisect
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# HubSpot's burst window is 10 s; the deprecated secondly one was 1 s (hubspot-api.md §3.2).
_INTERVAL_MS = (1_000, 10_000)
BURST_INTERVAL_S = 10.0
ARRIVAL_MARGIN_S = 0.5  # a request reaches HubSpot within this of its slot (module doc)
# Own slots are kept this long, so an answer that took a whole attempt (23 s at most by default: connect 3 s +
# read 20 s) still finds the requests of its window; an older one finds fewer, which lowers the allowance.
_HISTORY_S = 60.0
_MAX_PER_WINDOW = 10_000  # tiers allow 100-250 per 10 s (§3.1); far above is not an answer to trust
_MAX_DAILY = 100_000_000
_MAX_RETRY_AFTER_S = 86_400.0
# ASCII digits only: `str.isdigit` and `\d` accept other scripts' digits, which `int` and `float` then read.
_SECONDS = re.compile(r"[0-9]{1,6}(\.[0-9]{1,6})?")
_INTEGER = re.compile(r"[0-9]{1,12}")


def _bounded(value: str | None, low: int, high: int) -> int | None:
    if value is None or not _INTEGER.fullmatch(value.strip()):
        return None
    number = int(value.strip())
    return number if low <= number <= high else None


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """`Retry-After` in seconds (RFC 9110 §10.2.3), when it is a plain number of seconds up to a day; an
    HTTP date, a negative or non-finite number, or anything else counts as absent."""
    value = (headers.get("Retry-After") or "").strip()
    return float(value) if _SECONDS.fullmatch(value) and float(value) <= _MAX_RETRY_AFTER_S else None


@dataclass(frozen=True)
class RateLimit:
    """The validated `X-HubSpot-RateLimit-*` headers of one answer (hubspot-api.md §3.2); None when absent or
    out of range. `interval_ms` is the window of `max`/`remaining` in milliseconds (10,000 for the burst limit).
    """

    max: int | None = None
    remaining: int | None = None
    interval_ms: int | None = None
    daily: int | None = None
    daily_remaining: int | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> "RateLimit":
        """Read the headers (case-insensitive mapping); a value out of range, or a `Remaining` above `Max`,
        counts as absent."""

        def header(name: str) -> str | None:
            return headers.get(f"X-HubSpot-RateLimit-{name}")

        most = _bounded(header("Max"), 1, _MAX_PER_WINDOW)
        daily = _bounded(header("Daily"), 1, _MAX_DAILY)
        return cls(
            max=most,
            remaining=_bounded(header("Remaining"), 0, most) if most else None,
            interval_ms=_bounded(header("Interval-Milliseconds"), *_INTERVAL_MS),
            daily=daily,
            daily_remaining=_bounded(header("Daily-Remaining"), 0, daily) if daily else None,
        )

    @property
    def describes_window(self) -> bool:
        """Whether the burst window can be read from it: `max`, `remaining` and `interval_ms` all valid."""
        return self.max is not None and self.remaining is not None and self.interval_ms is not None


def _share_of(budget: int, most: int, share: int) -> int:
    """One client's allowance per window: `budget` less the reserve `max(share, most // 20)`, split by `share`;
    at least 1, so a client is slowed but never stalled."""
    return max(1, (budget - max(share, most // 20)) // share)


class Pacer:
    """A rolling-window allowance for one client's requests (monotonic seconds throughout); thread-safe.

    Args:
        limit: requests the portal allows per interval (the tier's burst limit per 10 s); None: no pacing.
        share: how many clients (concurrent invocations) split that budget.
        clock: the time source (`time.monotonic`).
        interval_s: the window the limit is for (HubSpot's burst window, 10 s).
        margin_s: added to the interval for the window the client counts its requests in (module doc).
    """

    def __init__(
        self,
        limit: int | None,
        share: int = 1,
        clock: Callable[[], float] = time.monotonic,
        interval_s: float = BURST_INTERVAL_S,
        margin_s: float = ARRIVAL_MARGIN_S,
    ):
        self._share = max(1, share)
        self._tier_allowance = _share_of(limit, limit, self._share) if limit else None
        self._interval_s = interval_s
        self.window_s = interval_s + margin_s
        self._clock = clock
        self._lock = threading.Lock()
        self._sent_at: deque[float] = deque()  # this client's slots, in order (the last few may be ahead)
        self._header_allowance: int | None = None  # from the newest answer's headers
        self._header_slot = -float("inf")  # the slot of the request whose answer it is from
        self._header_until = 0.0  # what the headers said is outdated after this
        self._paused_until = 0.0

    def observe(self, rate_limit: RateLimit, slot: float | None = None, now: float | None = None) -> None:
        """Take the rate-limit headers of an answer into account for one interval.

        Args:
            slot: when its request was sent (what `reserve` gave it; None: now). An answer to a request sent
                before the one whose answer is already held says less, and is passed over.
        """
        most, remaining, interval_ms = rate_limit.max, rate_limit.remaining, rate_limit.interval_ms
        if self._tier_allowance is None or most is None or remaining is None or interval_ms is None:
            return
        if interval_ms != round(self._interval_s * 1000):
            return  # another window than the one paced (module doc)
        with self._lock:
            now = self._clock() if now is None else now
            slot = now if slot is None else slot
            if slot >= self._header_slot or now >= self._header_until:
                # This client's requests that `remaining` counted: those of the window up to `slot`.
                sent = self._sent_at
                counted = bisect.bisect_right(sent, slot) - bisect.bisect_right(sent, slot - self._interval_s)
                allowance = _share_of(remaining + counted * self._share, most, self._share)
                self._header_allowance = min(self._tier_allowance, allowance)
                self._header_slot, self._header_until = slot, now + self._interval_s

    def allowance(self, at: float | None = None) -> int | None:
        """The client's own requests allowed in any window at `at` (None: now): the headers' while they are
        current, else the tier's; None without pacing."""
        with self._lock:
            return self._allowance(self._clock() if at is None else at)

    def _allowance(self, at: float) -> int | None:
        if self._header_allowance is not None and at < self._header_until:
            return self._header_allowance
        return self._tier_allowance

    def _earliest(self, now: float, allowance: int) -> float:
        """The earliest slot from `now` on, after the last one, at which fewer than `allowance` of this
        client's slots are in the window: one window after the `allowance`-th newest (slots are in order, so
        a window ending later holds no more of them)."""
        sent = self._sent_at
        start = max(now, sent[-1]) if sent else now
        return start if len(sent) < allowance else max(start, sent[-allowance] + self.window_s)

    def reserve(self, latest_s: float | None = None) -> tuple[float, float] | None:
        """Take the next slot to send a request in.

        Args:
            latest_s: the longest wait the caller accepts, in seconds (None: any).

        Returns:
            `(slot, wait)`: when the request may go (monotonic seconds) and the seconds to wait for it (0: now);
            None when the slot is more than `latest_s` away (nothing is reserved).
        """
        with self._lock:
            now, tier = self._clock(), self._tier_allowance
            if tier is None:
                return None if latest_s is not None and latest_s < 0 else (now, 0.0)
            while self._sent_at and self._sent_at[0] < now - max(_HISTORY_S, self.window_s):
                self._sent_at.popleft()
            header = self._header_allowance if now < self._header_until else None
            slot = self._earliest(now, tier if header is None else header)
            if header is not None and slot >= self._header_until:  # the headers are outdated by then
                slot = max(self._header_until, self._earliest(now, tier))
            if latest_s is not None and slot - now > latest_s:
                return None
            self._sent_at.append(slot)
            return slot, slot - now

    def pause(self, seconds: float) -> None:
        """Stop calling HubSpot for `seconds` (e.g. after the DAILY limit); see `paused_for`."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def paused_for(self) -> float:
        """Seconds left in a pause set by `pause`, 0 when not paused."""
        return max(0.0, self._paused_until - self._clock())

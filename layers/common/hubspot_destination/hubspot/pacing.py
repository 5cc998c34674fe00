"""Pacing: spacing HubSpot requests inside the portal's burst limit, from the tier and the answers' headers.

Rule (https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines, hubspot-api.md §3):
requests are spaced so one client uses at most `1/share` of the tier's budget per 10 s; once an answer carries
`X-HubSpot-RateLimit-Max`, `-Remaining` and `-Interval-Milliseconds`, the spacing follows what the rolling window
will allow (another integration may be using the same budget): the budget for the next interval is what remains
plus what this app's clients sent in the last interval (it rolls out of the window), less a reserve of
`max(share, max / 20)`; each client takes `1/share` of it.

Several requests of one client may be in flight at once (threads sharing the pacer): each takes a slot with
`reserve`, under a lock, so no two go at once and the spacing holds between every two of them. What an answer
says `Remaining` counted at the time its request arrived: the client's requests sent after it (in flight, or
answered since) are not in it, so only the sends up to that request's slot count as rolling out of the window
(otherwise each request in flight would be counted as budget twice).

Every header value is distrusted: a value out of its documented range counts as absent, and what the headers
said expires one interval after the answer, so a single poisoned answer can slow a warm client for at most one
window (10 s) and never stall it.
"""

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# HubSpot's burst window is 10 s; the deprecated secondly one was 1 s (hubspot-api.md §3.2).
_INTERVAL_MS = (1_000, 10_000)
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


class Pacer:
    """Spaces one client's requests (monotonic seconds throughout); thread-safe.

    Args:
        requests_per_10s: the portal's burst limit (its tier); None: no pacing.
        share: how many clients (concurrent invocations) split that budget.
        clock: the time source (`time.monotonic`).
    """

    def __init__(self, requests_per_10s: int | None, share: int = 1, clock: Callable[[], float] = time.monotonic):
        self._share = max(1, share)
        self._min_interval_s = 10.0 * self._share / requests_per_10s if requests_per_10s else 0.0
        self._clock = clock
        self._lock = threading.Lock()
        self._last_slot = -float("inf")
        self._sent_at: deque[float] = deque()  # this client's recent slots (a few may still be ahead)
        self._window: tuple[int, int, int] | None = None  # (max, remaining, interval ms) of the newest answer
        self._window_slot = -float("inf")  # the slot of the request whose answer `_window` is
        self._window_until = 0.0  # what `_window` says is outdated after this
        self._paused_until = 0.0

    def observe(self, rate_limit: RateLimit, slot: float | None = None, now: float | None = None) -> None:
        """Take the rate-limit headers of an answer into account for one interval.

        Args:
            slot: when its request was sent (what `reserve` gave it; None: now). An answer to a request sent
                before the one whose answer is already held says less, and is passed over.
        """
        most, remaining, interval_ms = rate_limit.max, rate_limit.remaining, rate_limit.interval_ms
        if most is None or remaining is None or interval_ms is None:
            return
        with self._lock:
            now = self._clock() if now is None else now
            slot = now if slot is None else slot
            if slot >= self._window_slot or now >= self._window_until:
                self._window, self._window_slot = (most, remaining, interval_ms), slot
                self._window_until = now + interval_ms / 1000

    def spacing_s(self, now: float) -> float:
        """Seconds between two requests, from the tier and the latest rate-limit headers still current.
        At most one interval times the share (the budget of a whole window, 10 s at most, for each client)."""
        if not self._min_interval_s or now >= self._window_until or self._window is None:
            return self._min_interval_s
        most, remaining, interval_ms = self._window
        interval_s = interval_ms / 1000
        while self._sent_at and self._sent_at[0] < now - interval_s:
            self._sent_at.popleft()
        counted = sum(1 for sent in self._sent_at if sent <= self._window_slot)  # in `remaining` already
        reserve = max(self._share, most // 20)
        budget = remaining + counted * self._share - reserve
        return max(self._min_interval_s, interval_s * self._share / max(budget, 1))

    def reserve(self, latest_s: float | None = None) -> tuple[float, float] | None:
        """Take the next slot to send a request in.

        Args:
            latest_s: the longest wait the caller accepts, in seconds (None: any).

        Returns:
            `(slot, wait)`: when the request may go (monotonic seconds) and the seconds to wait for it (0: now);
            None when the slot is more than `latest_s` away (nothing is reserved).
        """
        with self._lock:
            now = self._clock()
            slot = max(now, self._last_slot + self.spacing_s(now))
            if latest_s is not None and slot - now > latest_s:
                return None
            self._last_slot = slot
            self._sent_at.append(slot)
            return slot, slot - now

    def pause(self, seconds: float) -> None:
        """Stop calling HubSpot for `seconds` (e.g. after the DAILY limit); see `paused_for`."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def paused_for(self) -> float:
        """Seconds left in a pause set by `pause`, 0 when not paused."""
        return max(0.0, self._paused_until - self._clock())

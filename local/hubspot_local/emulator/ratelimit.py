"""HubSpot's rate limits for private apps (hubspot-api.md §3), on an injectable clock.

- A rolling 10-second window per app (here: per token), sized by tier (§3.1).
- A daily budget per portal, shared by every app (§3.1). HubSpot resets it at midnight in the account's
  time zone; the emulator starts a new day every 86,400 s of its clock (``clock() // 86400``).
- Search has a limit of its own, 5 requests per second per portal, and sends no rate-limit headers (§1.9).
- ``X-HubSpot-RateLimit-*`` headers on every counted answer (§3.2); 429 bodies as captured (§3.3).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import error_body

WINDOW_SECONDS = 10.0
DAY_SECONDS = 86_400
SEARCH_PER_SECOND = 5  # source: §1.9 "5 requests/second per account"

# source: §3.1 "Limits by tier" (requests per 10 s per app, requests per day per account). The add-on tier
# uses the current docs' 250 burst (the private-apps page says 200) and enterprise's 1,000,000 daily plus
# one add-on's 1,000,000. Professional daily is 625,000 (docs) rather than the changelog's 650,000.
TIERS: dict[str, tuple[int, int]] = {
    "free": (100, 250_000),
    "starter": (100, 250_000),
    "professional": (190, 625_000),
    "enterprise": (190, 1_000_000),
    "addon": (250, 2_000_000),
}


def rate_limit_body(policy: str) -> dict[str, Any]:
    """The 429 body for ``TEN_SECONDLY_ROLLING`` or ``DAILY`` (§3.3, captured texts).

    ``category: RATE_LIMITS`` is added beside ``errorType`` as §3.3 allows; clients key on ``policyName``.
    """
    message = {
        "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
        "DAILY": "You have reached your daily limit.",
    }[policy]
    return error_body(message, "RATE_LIMITS", errorType="RATE_LIMIT", policyName=policy)


def search_limit_body() -> dict[str, Any]:
    # source: §3.3 search 429 (captured; no policyName, whose presence is UNCONFIRMED)
    return error_body("You have reached your secondly limit.", None, errorType="RATE_LIMIT")


@dataclass
class Decision:
    """The outcome of counting one request: the 429 policy hit (if any) and the headers to send."""

    policy: str | None
    headers: dict[str, str] = field(default_factory=dict)


class RateLimiter:
    """Counts requests per token (10-second rolling window) and per portal (daily)."""

    def __init__(
        self,
        burst: int,
        daily: int,
        clock: Callable[[], float],
        other_integration_per_window: int = 0,
    ) -> None:
        self.burst = burst
        self.daily = daily
        self.clock = clock
        self.other_integration_per_window = other_integration_per_window
        self._lock = threading.Lock()
        self._windows: dict[str, deque[float]] = {}
        self._search: deque[float] = deque()
        self._day = int(clock() // DAY_SECONDS)
        self._daily_used = 0
        self._other_window: int | None = None

    def count(self, token: str) -> Decision:
        """Count one request by ``token``; ``policy`` is set when it must be refused with a 429."""
        with self._lock:
            now = self.clock()
            day = int(now // DAY_SECONDS)
            if day != self._day:
                self._day, self._daily_used = day, 0
            self._charge_other_integration(now)
            window = self._windows.setdefault(token, deque())
            while window and window[0] <= now - WINDOW_SECONDS:
                window.popleft()
            used = len(window) + self.other_integration_per_window
            policy = None
            if self._daily_used >= self.daily:
                policy = "DAILY"
            elif used >= self.burst:
                policy = "TEN_SECONDLY_ROLLING"
            else:
                window.append(now)
                self._daily_used += 1
                used += 1
            headers = {
                "X-HubSpot-RateLimit-Max": str(self.burst),
                "X-HubSpot-RateLimit-Remaining": str(max(self.burst - used, 0)),
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(WINDOW_SECONDS * 1000)),
                "X-HubSpot-RateLimit-Daily": str(self.daily),
                "X-HubSpot-RateLimit-Daily-Remaining": str(max(self.daily - self._daily_used, 0)),
            }
            return Decision(policy, headers)

    def _charge_other_integration(self, now: float) -> None:
        """Another integration of the same app takes K requests of each 10-s window and of the day.

        Its daily use is charged once per 10-second period in which this app makes requests.
        """
        period = int(now // WINDOW_SECONDS)
        if self.other_integration_per_window and period != self._other_window:
            self._other_window = period
            self._daily_used += self.other_integration_per_window

    def count_search(self) -> bool:
        """Count one search request; False when the 5-per-second limit is exceeded (§1.9)."""
        with self._lock:
            now = self.clock()
            while self._search and self._search[0] <= now - 1.0:
                self._search.popleft()
            if len(self._search) >= SEARCH_PER_SECOND:
                return False
            self._search.append(now)
            return True

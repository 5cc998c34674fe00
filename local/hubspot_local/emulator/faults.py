"""Seedable fault injection: the failures real portals produce (hubspot-api.md §1.8, §3.3, §3.4).

One ``random.Random(seed)`` draws, for every counted HubSpot API request in arrival order, at most one of:
connection reset, a 429 burst, or an error status (423, 477, 500, 502, 503, 504); then, independently,
whether the answer is delayed. The same seed and the same sequence of requests give the same faults.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .errors import error_body

# source: §1.8 "Other common statuses"; §6.6 "Optional fault injection: 423, 502/504, and 477 with Retry-After"
FAULT_STATUSES = frozenset({423, 477, 500, 502, 503, 504})
# The JSON bodies of these statuses are UNCONFIRMED (502/504 may come from HubSpot's edge as HTML); the
# emulator sends the shared error envelope so that clients can always parse an answer.
_FAULT_MESSAGES = {
    423: ("The resource is locked by another write. Wait at least 2 seconds and retry.", "LOCKED"),
    477: ("Migration in progress. Retry after the number of seconds in Retry-After.", "MIGRATION_IN_PROGRESS"),
    500: ("An internal error occurred.", "INTERNAL_ERROR"),
    502: ("Bad gateway: the request could not be processed in time.", "BAD_GATEWAY"),
    503: ("The service is temporarily unavailable.", "SERVICE_UNAVAILABLE"),
    504: ("Gateway timeout: the request could not be processed in time.", "GATEWAY_TIMEOUT"),
}
RETRY_AFTER_SECONDS = 2


class FaultConfig(BaseModel):
    """What to inject and how often; settable in the constructor and with ``POST /__emulator/faults``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int | None = None
    # status -> probability per request, statuses from FAULT_STATUSES
    error_rates: dict[int, float] = Field(default_factory=dict)
    # probability that the connection is closed (TCP reset) without an answer; nothing is written
    reset_rate: float = Field(0.0, ge=0, le=1)
    # probability that a burst of ``burst_length`` consecutive TEN_SECONDLY_ROLLING 429s starts
    burst_429_rate: float = Field(0.0, ge=0, le=1)
    burst_429_length: int = Field(3, ge=1)
    # probability that an answer is held for ``slow_seconds`` (after the request was processed)
    slow_rate: float = Field(0.0, ge=0, le=1)
    slow_seconds: float = Field(0.0, ge=0)
    # every token is revoked once it has made this many requests; later requests get 401
    revoke_token_after: int | None = Field(None, ge=0)
    # another integration of the same app uses this many requests of every 10-s window and of the day
    other_integration_per_window: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _check_rates(self) -> FaultConfig:
        unknown = set(self.error_rates) - FAULT_STATUSES
        if unknown:
            raise ValueError(f"error_rates statuses must be among {sorted(FAULT_STATUSES)}, not {sorted(unknown)}")
        rates = [*self.error_rates.values(), self.reset_rate, self.burst_429_rate]
        if any(not 0 <= r <= 1 for r in rates) or sum(rates) > 1:
            raise ValueError("each rate must be in [0, 1] and error_rates + reset_rate + burst_429_rate <= 1")
        return self


@dataclass(frozen=True)
class Fault:
    """The fault drawn for one request: ``kind`` is ``reset``, ``rate_limit`` or ``status``."""

    kind: str
    status: int = 0

    def body(self) -> dict[str, Any]:
        message, category = _FAULT_MESSAGES[self.status]
        return error_body(message, category)

    def headers(self) -> dict[str, str]:
        # source: §1.8 "477 Migration in Progress: comes with a Retry-After header in seconds"
        return {"Retry-After": str(RETRY_AFTER_SECONDS)} if self.status == 477 else {}


class FaultInjector:
    """Draws faults from a ``FaultConfig`` with its own seeded random generator."""

    def __init__(self, config: FaultConfig) -> None:
        self._lock = threading.Lock()
        self.configure(config)

    def configure(self, config: FaultConfig) -> None:
        """Apply a new configuration: the generator is reseeded and revocations and bursts forgotten."""
        with self._lock:
            self.config = config
            self._rng = random.Random(config.seed)
            self._burst_left = 0
            self._requests: dict[str, int] = {}

    def revoked(self, token: str) -> bool:
        """Count a request by ``token``; True once the token is past ``revoke_token_after`` requests."""
        limit = self.config.revoke_token_after
        if limit is None:
            return False
        with self._lock:
            self._requests[token] = self._requests.get(token, 0) + 1
            return self._requests[token] > limit

    def draw(self) -> tuple[Fault | None, float]:
        """The fault for the next request (or None) and the delay before its answer, in seconds."""
        config = self.config
        with self._lock:
            fault = None
            if self._burst_left:
                self._burst_left -= 1
                fault = Fault("rate_limit")
            else:
                roll = self._rng.random()
                for kind, status, rate in [
                    ("reset", 0, config.reset_rate),
                    ("rate_limit", 0, config.burst_429_rate),
                    *(("status", s, r) for s, r in sorted(config.error_rates.items())),
                ]:
                    if roll < rate:
                        fault = Fault(kind, status)
                        if kind == "rate_limit":
                            self._burst_left = config.burst_429_length - 1
                        break
                    roll -= rate
            slow = config.slow_rate and self._rng.random() < config.slow_rate
            return fault, config.slow_seconds if slow else 0.0

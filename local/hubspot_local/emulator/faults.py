"""Seedable fault injection: the failures real portals produce (hubspot-api.md §1.8, §3.3, §3.4), and the
hostile or broken answers a proxy or a man in the middle in front of HubSpot can produce (``hostile.py``).

One ``random.Random(seed)`` draws, for every counted HubSpot API request in arrival order:

1. whether its headers are poisoned (``header_overrides``; also for the requests the rate limiter refuses);
2. for the requests the rate limiter lets through, at most one of: connection reset, a 429 burst, an error
   status (423, 477, 500, 502, 503, 504), a redirect, a huge body, a gzip bomb, a malformed body;
3. whether the answer is delayed (``slow_rate``), then whether it is dripped (``drip``).

The answer time (``latency``) is drawn from a generator of its own (seeded from ``seed``), so configuring it
leaves every fault of a seed where it was.

A draw is made only for the kinds that are configured (and, for 1 and 3, only on the paths they target), so
adding a kind leaves the sequence of the others unchanged when its rate is 0. The same seed and the same
sequence of requests give the same faults.
"""

from __future__ import annotations

import binascii
import math
import random
import threading
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .errors import error_body
from .hostile import MALFORMED_BODIES, MIN_PADDED_BYTES, Payload, gzip_bomb, padded_json

# source: §1.8 "Other common statuses"; §6.6 "Optional fault injection: 423, 502/504, and 477 with Retry-After"
FAULT_STATUSES = frozenset({423, 477, 500, 502, 503, 504})
# The JSON bodies of these statuses are UNCONFIRMED (502/504 may come from HubSpot's edge as HTML); the
# emulator sends the shared error envelope so that clients can always parse an answer. Redirects are test
# faults HubSpot does not send.
_FAULT_MESSAGES = {
    301: ("Moved Permanently.", None),
    302: ("Found.", None),
    307: ("Temporary Redirect.", None),
    308: ("Permanent Redirect.", None),
    423: ("The resource is locked by another write. Wait at least 2 seconds and retry.", "LOCKED"),
    477: ("Migration in progress. Retry after the number of seconds in Retry-After.", "MIGRATION_IN_PROGRESS"),
    500: ("An internal error occurred.", "INTERNAL_ERROR"),
    502: ("Bad gateway: the request could not be processed in time.", "BAD_GATEWAY"),
    503: ("The service is temporarily unavailable.", "SERVICE_UNAVAILABLE"),
    504: ("Gateway timeout: the request could not be processed in time.", "GATEWAY_TIMEOUT"),
}
RETRY_AFTER_SECONDS = 2


class Targeted(BaseModel):
    """A hostile-answer fault: drawn with probability ``rate`` per counted request whose path contains one
    of the strings in ``paths`` (e.g. ``"batch/upsert"``; every path when empty)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate: float = Field(ge=0, le=1)
    paths: tuple[str, ...] = ()

    def applies(self, path: str) -> bool:
        return not self.paths or any(part in path for part in self.paths)


def header_values(value: str | list[str] | None) -> list[str]:
    """The header lines a ``HeaderOverrides`` value sends: none for None, one for a string, each of a list."""
    return [] if value is None else [value] if isinstance(value, str) else value


class HeaderOverrides(Targeted):
    """``headers``: name -> the value to send instead of the emulator's own (or in addition to its headers),
    a list of values (the header repeated, one line each), or None (the header left out)."""

    headers: dict[str, str | list[str] | None] = Field(min_length=1)

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, headers: dict[str, str | list[str] | None]) -> dict[str, str | list[str] | None]:
        for name, value in headers.items():
            if not name or any(c in name for c in " \t\r\n:") or not name.isascii():
                raise ValueError(f"invalid header name {name!r}")
            if isinstance(value, list) and not value:
                raise ValueError(f"header {name}: a list needs at least one value (None leaves the header out)")
            for item in header_values(value):
                if any(c in item for c in "\r\n\0") or not all(ord(c) < 256 for c in item):
                    raise ValueError(f"header {name}: values are Latin-1 text without CR, LF or NUL")
        return headers


class Redirect(Targeted):
    """Answer ``status`` with ``Location: <to><the request's path and query>``; the request is not processed."""

    to: str
    status: Literal[301, 302, 307, 308] = 307

    @field_validator("to")
    @classmethod
    def _check_to(cls, to: str) -> str:
        url = urlsplit(to)
        if url.scheme not in ("http", "https") or not url.netloc or url.query or url.fragment:
            raise ValueError(f"redirect.to must be an http(s) base URL like http://127.0.0.1:9999, not {to!r}")
        return to.rstrip("/")


class Drip(Targeted):
    """Send the answer's body ``chunk_bytes`` at a time, one piece every ``interval_seconds`` (the headers and
    the first piece at once); framed by ``Content-Length`` of the whole body, or ``chunked``."""

    interval_seconds: float = Field(gt=0)
    chunk_bytes: int = Field(1, ge=1)
    chunked: bool = False


class Replacement(Targeted):
    """A fault that replaces the answer's body; ``processed``: the request is handled (written) first."""

    processed: bool = True


class HugeBody(Replacement):
    """A 200 whose body is ``size_bytes`` of padded JSON, streamed; ``chunked`` framing instead of
    ``Content-Length``."""

    size_bytes: int = Field(200_000_000, ge=MIN_PADDED_BYTES)
    chunked: bool = False


class GzipBomb(Replacement):
    """A 200 with ``Content-Encoding: gzip`` (asked for or not) whose body inflates to ``inflated_bytes``."""

    inflated_bytes: int = Field(500_000_000, ge=MIN_PADDED_BYTES)


class MalformedBody(BaseModel):
    """A body of one's own: ``status`` and exactly one of ``text`` (sent as UTF-8) or ``base64`` (any bytes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: int = Field(200, ge=200, le=599)
    text: str | None = None
    base64: str | None = None

    @model_validator(mode="after")
    def _one_body(self) -> MalformedBody:
        if (self.text is None) == (self.base64 is None):
            raise ValueError("a malformed body needs exactly one of text or base64")
        if self.base64 is not None:
            self.data()
        return self

    def data(self) -> bytes:
        if self.text is not None:
            return self.text.encode()
        try:
            return binascii.a2b_base64(self.base64 or "", strict_mode=True)
        except binascii.Error as exc:
            raise ValueError(f"base64: {exc}") from None


class Malformed(Replacement):
    """Answer with the ``bodies`` in turn (the n-th malformed answer sends ``bodies[n % len(bodies)]``): names
    from ``hostile.MALFORMED_BODIES``, or ``MalformedBody`` objects. Default: the whole catalogue in order."""

    bodies: tuple[str | MalformedBody, ...] = Field(tuple(MALFORMED_BODIES), min_length=1)

    @field_validator("bodies")
    @classmethod
    def _known_names(cls, bodies: tuple[str | MalformedBody, ...]) -> tuple[str | MalformedBody, ...]:
        unknown = [b for b in bodies if isinstance(b, str) and b not in MALFORMED_BODIES]
        if unknown:
            raise ValueError(f"unknown malformed bodies {unknown}; known: {sorted(MALFORMED_BODIES)}")
        return bodies

    def answer(self, index: int) -> tuple[int, Payload]:
        """The status and body of the ``index``-th malformed answer."""
        body = self.bodies[index % len(self.bodies)]
        if isinstance(body, str):
            status, data = MALFORMED_BODIES[body]
            return status, Payload.of(data)
        return body.status, Payload.of(body.data())


class Latency(BaseModel):
    """How long HubSpot takes to answer a counted request that it lets through, in ms: lognormal with
    median ``median_ms`` for a 100-input batch and log standard deviation ``sigma`` (p99 = median x
    e^(2.33 sigma): 3.2 x for 0.5). A request of n inputs (0 for one without ``inputs``) takes
    ``0.3 + 0.7 n/100`` of that median. An assumption: HubSpot publishes no answer time (docs/emulator.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    median_ms: float = Field(gt=0, le=60_000)
    sigma: float = Field(0.5, ge=0, le=3)

    def median_s(self, inputs: int | None) -> float:
        """The median answer time of a request with ``inputs`` inputs, in seconds."""
        return self.median_ms / 1000 * (0.3 + 0.7 * min(inputs or 0, 100) / 100)


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
    # hostile answers (test faults, not HubSpot's behaviour; docs/emulator.md "Hostile answers")
    header_overrides: HeaderOverrides | None = None
    redirect: Redirect | None = None
    huge_body: HugeBody | None = None
    gzip_bomb: GzipBomb | None = None
    malformed: Malformed | None = None
    drip: Drip | None = None
    # HubSpot's answer time (not a fault: the realistic wait every answer has; None: at once)
    latency: Latency | None = None

    @model_validator(mode="after")
    def _check_rates(self) -> FaultConfig:
        unknown = set(self.error_rates) - FAULT_STATUSES
        if unknown:
            raise ValueError(f"error_rates statuses must be among {sorted(FAULT_STATUSES)}, not {sorted(unknown)}")
        rates = [*self.error_rates.values(), self.reset_rate, self.burst_429_rate]
        rates += [kind.rate for kind in self.exclusive_kinds()]
        if any(not 0 <= r <= 1 for r in rates) or sum(rates) > 1:
            raise ValueError(
                "each rate must be in [0, 1] and error_rates + reset_rate + burst_429_rate + the rates of "
                "redirect, huge_body, gzip_bomb and malformed <= 1"
            )
        return self

    def exclusive_kinds(self) -> list[Redirect | Replacement]:
        """The configured hostile kinds that replace the answer, in the order the draw checks them."""
        kinds = [self.redirect, self.huge_body, self.gzip_bomb, self.malformed]
        return [kind for kind in kinds if kind is not None]


@dataclass(frozen=True)
class Fault:
    """A fault answered instead of processing the request: ``kind`` is ``reset`` (no answer), ``rate_limit``
    (a TEN_SECONDLY_ROLLING 429), ``status`` (the error ``status``) or ``redirect`` (``status`` to
    ``location``, a base URL)."""

    kind: str
    status: int = 0
    location: str = ""

    def body(self) -> dict[str, Any]:
        message, category = _FAULT_MESSAGES[self.status]
        return error_body(message, category)

    def headers(self, target: str) -> dict[str, str]:
        """Extra headers; ``target`` is the request's path and query."""
        if self.kind == "redirect":
            return {"Location": self.location + target}
        # source: §1.8 "477 Migration in Progress: comes with a Retry-After header in seconds"
        return {"Retry-After": str(RETRY_AFTER_SECONDS)} if self.status == 477 else {}


@dataclass(frozen=True)
class BodyFault:
    """An answer replaced by ``status`` with ``payload``, after processing the request when ``processed``;
    ``chunked``: framed with ``Transfer-Encoding: chunked``."""

    status: int
    payload: Payload
    processed: bool
    chunked: bool = False


@dataclass(frozen=True)
class Draw:
    """What one request gets: ``fault`` (or None), ``delay`` before the answer in seconds, and ``drip``."""

    fault: Fault | BodyFault | None
    delay: float
    drip: Drip | None


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
            self._latency_rng = random.Random(f"latency/{config.seed}")
            self._burst_left = 0
            self._requests: dict[str, int] = {}
            self._malformed_sent = 0

    def revoked(self, token: str) -> bool:
        """Count a request by ``token``; True once the token is past ``revoke_token_after`` requests."""
        limit = self.config.revoke_token_after
        if limit is None:
            return False
        with self._lock:
            self._requests[token] = self._requests.get(token, 0) + 1
            return self._requests[token] > limit

    def _hit(self, kind: Targeted | None, path: str) -> bool:
        """Draw (only for a configured kind that targets ``path``) whether ``kind`` strikes this request."""
        return kind is not None and kind.applies(path) and self._rng.random() < kind.rate

    def draw_headers(self, path: str) -> dict[str, str | list[str] | None]:
        """The header overrides for the next counted request on ``path`` (empty when not poisoned)."""
        overrides = self.config.header_overrides
        with self._lock:
            return dict(overrides.headers) if overrides is not None and self._hit(overrides, path) else {}

    def draw(self, path: str) -> Draw:
        """The fault, delay and drip for the next request on ``path`` that the rate limiter let through."""
        config = self.config
        with self._lock:
            fault: Fault | BodyFault | None = None
            if self._burst_left:
                self._burst_left -= 1
                fault = Fault("rate_limit")
            else:
                roll = self._rng.random()
                for kind, rate in [
                    (Fault("reset"), config.reset_rate),
                    (Fault("rate_limit"), config.burst_429_rate),
                    *((Fault("status", s), r) for s, r in sorted(config.error_rates.items())),
                    *((spec, spec.rate) for spec in config.exclusive_kinds()),
                ]:
                    if roll < rate:
                        fault = self._fault(kind, path)
                        break
                    roll -= rate
            slow = config.slow_rate and self._rng.random() < config.slow_rate
            drip = config.drip if self._hit(config.drip, path) else None
            return Draw(fault, config.slow_seconds if slow else 0.0, drip)

    def draw_latency(self, inputs: int | None) -> float:
        """The answer time of the next request with ``inputs`` inputs, in seconds (0 without ``latency``)."""
        latency = self.config.latency
        if latency is None:
            return 0.0
        with self._lock:
            return self._latency_rng.lognormvariate(math.log(latency.median_s(inputs)), latency.sigma)

    def _fault(self, spec: Fault | Redirect | Replacement, path: str) -> Fault | BodyFault | None:
        """The fault the roll picked (a portal fault, or a hostile kind's configuration), or None when that
        hostile kind does not target ``path``."""
        if isinstance(spec, Fault):
            if spec.kind == "rate_limit":
                self._burst_left = self.config.burst_429_length - 1
            return spec
        if not spec.applies(path):
            return None
        if isinstance(spec, Redirect):
            return Fault("redirect", spec.status, spec.to)
        if isinstance(spec, HugeBody):
            return BodyFault(200, padded_json(spec.size_bytes), spec.processed, spec.chunked)
        if isinstance(spec, GzipBomb):
            return BodyFault(200, gzip_bomb(spec.inflated_bytes), spec.processed)
        self._malformed_sent += 1
        return BodyFault(*spec.answer(self._malformed_sent - 1), spec.processed)

"""HubSpot CRM v3 HTTP client on urllib3: one pool, explicit timeouts, typed errors, rate-limit headers.

Endpoints used (reference hubspot-api.md §1-§2; https://developers.hubspot.com/docs/api-reference/crm-contacts-v3/guide,
https://developers.hubspot.com/docs/api-reference/crm-properties-v3/guide):
`GET/POST/PATCH /crm/v3/properties/contacts[/{name}]`, `GET/POST /crm/v3/properties/contacts/groups`,
`POST /crm/v3/objects/contacts/batch/upsert` and `.../batch/read`.

Transient faults (423, 500, 502, 503, 504, connection errors, read timeouts) are retried a few times with
exponential backoff by urllib3's `Retry`; what still fails raises `HubSpotTransientError`. 429s are not
retried here: the caller decides between waiting for the window and handing records back to the queue.
"""

import json
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import urllib3
from aws_lambda_powertools.metrics import MetricUnit
from urllib3.exceptions import HTTPError as Urllib3Error

from hubspot_destination.observability import metrics

# HubSpot's batch endpoints take at most 100 inputs (reference hubspot-api.md §1.4).
BATCH_LIMIT = 100
# 423 locked, 477 migration in progress (with Retry-After), 5xx: pause and retry (reference hubspot-api.md §1.8).
_TRANSIENT_STATUSES = frozenset({423, 477, 500, 502, 503, 504})
_MAX_CONNECT_S = 3.0


class _TransientRetry(urllib3.Retry):
    """urllib3's `Retry`, retrying only `status_forcelist`: by default it also retries 413, 429 and 503 answers
    that carry `Retry-After`, and a 429 is the caller's to handle (wait for the window or requeue)."""

    RETRY_AFTER_STATUS_CODES: frozenset[int] = frozenset()


_MAX_WAIT_S = 4.0  # between retries, backoff or Retry-After
_MIN_ATTEMPT_S = 1.0


@dataclass(frozen=True)
class RateLimit:
    """The `X-HubSpot-RateLimit-*` headers of one response (reference hubspot-api.md §3.2); None when absent.

    `interval_ms` is the window of `max`/`remaining` in milliseconds (10,000 for the burst limit).
    """

    max: int | None = None
    remaining: int | None = None
    interval_ms: int | None = None
    daily: int | None = None
    daily_remaining: int | None = None

    @classmethod
    def from_headers(cls, headers: Any) -> "RateLimit":
        """Read the headers of a urllib3 response (case-insensitive); malformed values count as absent."""

        def number(name: str) -> int | None:
            value = headers.get(f"X-HubSpot-RateLimit-{name}")
            return int(value) if value is not None and value.strip().isdigit() else None

        return cls(
            max=number("Max"),
            remaining=number("Remaining"),
            interval_ms=number("Interval-Milliseconds"),
            daily=number("Daily"),
            daily_remaining=number("Daily-Remaining"),
        )


class HubSpotError(Exception):
    """An error answer from HubSpot, parsed from its JSON error envelope (reference hubspot-api.md §1.8).

    Attributes: `status` (HTTP status, None for network faults), `category` (e.g. `VALIDATION_ERROR`),
    `message`, `correlation_id`, `body` (the parsed JSON, or {}), `rate_limit`.
    """

    def __init__(self, status: int | None, body: dict | None, rate_limit: RateLimit | None = None, message: str = ""):
        self.status = status
        self.body = body or {}
        self.category = self.body.get("category") or self.body.get("errorType")
        self.message = self.body.get("message") or message
        self.correlation_id = self.body.get("correlationId")
        self.rate_limit = rate_limit or RateLimit()
        super().__init__(f"HubSpot {status} {self.category or ''}: {self.message}".strip())


class HubSpotAuthError(HubSpotError):
    """401 (bad or revoked token) or 403 (a scope is missing): a configuration fault, not the data's."""


class HubSpotRateLimited(HubSpotError):
    """429. `policy_name` is `TEN_SECONDLY_ROLLING`, `DAILY` or `SECONDLY`; `retry_after_s` from `Retry-After`."""

    def __init__(self, status, body, rate_limit=None, retry_after_s: float | None = None):
        super().__init__(status, body, rate_limit)
        self.policy_name = self.body.get("policyName")
        self.retry_after_s = retry_after_s


class HubSpotTransientError(HubSpotError):
    """423, 5xx, timeouts and connection faults that persisted through the client's own retries."""


class HubSpotNoTimeLeft(HubSpotError):
    """The request was not sent: the caller's time (`time_left_s`) would run out first. Nothing is wrong with
    HubSpot or the data; the caller hands the work back without counting an attempt."""

    def __init__(self, message: str = "no time left for a HubSpot request"):
        super().__init__(None, None, message=message)


class HubSpotRequestError(HubSpotError):
    """Any other 4xx (400 validation errors, 404, 409): retrying the same request will not help."""


@dataclass
class BatchResult:
    """The answer of a batch call (200, 201 or 207): `results` and `errors` as HubSpot sent them."""

    status: int
    results: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)


def _error_for(status: int, body: dict, rate_limit: RateLimit, headers: Any) -> HubSpotError:
    if status in (401, 403):
        return HubSpotAuthError(status, body, rate_limit)
    if status == 429:
        retry_after = headers.get("Retry-After")
        seconds = float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None
        return HubSpotRateLimited(status, body, rate_limit, retry_after_s=seconds)
    if status in _TRANSIENT_STATUSES or status >= 500:
        return HubSpotTransientError(status, body, rate_limit)
    return HubSpotRequestError(status, body, rate_limit)


class HubSpotClient:
    """A HubSpot portal, reached with a private-app token.

    Args:
        token: a function returning the private-app token; called with `refresh=True` once after a 401 so
            a rotated token is picked up (the token is never logged).
        base_url: `https://api.hubapi.com`, or the local emulator.
        timeout_s: read timeout per attempt, in seconds (the connect timeout is 3 s at most).
        retries: urllib3 retries for transient faults (waits between them are 4 s at most, `Retry-After`
            included).
        requests_per_10s: the portal's burst limit (its tier), until HubSpot's headers say otherwise.
        share: how many clients (concurrent invocations) split that budget.

    Pacing (https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines): requests are
    spaced so this client uses at most `1/share` of the budget; once `X-HubSpot-RateLimit-Max`,
    `-Remaining` and `-Interval-Milliseconds` arrive, the spacing follows what the rolling window will
    allow (another integration may be using the same budget): the budget for the next interval is what
    remains plus what this app's clients sent in the last interval (it rolls out of the window), less a
    reserve of `max(share, max / 20)`; each client takes `1/share` of it.

    Time: set `time_left_s` (seconds the caller can still wait, e.g. the Lambda invocation's remaining time
    less a reserve) and no request outlives it: while it is shorter than `longest_request_s` (every attempt
    timing out, plus the waits between them), a request gets one attempt bounded by it, and under 1 s none.
    """

    def __init__(
        self,
        token: Callable[..., str],
        base_url: str = "https://api.hubapi.com",
        timeout_s: float = 20.0,
        retries: int = 1,
        requests_per_10s: int | None = None,
        share: int = 1,
        pool: urllib3.PoolManager | None = None,
    ):
        self._token = token
        self._base_url = base_url.rstrip("/")
        retry = _TransientRetry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            allowed_methods=None,  # batch/upsert keyed by email is idempotent, so POSTs may be retried
            status_forcelist=_TRANSIENT_STATUSES,
            backoff_factor=0.5,
            backoff_jitter=0.25,
            backoff_max=_MAX_WAIT_S,
            respect_retry_after_header=True,
            retry_after_max=int(_MAX_WAIT_S),
            raise_on_status=False,
        )
        self._connect_s, self._read_s = min(_MAX_CONNECT_S, timeout_s), timeout_s
        self.longest_request_s = (retries + 1) * (self._connect_s + self._read_s) + retries * _MAX_WAIT_S
        self.time_left_s: Callable[[], float] | None = None
        self._pool = pool or urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=self._connect_s, read=self._read_s), retries=retry, maxsize=4
        )
        self._share = max(1, share)
        self._min_interval_s = 10.0 * self._share / requests_per_10s if requests_per_10s else 0.0
        self._last_request_at = 0.0
        self._sent_at: deque[float] = deque()  # this client's recent send times (monotonic s)
        self._paused_until = 0.0
        self.last_rate_limit = RateLimit()
        self.requests_sent = 0

    def _spacing_s(self, now: float) -> float:
        """Seconds between two requests, from the tier and the latest rate-limit headers."""
        limit = self.last_rate_limit
        if not self._min_interval_s or limit.remaining is None or not limit.interval_ms:
            return self._min_interval_s
        interval_s = limit.interval_ms / 1000
        while self._sent_at and self._sent_at[0] < now - interval_s:
            self._sent_at.popleft()
        reserve = max(self._share, (limit.max or 0) // 20)
        budget = limit.remaining + len(self._sent_at) * self._share - reserve
        return max(self._min_interval_s, interval_s * self._share / max(budget, 1))

    def _pace(self, wait_s: float) -> None:
        if wait_s > 0:
            time.sleep(wait_s)
        self._last_request_at = time.monotonic()
        self._sent_at.append(self._last_request_at)

    def pause(self, seconds: float) -> None:
        """Stop calling HubSpot for `seconds` (e.g. after the DAILY limit); see `paused_for`."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def paused_for(self) -> float:
        """Seconds left in a pause set by `pause`, 0 when not paused."""
        return max(0.0, self._paused_until - time.monotonic())

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, dict]:
        """Send one request and return `(status, parsed JSON body)` for a 2xx answer.

        Raises:
            HubSpotAuthError, HubSpotRateLimited, HubSpotTransientError, HubSpotRequestError.
        """
        refused: HubSpotError | None = None  # a 401, before the token was fetched again
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self._token(refresh=attempt == 2)}", "Accept": "application/json"}
            payload = None
            if body is not None:
                headers["Content-Type"] = "application/json"
                payload = json.dumps(body).encode()
            wait_s = max(0.0, self._last_request_at + self._spacing_s(time.monotonic()) - time.monotonic())
            try:
                within = self._within_time_left(wait_s)
            except HubSpotNoTimeLeft:
                if refused is not None:
                    raise refused from None  # the 401 stands: a token fault, not a lack of time
                raise
            self._pace(wait_s)
            self.requests_sent += 1
            sent = time.monotonic()
            try:
                response = self._pool.request(method, self._base_url + path, body=payload, headers=headers, **within)
            except Urllib3Error as error:
                raise HubSpotTransientError(None, None, message=f"{type(error).__name__}: {error}") from error
            finally:
                # How long HubSpot takes to answer (urllib3's retries included) sizes DeliverMaximumConcurrency.
                elapsed_ms = (time.monotonic() - sent) * 1000
                metrics.add_metric(name="HubSpotResponseTime", unit=MetricUnit.Milliseconds, value=elapsed_ms)
            rate_limit = RateLimit.from_headers(response.headers)
            if rate_limit.remaining is not None:
                self.last_rate_limit = rate_limit
            try:
                parsed = json.loads(response.data) if response.data else {}
            except ValueError:
                parsed = {"message": response.data[:200].decode(errors="replace")}
            if response.status < 300:
                return response.status, parsed
            error = _error_for(
                response.status, parsed if isinstance(parsed, dict) else {}, rate_limit, response.headers
            )
            # A 401 may mean the token was rotated: fetch it again once, then give up.
            if response.status != 401 or attempt == 2:
                raise error
            refused = error
        raise AssertionError("unreachable")

    def _within_time_left(self, wait_s: float) -> dict:
        """urllib3 options that end the request, after a pacing wait of `wait_s` seconds, before `time_left_s`
        runs out; none while it is long enough.

        Raises:
            HubSpotNoTimeLeft: less than 1 s would be left once the wait is over (nothing is sent).
        """
        left_s = self.time_left_s() - wait_s if self.time_left_s else None
        if left_s is None or left_s >= self.longest_request_s:
            return {}
        if left_s < _MIN_ATTEMPT_S:
            raise HubSpotNoTimeLeft()
        connect_s = min(self._connect_s, left_s / 2)
        timeout = urllib3.Timeout(total=left_s, connect=connect_s, read=min(self._read_s, left_s))
        return {"timeout": timeout, "retries": False}

    def list_properties(self) -> list[dict]:
        """All contact properties of the portal (HubSpot-defined and custom), as property objects."""
        return self.request("GET", "/crm/v3/properties/contacts")[1].get("results", [])

    def create_property(self, definition: dict) -> dict:
        """Create a contact property (201); a 409 raises `HubSpotRequestError` with status 409."""
        return self.request("POST", "/crm/v3/properties/contacts", definition)[1]

    def update_property(self, name: str, changes: dict) -> dict:
        """PATCH a contact property; for enumerations `options` replaces the whole option list."""
        return self.request("PATCH", f"/crm/v3/properties/contacts/{name}", changes)[1]

    def list_property_groups(self) -> list[dict]:
        """The contact property groups of the portal."""
        return self.request("GET", "/crm/v3/properties/contacts/groups")[1].get("results", [])

    def create_property_group(self, name: str, label: str) -> dict:
        """Create a contact property group (201); a 409 raises `HubSpotRequestError` with status 409."""
        return self.request(
            "POST", "/crm/v3/properties/contacts/groups", {"name": name, "label": label, "displayOrder": -1}
        )[1]

    def batch_upsert_contacts(self, inputs: Sequence[dict]) -> BatchResult:
        """Create or update up to 100 contacts keyed by `idProperty` (`email`).

        Each input is `{"id", "idProperty": "email", "properties": {...}, "objectWriteTraceId"}`. HubSpot
        answers 200, or 207 with per-input `errors[].context.objectWriteTraceId`; results are not in
        input order (reference hubspot-api.md §1.2, §1.4).

        Raises:
            ValueError: more than 100 inputs. Otherwise as `request`.
        """
        if len(inputs) > BATCH_LIMIT:
            raise ValueError(f"batch/upsert takes at most {BATCH_LIMIT} inputs, got {len(inputs)}")
        status, body = self.request("POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": list(inputs)})
        return BatchResult(status=status, results=body.get("results", []), errors=body.get("errors", []))

    def batch_read_contacts_by_email(self, emails: Sequence[str], properties: Sequence[str]) -> list[dict]:
        """Read up to 100 contacts by email with the given properties; missing contacts are left out."""
        if len(emails) > BATCH_LIMIT:
            raise ValueError(f"batch/read takes at most {BATCH_LIMIT} inputs, got {len(emails)}")
        body = {"idProperty": "email", "properties": list(properties), "inputs": [{"id": e} for e in emails]}
        return self.request("POST", "/crm/v3/objects/contacts/batch/read", body)[1].get("results", [])

"""HubSpot CRM v3 client: paced, deadline-bound requests whose answers are parsed into typed models.

Endpoints used (hubspot-api.md §1-§2; https://developers.hubspot.com/docs/api-reference/crm-contacts-v3/guide,
https://developers.hubspot.com/docs/api-reference/crm-properties-v3/guide):
`GET/POST/PATCH /crm/v3/properties/contacts[/{name}]`, `GET/POST /crm/v3/properties/contacts/groups`,
`POST /crm/v3/objects/contacts/batch/upsert` and `.../batch/read` (search: search.py).

Transient faults (423, 477, 5xx, connection errors, timeouts) are retried once after a short wait (`Retry-After`
honoured up to 4 s); what still fails raises `HubSpotTransientError`. 429s are not retried here: the caller
decides between waiting for the window and handing records back to the queue. Answers that are not HubSpot's
raise `HubSpotMalformedAnswer` (errors.py); how bytes are bounded is in transport.py.
"""

import json
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from hubspot_destination.domain.deadline import Deadline
from hubspot_destination.hubspot.answers import fault_for, parse
from hubspot_destination.hubspot.errors import (
    HubSpotAuthError,
    HubSpotMalformedAnswer,
    HubSpotNoTimeLeft,
    HubSpotRateLimited,
    HubSpotTransientError,
)
from hubspot_destination.hubspot.models import (
    BatchReadAnswer,
    BatchUpsertAnswer,
    ContactRecord,
    Property,
    PropertyGroup,
    PropertyGroupList,
    PropertyList,
)
from hubspot_destination.hubspot.pacing import Pacer, RateLimit
from hubspot_destination.hubspot.transport import AnswerRefused, ExchangeFailed, Transport
from hubspot_destination.limits import HUBSPOT_BATCH_INPUTS
from hubspot_destination.observability import annotation, metrics, metrics_lock, tracer

_PROPERTIES = "/crm/v3/properties/contacts"
_MAX_CONNECT_S = 3.0
_MAX_WAIT_S = 4.0  # before the retry, backoff or Retry-After
_BACKOFF_S = 0.5
_MIN_ATTEMPT_S = 1.0


class HubSpotClient:
    """A HubSpot portal, reached with a private-app token.

    Args:
        token: a function returning the private-app token; called with `refresh=True` once after a 401 so
            a rotated token is picked up (the token is never logged).
        base_url: `https://api.hubapi.com`, or the local emulator.
        timeout_s: read timeout per socket read, in seconds; an attempt, its answer included, ends within
            connect timeout (3 s at most) + `timeout_s`, whatever the server does.
        retries: retries of a transient fault (the wait before each is 4 s at most, `Retry-After` included).
        requests_per_10s: the portal's burst limit (its tier); HubSpot's headers may lower it, never raise it.
        share: how many clients (concurrent invocations) split that budget (pacing.py).
        daily_pause_s: after a `DAILY` 429, no request is sent for this long, in seconds (`paused_for`).
        in_flight: requests that may be in flight at once from several threads (sizes the connection pool);
            they share the pacing: together they stay within the client's allowance in every window.
        pacer: the pacing to use instead of one of `requests_per_10s` and `share` (another window).

    Time: every call takes an optional `deadline` (the invocation's, less a reserve) and no request outlives
    it: each attempt ends by it, a retry is made only when a whole attempt still fits, and with under 1 s left
    nothing is sent. `longest_request_s` is what a request takes at most without a deadline (every attempt
    taking its whole time, plus the waits between).
    """

    def __init__(
        self,
        token: Callable[..., str],
        base_url: str = "https://api.hubapi.com",
        timeout_s: float = 20.0,
        retries: int = 1,
        requests_per_10s: int | None = None,
        share: int = 1,
        daily_pause_s: float = 900.0,
        in_flight: int = 1,
        pacer: Pacer | None = None,
    ):
        self._token = token
        self._base_url = base_url.rstrip("/")
        self._retries = retries
        self._connect_s, self._read_s = min(_MAX_CONNECT_S, timeout_s), timeout_s
        self.longest_request_s = (retries + 1) * (self._connect_s + self._read_s) + retries * _MAX_WAIT_S
        self._transport = Transport(self._connect_s, self._read_s, connections=in_flight)
        self.pacer = pacer or Pacer(requests_per_10s, share)
        self._daily_pause_s = daily_pause_s
        self._count_lock = threading.Lock()
        self.requests_sent = 0

    def request(self, method: str, path: str, body: Any = None, deadline: Deadline | None = None) -> tuple[int, object]:
        """Send one request and return `(status, parsed JSON)` for a 2xx answer.

        Raises:
            HubSpotAuthError, HubSpotRateLimited, HubSpotTransientError (HubSpotMalformedAnswer among them),
            HubSpotNoTimeLeft, HubSpotRequestError.
        """
        payload = None if body is None else json.dumps(body).encode()
        retries_left = self._retries
        refused: HubSpotAuthError | None = None  # a 401, before the token was fetched again
        while True:
            try:
                return self._attempt(method, path, payload, deadline, refresh=refused is not None)
            except HubSpotNoTimeLeft:
                if refused is not None:
                    raise refused from None  # the 401 stands: a token fault, not a lack of time
                raise
            except HubSpotAuthError as error:
                # A 401 may mean the token was rotated: fetch it again once, then give up.
                if error.status != 401 or refused is not None:
                    raise
                refused = error
            except HubSpotMalformedAnswer:
                raise  # nothing to gain from asking again at once
            except HubSpotTransientError as error:
                waited = error.retry_after_s
                wait_s = min(_MAX_WAIT_S, waited if waited is not None else _BACKOFF_S + random.uniform(0, 0.25))
                # Retry only when a whole attempt still fits after the wait.
                fits = deadline is None or deadline.left_s() - wait_s >= self._connect_s + self._read_s
                if not retries_left or not fits:
                    raise
                retries_left -= 1
                time.sleep(wait_s)

    def _attempt(
        self, method: str, path: str, payload: bytes | None, deadline: Deadline | None, refresh: bool
    ) -> tuple[int, object]:
        headers = {"Authorization": f"Bearer {self._token(refresh=refresh)}", "Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        slot, ends_at = self._take_slot(deadline)
        with self._count_lock:
            self.requests_sent += 1
        sent = time.monotonic()
        with tracer.provider.in_subsegment(f"## HubSpot {method} {path}") as subsegment:  # no body, no token
            try:
                answer = self._transport.exchange(method, self._base_url + path, payload, headers, ends_at)
            except ExchangeFailed as error:
                raise HubSpotTransientError(None, message=str(error)) from None
            except AnswerRefused as error:
                raise HubSpotMalformedAnswer(error.status, message=str(error)) from None
            finally:
                # How long HubSpot takes to answer sizes DeliverMaximumConcurrency (README).
                elapsed_ms = (time.monotonic() - sent) * 1000
                with metrics_lock:
                    metrics.add_metric(name="HubSpotResponseTime", unit=MetricUnit.Milliseconds, value=elapsed_ms)
            subsegment.put_annotation("status", annotation(answer.status))
        rate_limit = RateLimit.from_headers(answer.headers)
        self.pacer.observe(rate_limit, slot)
        if not 200 <= answer.status < 300:
            fault = fault_for(answer, rate_limit)
            if isinstance(fault, HubSpotRateLimited) and fault.policy_name == "DAILY":
                self.pacer.pause(self._daily_pause_s)  # the whole portal is out of requests for the day
            raise fault
        try:
            return answer.status, json.loads(answer.body.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError included; every endpoint used answers a JSON body
            raise HubSpotMalformedAnswer(answer.status, message="the answer is not UTF-8 JSON") from None

    def _take_slot(self, deadline: Deadline | None) -> tuple[float, float]:
        """Reserve the next slot the pacing allows and wait for it.

        Returns:
            `(slot, end)`: when the request goes and when its attempt must end (monotonic seconds).

        Raises:
            HubSpotNoTimeLeft: less than 1 s would be left at the slot (nothing is reserved or sent).
        """
        left_s = None if deadline is None else deadline.left_s()
        taken = self.pacer.reserve(None if left_s is None else left_s - _MIN_ATTEMPT_S)
        if taken is None:
            raise HubSpotNoTimeLeft()
        slot, wait_s = taken
        if wait_s > 0:
            time.sleep(wait_s)
        attempt_s = (
            self._connect_s + self._read_s if left_s is None else min(self._connect_s + self._read_s, left_s - wait_s)
        )
        return slot, time.monotonic() + attempt_s

    def pause(self, seconds: float) -> None:
        """Stop calling HubSpot for `seconds` (e.g. after the DAILY limit); see `paused_for`."""
        self.pacer.pause(seconds)

    def paused_for(self) -> float:
        """Seconds left in a pause set by `pause`, 0 when not paused."""
        return self.pacer.paused_for()

    def list_properties(self, deadline: Deadline | None = None) -> list[Property]:
        """All contact properties of the portal (HubSpot-defined and custom)."""
        return parse(PropertyList, *self.request("GET", _PROPERTIES, deadline=deadline)).results

    def create_property(self, definition: dict, deadline: Deadline | None = None) -> Property:
        """Create a contact property (201); a 409 raises `HubSpotRequestError` with status 409."""
        return parse(Property, *self.request("POST", _PROPERTIES, definition, deadline))

    def update_property(self, name: str, changes: dict, deadline: Deadline | None = None) -> Property:
        """PATCH a contact property; for enumerations `options` replaces the whole option list."""
        return parse(Property, *self.request("PATCH", f"{_PROPERTIES}/{name}", changes, deadline))

    def list_property_groups(self, deadline: Deadline | None = None) -> list[PropertyGroup]:
        """The contact property groups of the portal."""
        return parse(PropertyGroupList, *self.request("GET", f"{_PROPERTIES}/groups", deadline=deadline)).results

    def create_property_group(self, name: str, label: str, deadline: Deadline | None = None) -> PropertyGroup:
        """Create a contact property group (201); a 409 raises `HubSpotRequestError` with status 409."""
        body = {"name": name, "label": label, "displayOrder": -1}
        return parse(PropertyGroup, *self.request("POST", f"{_PROPERTIES}/groups", body, deadline))

    def batch_upsert_contacts(self, inputs: Sequence[dict], deadline: Deadline | None = None) -> BatchUpsertAnswer:
        """Create or update up to 100 contacts keyed by `idProperty` (`email`).

        Each input is `{"id", "idProperty": "email", "properties": {...}, "objectWriteTraceId"}`. HubSpot
        answers 200, or 207 with per-input `errors[].context.objectWriteTraceId`; results are not in
        input order (hubspot-api.md §1.2, §1.4).

        Raises:
            ValueError: more than 100 inputs. Otherwise as `request`.
        """
        if len(inputs) > HUBSPOT_BATCH_INPUTS:
            raise ValueError(f"batch/upsert takes at most {HUBSPOT_BATCH_INPUTS} inputs, got {len(inputs)}")
        answer = self.request("POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": list(inputs)}, deadline)
        return parse(BatchUpsertAnswer, *answer)

    def batch_read_contacts_by_email(self, emails: Sequence[str], properties: Sequence[str]) -> list[ContactRecord]:
        """Read up to 100 contacts by email with the given properties; missing contacts are left out."""
        if len(emails) > HUBSPOT_BATCH_INPUTS:
            raise ValueError(f"batch/read takes at most {HUBSPOT_BATCH_INPUTS} inputs, got {len(emails)}")
        body = {"idProperty": "email", "properties": list(properties), "inputs": [{"id": e} for e in emails]}
        return parse(BatchReadAnswer, *self.request("POST", "/crm/v3/objects/contacts/batch/read", body)).results

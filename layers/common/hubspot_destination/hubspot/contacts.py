"""Writing contacts with `batch/upsert`: every input comes back as an outcome, whatever HubSpot answered.

What HubSpot means is handled here, so the delivery logic sees outcomes, not HTTP (hubspot-api.md §1.2-§1.7):
- inputs go in calls of at most 100, keyed by `idProperty: email`, each with an `objectWriteTraceId`, up to
  `in_flight` calls at once whichever threads call `upsert` (sharing the client's pacing); one `upsert`'s
  emails are unique and the delivery pipeline's groups hold distinct contacts, so no contact is in two calls
  at once (HubSpot would apply them in an order nobody chose);
- a 200/207 is reconciled input by input: `results` by trace id (or email), `errors[].context.
  objectWriteTraceId` with the property problems they name; an input in neither is `Unaccounted`;
- a 400 for the whole call (one bad input spoils the batch) is bisected until the bad inputs stand alone;
- a `TEN_SECONDLY_ROLLING` 429 is waited out when the deadline allows, and sent again;
- any other fault fails every input of the call (`Failed`), and a `DAILY` 429 or a refused token stops the
  calls not yet started (they would fail the same way): those of this `upsert`, and of every `upsert` given
  the same `Halt` (the delivery pipeline's groups share one per batch).
"""

import json
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aws_lambda_powertools.metrics import MetricUnit

from hubspot_destination.domain.deadline import Deadline
from hubspot_destination.hubspot.client import HubSpotClient
from hubspot_destination.hubspot.errors import HubSpotAuthError, HubSpotError, HubSpotRateLimited, HubSpotRequestError
from hubspot_destination.hubspot.models import BatchUpsertAnswer, ErrorEnvelope
from hubspot_destination.limits import HUBSPOT_BATCH_INPUTS
from hubspot_destination.observability import metrics, metrics_lock

EMAIL_PROPERTY = "email"
_PROPERTY_ERRORS_PREFIX = "Property values were not valid: "
_MIN_ATTEMPT_S = 1.0
_WINDOW_S = 10.0  # the burst window, when a 429 names no wait


@dataclass(frozen=True)
class ContactInput:
    """One contact to write: its email (the `id`) and its properties as HubSpot strings (email included)."""

    email: str
    properties: Mapping[str, str]


@dataclass(frozen=True)
class Written:
    """HubSpot holds the input's values."""


@dataclass(frozen=True)
class Refused:
    """HubSpot refused the input for its values: `problems` maps property names to HubSpot's error codes
    (`email` among them for an invalid email; empty when none was named), `message` is HubSpot's text."""

    problems: Mapping[str, str]
    message: str


@dataclass(frozen=True)
class Failed:
    """The call carrying the input failed for a reason that is not the input's (throttling, a fault, time)."""

    fault: HubSpotError


@dataclass(frozen=True)
class Unaccounted:
    """HubSpot's answer did not mention the input: it is never counted as written."""


Outcome = Written | Refused | Failed | Unaccounted


def property_errors(envelope: ErrorEnvelope) -> dict[str, str]:
    """Property-level problems of a HubSpot error: `{property name: error code}`.

    Reads both shapes HubSpot uses (hubspot-api.md §1.7): the JSON array inside `message` ("Property values
    were not valid: [...]") and `errors[].code` with `context.propertyName`. Items of another shape are
    passed over.
    """
    found: dict[str, str] = {}
    if envelope.message.startswith(_PROPERTY_ERRORS_PREFIX):
        try:
            items = json.loads(envelope.message[len(_PROPERTY_ERRORS_PREFIX) :])
        except ValueError:
            items = []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"]:
                code = item.get("error")
                found[item["name"]] = code if isinstance(code, str) and code else "INVALID_VALUE"
    for detail in envelope.errors:
        for name in detail.context.propertyName:
            found.setdefault(name, detail.code or "INVALID_VALUE")
    return found


def _refused(envelope: ErrorEnvelope) -> Refused:
    return Refused(property_errors(envelope), f"{envelope.category or ''}: {envelope.message}"[:1000])


def _halts(fault: HubSpotError) -> bool:
    """Whether every later call would fail the same way: the daily limit, or a refused token."""
    return isinstance(fault, HubSpotAuthError) or (
        isinstance(fault, HubSpotRateLimited) and fault.policy_name == "DAILY"
    )


class Halt:
    """The fault that stops the `batch/upsert` calls not yet sent by the `upsert`s sharing it (threads): the
    first daily limit or refused token one of them met. A call skipped so fails its inputs with that fault."""

    def __init__(self) -> None:
        self.fault: HubSpotError | None = None

    def note(self, fault: HubSpotError) -> None:
        """Keep `fault` if it halts and none was kept before."""
        if self.fault is None and _halts(fault):
            self.fault = fault


class HubSpotContacts:
    """The contact writer of one portal (implements `deliver.ports.ContactWriter`).

    Args:
        client: the portal's client (thread-safe; the calls of every thread share its pacing's allowance).
        in_flight: `batch/upsert` calls in flight at once, whichever threads call `upsert`.
    """

    def __init__(self, client: HubSpotClient, in_flight: int = 1):
        self._client = client
        self._pool = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="hubspot-upserts")

    def paused_for(self) -> float:
        """Seconds left in a pause after the daily limit (0 when HubSpot may be called)."""
        return self._client.paused_for()

    def upsert(
        self, inputs: Sequence[ContactInput], deadline: Deadline, halt: Halt | None = None
    ) -> dict[str, Outcome]:
        """Write the inputs in calls of at most 100, several at once; one outcome per email.

        Args:
            halt: shared with other `upsert`s running at once, so that a halting fault any of them meets stops
                the calls none has sent yet; by default this call's own.

        Raises:
            ValueError: an email is given twice (two calls in flight could carry one contact).
        """
        emails = {item.email for item in inputs}
        if len(emails) != len(inputs):
            raise ValueError("upsert needs unique emails: two calls in flight must never carry one contact")
        chunks = [inputs[start : start + HUBSPOT_BATCH_INPUTS] for start in range(0, len(inputs), HUBSPOT_BATCH_INPUTS)]
        stop = halt or Halt()

        def send(chunk: Sequence[ContactInput]) -> dict[str, Outcome]:
            if stop.fault is not None:  # checked once the call has its slot of the pool
                return dict.fromkeys((item.email for item in chunk), Failed(stop.fault))
            outcomes = self._send(chunk, deadline)
            for outcome in outcomes.values():
                if isinstance(outcome, Failed):
                    stop.note(outcome.fault)
            return outcomes

        # Always on the pool, even one chunk: its bound holds across every thread that calls `upsert` at once.
        sent = self._pool.map(send, chunks)
        return {email: outcome for outcomes in sent for email, outcome in outcomes.items()}

    def _send(self, chunk: Sequence[ContactInput], deadline: Deadline) -> dict[str, Outcome]:
        """One `batch/upsert` call, bisected on a whole-call 400 and sent again after a burst 429."""
        trace_ids = {str(index): item for index, item in enumerate(chunk)}
        body = [
            {"id": item.email, "idProperty": EMAIL_PROPERTY, "objectWriteTraceId": tid, "properties": item.properties}
            for tid, item in trace_ids.items()
        ]
        try:
            answer = self._client.batch_upsert_contacts(body, deadline)
        except HubSpotRateLimited as error:
            with metrics_lock:
                metrics.add_metric(name="HubSpotThrottled", unit=MetricUnit.Count, value=1)
            wait_s = error.retry_after_s or (error.rate_limit.interval_ms or 0) / 1000 or _WINDOW_S
            if error.policy_name != "DAILY" and deadline.left_s() - wait_s > _MIN_ATTEMPT_S:
                time.sleep(wait_s)  # the burst window rolls over; bounded by the deadline
                return self._send(chunk, deadline)
            return dict.fromkeys((item.email for item in chunk), Failed(error))
        except HubSpotRequestError as error:
            if error.status == 400 and len(chunk) > 1:
                middle = len(chunk) // 2  # some input(s) spoiled the whole call: isolate them
                return {**self._send(chunk[:middle], deadline), **self._send(chunk[middle:], deadline)}
            if error.status == 400:
                return {chunk[0].email: _refused(error.envelope)}
            return dict.fromkeys((item.email for item in chunk), Failed(error))
        except HubSpotError as error:
            return dict.fromkeys((item.email for item in chunk), Failed(error))
        return self._reconcile(answer, trace_ids)

    @staticmethod
    def _reconcile(answer: BatchUpsertAnswer, trace_ids: Mapping[str, ContactInput]) -> dict[str, Outcome]:
        """Each input's outcome from a 200/207; an input the answer does not name is `Unaccounted`."""
        by_email = {item.email: item for item in trace_ids.values()}
        outcomes: dict[str, Outcome] = {}
        for result in answer.results:
            # By trace id; by email only when HubSpot echoed none (a trace id never sent is not ours).
            if result.objectWriteTraceId is not None:
                item = trace_ids.get(result.objectWriteTraceId)
            else:
                item = by_email.get((result.properties.get(EMAIL_PROPERTY) or "").lower())
            if item is not None:
                outcomes.setdefault(item.email, Written())
        for envelope in answer.errors:
            for tid in envelope.context.objectWriteTraceId:
                item = trace_ids.get(tid)  # an input it does not name is never blamed
                if item is not None:
                    outcomes.setdefault(item.email, _refused(envelope))
        return {item.email: outcomes.get(item.email, Unaccounted()) for item in trace_ids.values()}

"""Delivery: coalesce queue messages per contact, write them with `batch/upsert`, reconcile every input.

One profile's path: queue message → `coalesce` (one input per email: attributes merged field by field,
newest wins; audiences by newest `lastQualificationTime`) → the contact leased in the versions table and
fields older than what was already written dropped (`ordering`) → audience properties ensured → attributes
coerced by the live property type → `batch/upsert` by email in calls of at most 100 inputs, each with an
`objectWriteTraceId` → every input accounted for in `results` or `errors` → a `Verdict` for every
message that contributed to the input.

Verdicts: `delivered`; `requeue` (back-pressure: throttling, the daily limit, a token fault; the message is
sent again as a new message after a delay, so waiting never burns `maxReceiveCount`); `retry` (5xx,
timeouts and resets that outlived the client's own retries, unaccounted inputs: a batch item failure, SQS
redelivers); `dead_letter` with a reason code (`INVALID_EMAIL`, `INVALID_VALUE`, `PROPERTY_CONFLICT`,
`MALFORMED_MESSAGE`, `RETRIES_EXHAUSTED`) for what HubSpot will never accept, so it is not retried.
"""

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from hubspot_destination.audiences import AudienceProperties, PropertyCatalog
from hubspot_destination.coercion import CoercionError, NumberFormat, coerce
from hubspot_destination.hubspot.client import BATCH_LIMIT, HubSpotClient
from hubspot_destination.hubspot.errors import (
    HubSpotAuthError,
    HubSpotError,
    HubSpotMalformedAnswer,
    HubSpotNoTimeLeft,
    HubSpotRateLimited,
    HubSpotRequestError,
)
from hubspot_destination.hubspot.models import ErrorEnvelope
from hubspot_destination.models import AttributeValue, AudienceUpdate, ProfileUpdate
from hubspot_destination.observability import email_hash, logger, metrics
from hubspot_destination.ordering import ContactVersions, Lease, VersionsNotRecorded, WrittenVersions, epoch_us

_PROPERTY_ERRORS_PREFIX = "Property values were not valid: "
_EMAIL_PROPERTY = "email"
# Keep this much of the invocation for settling the batch (dead letters, partial batch response), in ms.
_SETTLE_RESERVE_MS = 5_000
_MIN_REQUEST_MS = 1_000  # the HubSpot client sends nothing with less than this left
_MAX_ROUNDS = 3
# A contact leased by a concurrent invocation is requeued for this long, in seconds.
_BUSY_REQUEUE_S = 5


@dataclass(frozen=True)
class Verdict:
    """The fate of one queue message."""

    kind: Literal["delivered", "requeue", "retry", "dead_letter"]
    reason: str = ""
    detail: str = ""
    delay_s: int = 0  # for `requeue`: how long the new message stays hidden, in seconds


DELIVERED = Verdict("delivered")
# Not sent for lack of time in the invocation: handed back at once, without counting an attempt.
_OUT_OF_TIME = Verdict("requeue", "TIMEOUT", "the invocation ran out of time before sending this contact")
# Some of the contact's audience properties wait for a later invocation (AudienceLimits.max_created).
_AUDIENCES_PENDING = Verdict(
    "requeue", "AUDIENCE_PROPERTIES_PENDING", "audience properties still to be created", _BUSY_REQUEUE_S
)


@dataclass
class ContactWrite:
    """One contact's merged update and the queue messages it came from.

    `attributes` maps property names to raw values and `attribute_times` to when each value was observed;
    `audiences` holds the newest status per audience id.
    """

    email: str
    message_ids: list[str] = field(default_factory=list)
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    attribute_times: dict[str, datetime] = field(default_factory=dict)
    audiences: dict[str, AudienceUpdate] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    audience_properties: dict[str, str] = field(default_factory=dict)  # audience id → property name sent
    verdict: Verdict | None = None
    lease: Lease | None = None

    def add(self, message_id: str, update: ProfileUpdate) -> None:
        """Merge one update: its attributes win over older ones, its statuses over older qualifications."""
        self.message_ids.append(message_id)
        for name, value in update.attributes.items():
            if name not in self.attribute_times or update.observed_at >= self.attribute_times[name]:
                self.attributes[name] = value
                self.attribute_times[name] = update.observed_at
        for audience_id, status in update.audiences.items():
            current = self.audiences.get(audience_id)
            if current is None or status.qualified_at >= current.qualified_at:
                self.audiences[audience_id] = status


def coalesce(updates: Iterable[tuple[str, ProfileUpdate]]) -> dict[str, ContactWrite]:
    """Merge `(message id, update)` pairs into one `ContactWrite` per email.

    Attributes merge field by field, the newest `observed_at` winning; each audience keeps the status
    with the newest `qualified_at` (ties: the later message). The result never holds an email twice, so
    no HubSpot request carries the same contact twice (HubSpot refuses such a batch whole, reference
    hubspot-api.md §1.5).
    """
    contacts: dict[str, ContactWrite] = {}
    for message_id, update in sorted(updates, key=lambda pair: pair[1].observed_at):
        contacts.setdefault(update.email, ContactWrite(update.email)).add(message_id, update)
    return contacts


def property_errors(envelope: ErrorEnvelope) -> dict[str, str]:
    """Property-level problems of a HubSpot error: `{property name: error code}`.

    Reads both shapes HubSpot uses (reference hubspot-api.md §1.7): the JSON array inside
    `message` ("Property values were not valid: [...]") and `errors[].code` with
    `context.propertyName`. Items of another shape are passed over.
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


@dataclass(frozen=True)
class DeliveryPolicy:
    """Choices an operator makes (README, "Configuration").

    `strict`: a profile with an unknown, read-only or invalid attribute is dead-lettered (`INVALID_VALUE`)
    instead of being written without that field. `number_format`: rounding and separators for numbers.
    The `*_requeue_s` delays (seconds, at most 900, SQS's largest `DelaySeconds`) space out the retries of
    back-pressure: a 10-second burst limit hit with no time left, the daily limit, a refused token.
    """

    strict: bool = False
    number_format: NumberFormat = field(default_factory=NumberFormat)
    throttle_requeue_s: int = 30
    daily_requeue_s: int = 900
    auth_requeue_s: int = 300


class Deliverer:
    """Writes contacts to one HubSpot portal.

    Args:
        client: the HubSpot adapter; its `time_left_s` is bound to this invocation's remaining time.
        catalog: the portal's contact properties (cached).
        audiences: ensures audience properties.
        versions: the contact versions table (order across batches).
        remaining_ms: milliseconds left in this invocation (`context.get_remaining_time_in_millis`).
        policy: strict mode and number format.
    """

    def __init__(
        self,
        client: HubSpotClient,
        catalog: PropertyCatalog,
        audiences: AudienceProperties,
        versions: ContactVersions,
        remaining_ms: Callable[[], int],
        policy: DeliveryPolicy = DeliveryPolicy(),
    ):
        self._client = client
        self._catalog = catalog
        self._audiences = audiences
        self._versions = versions
        self._remaining_ms = remaining_ms
        # No HubSpot request may outlive the invocation: a killed invocation's batch costs a receive.
        client.time_left_s = lambda: (remaining_ms() - _SETTLE_RESERVE_MS) / 1000
        self._policy = policy
        self._catalog_refreshed = False
        self._halt: Verdict | None = None  # set by the daily limit or a token fault: stop calling HubSpot

    # -- order across batches --------------------------------------------------------------------
    def _lease(self, contacts: Iterable[ContactWrite]) -> None:
        """Lease the contacts and drop the fields older than what was already written.

        A contact leased elsewhere is requeued; one whose every field is stale is settled as delivered
        without calling HubSpot (a late or replayed message). Raises `ClientError` when DynamoDB fails.
        """
        contacts = list(contacts)
        leasing = self._versions.acquire([contact.email for contact in contacts])
        for contact in contacts:
            contact.lease = leasing.leases.get(contact.email)
            if contact.email in leasing.failed:
                contact.verdict = Verdict("retry", "VERSIONS_UNAVAILABLE", leasing.failed[contact.email])
                continue
            if contact.lease is None:
                detail = "another invocation is writing this contact"
                contact.verdict = Verdict("requeue", "CONTACT_BUSY", detail, _BUSY_REQUEUE_S)
                continue
            written = contact.lease.written
            stale = [n for n, t in contact.attribute_times.items() if written.attributes.get(n, -1) > epoch_us(t)]
            for name in stale:
                del contact.attributes[name], contact.attribute_times[name]
            old = [a for a, s in contact.audiences.items() if written.audiences.get(a, -1) > epoch_us(s.qualified_at)]
            for audience_id in old:
                del contact.audiences[audience_id]
            if (stale or old) and not contact.attributes and not contact.audiences:
                metrics.add_metric(name="StaleUpdatesSkipped", unit=MetricUnit.Count, value=1)
                contact.verdict = DELIVERED

    def _record(self, contacts: Iterable[ContactWrite]) -> None:
        """Record what was written for each leased contact and release the leases."""
        leased = [contact for contact in contacts if contact.lease is not None]
        written: dict[str, WrittenVersions] = {}
        for contact in leased:
            verdict = contact.verdict
            accepted = verdict == DELIVERED or (verdict is not None and verdict.reason == "PROPERTY_CONFLICT")
            if accepted and contact.properties:
                written[contact.email] = WrittenVersions(
                    attributes={n: epoch_us(t) for n, t in contact.attribute_times.items() if n in contact.properties},
                    audiences={
                        a: epoch_us(contact.audiences[a].qualified_at)
                        for a, name in contact.audience_properties.items()
                        if name in contact.properties
                    },
                )
        try:
            self._versions.release([contact.lease for contact in leased], written)
        except VersionsNotRecorded as error:
            # HubSpot holds these writes; an older message could now overwrite them: alarm on this metric.
            unrecorded = sum(1 for email in error.emails if email in written)
            metrics.add_metric(name="VersionsNotRecorded", unit=MetricUnit.Count, value=unrecorded)
            logger.error("contact versions not recorded", extra={"error": str(error)})

    # -- building inputs -------------------------------------------------------------------------
    def _build_properties(self, contact: ContactWrite, audience_names: dict[str, str]) -> None:
        properties = {_EMAIL_PROPERTY: contact.email}
        for name, value in contact.attributes.items():
            if name == _EMAIL_PROPERTY:
                # The identity (identityMap) keys the contact and owns its email; a mapped email is ignored.
                logger.warning("email attribute ignored", extra={"contact": email_hash(contact.email)})
                continue
            if self._audiences.owns(name):
                # Only memberships write an audience's status, in order (an attribute could reverse an exit).
                self._drop(contact, name, "AUDIENCE_PROPERTY", "an audience property is written from memberships only")
                continue
            prop = self._catalog.get(name)
            if prop is None:
                self._drop(contact, name, "PROPERTY_DOESNT_EXIST", "no such contact property in the portal")
                continue
            try:
                properties[name] = coerce(value, prop, self._policy.number_format)
            except CoercionError as error:
                self._drop(contact, name, error.code, str(error))
        for audience_id, status in contact.audiences.items():
            if audience_id in audience_names:
                properties[audience_names[audience_id]] = status.status
                contact.audience_properties[audience_id] = audience_names[audience_id]
        contact.properties = properties

    def _drop(self, contact: ContactWrite, name: str, code: str, detail: str) -> None:
        """A field HubSpot cannot take is left out and the rest of the contact is still written; in strict
        mode the whole profile is dead-lettered instead."""
        metrics.add_metric(name="AttributesDropped", unit=MetricUnit.Count, value=1)
        # The detail may quote the value (personal data): it goes to the dead letter, never to the log.
        logger.warning(
            "attribute dropped", extra={"contact": email_hash(contact.email), "property": name, "code": code}
        )
        if self._policy.strict and contact.verdict is None:
            contact.verdict = Verdict("dead_letter", "INVALID_VALUE", f"{name}: {code}: {detail}"[:1000])

    # -- sending ---------------------------------------------------------------------------------
    def _has_time(self, wait_ms: float = 0) -> bool:
        """Whether a request can still be sent after waiting `wait_ms`: the settle reserve plus 1 s is left."""
        return self._remaining_ms() - wait_ms > _SETTLE_RESERVE_MS + _MIN_REQUEST_MS

    def _retry_all(self, contacts: Iterable[ContactWrite], reason: str, detail: str) -> None:
        self._settle_all(contacts, Verdict("retry", reason, detail))

    @staticmethod
    def _settle_all(contacts: Iterable[ContactWrite], verdict: Verdict) -> None:
        for contact in contacts:
            contact.verdict = verdict

    def _on_fault(self, contacts: list[ContactWrite], error: HubSpotError) -> None:
        """Settle contacts after HubSpot failed a call: back-pressure is requeued, never dead-lettered."""
        policy = self._policy
        if isinstance(error, HubSpotRateLimited) and error.policy_name == "DAILY":
            metrics.add_metric(name="HubSpotDailyLimitReached", unit=MetricUnit.Count, value=1)
            logger.error("HubSpot daily limit reached: pausing", extra={"pause_s": policy.daily_requeue_s})
            self._client.pause(policy.daily_requeue_s)
            self._halt = Verdict("requeue", "DAILY_LIMIT", str(error), policy.daily_requeue_s)
            self._settle_all(contacts, self._halt)
        elif isinstance(error, HubSpotRateLimited):
            self._settle_all(contacts, Verdict("requeue", "RATE_LIMITED", str(error), policy.throttle_requeue_s))
        elif isinstance(error, HubSpotNoTimeLeft):
            self._settle_all(contacts, _OUT_OF_TIME)
        elif isinstance(error, HubSpotMalformedAnswer):
            logger.warning("HubSpot's answer was not understood", extra={"status": error.status, "error": str(error)})
            self._retry_all(contacts, "HUBSPOT_MALFORMED_ANSWER", str(error))
        elif isinstance(error, HubSpotAuthError):
            # A configuration fault (revoked token, missing scope) must not empty the queue into the DLQ.
            metrics.add_metric(name="HubSpotAuthFailures", unit=MetricUnit.Count, value=1)
            logger.error("HubSpot refused the token", extra={"status": error.status, "category": error.category})
            self._halt = Verdict("requeue", "HUBSPOT_AUTH", str(error), policy.auth_requeue_s)
            self._settle_all(contacts, self._halt)
        else:
            self._retry_all(contacts, "HUBSPOT_UNAVAILABLE", str(error))

    def _settle_input_error(self, contact: ContactWrite, envelope: ErrorEnvelope) -> bool:
        """Apply one input's error: True when the input should be sent again without the bad fields."""
        problems = property_errors(envelope)
        if _EMAIL_PROPERTY in problems:
            contact.verdict = Verdict("dead_letter", "INVALID_EMAIL", f"HubSpot: {problems[_EMAIL_PROPERTY]}")
            return False
        if not problems:
            detail = f"HubSpot {envelope.category or ''}: {envelope.message}"[:1000]
            contact.verdict = Verdict("dead_letter", "INVALID_VALUE", detail)
            return False
        if "PROPERTY_DOESNT_EXIST" in problems.values() and not self._catalog_refreshed:
            self._catalog_refreshed = True
            try:
                self._catalog.refresh()  # someone may have deleted or renamed a property: read them again once
            except HubSpotError as error:
                logger.warning("property list not refreshed", extra={"error": str(error)})
        for name, code in problems.items():
            self._drop(contact, name, code, "refused by HubSpot")
            contact.properties.pop(name, None)
        return contact.verdict is None

    def _upsert(self, contacts: list[ContactWrite]) -> list[ContactWrite]:
        """One `batch/upsert` call; returns the contacts to send again (bad fields removed)."""
        if self._halt is not None:
            self._settle_all(contacts, self._halt)
            return []
        trace_ids = {f"{index}": contact for index, contact in enumerate(contacts)}
        inputs = [
            {"id": c.email, "idProperty": _EMAIL_PROPERTY, "objectWriteTraceId": tid, "properties": c.properties}
            for tid, c in trace_ids.items()
        ]
        try:
            result = self._client.batch_upsert_contacts(inputs)
        except HubSpotRateLimited as error:
            metrics.add_metric(name="HubSpotThrottled", unit=MetricUnit.Count, value=1)
            wait_ms = error.retry_after_s * 1000 if error.retry_after_s else (error.rate_limit.interval_ms or 10_000)
            if error.policy_name != "DAILY" and self._has_time(wait_ms):
                time.sleep(wait_ms / 1000)  # the burst window rolls over; bounded by the invocation's time
                return self._upsert(contacts)
            self._on_fault(contacts, error)
            return []
        except HubSpotRequestError as error:
            if error.status == 400 and len(contacts) > 1:
                # The whole request was refused for some input(s): isolate them by halving.
                middle = len(contacts) // 2
                return self._upsert(contacts[:middle]) + self._upsert(contacts[middle:])
            if error.status == 400:
                return [contacts[0]] if self._settle_input_error(contacts[0], error.envelope) else []
            self._retry_all(contacts, "HUBSPOT_ERROR", str(error))
            return []
        except HubSpotError as error:
            self._on_fault(contacts, error)
            return []

        resend: list[ContactWrite] = []
        by_email = {c.email: c for c in contacts}
        for item in result.results:
            contact = trace_ids.get(item.objectWriteTraceId or "") or by_email.get(
                (item.properties.get(_EMAIL_PROPERTY) or "").lower()
            )
            if contact is not None and contact.verdict is None:
                contact.verdict = DELIVERED
        for envelope in result.errors:
            for tid in envelope.context.objectWriteTraceId:
                contact = trace_ids.get(tid)  # an input it does not name is never blamed
                if contact is not None and contact.verdict is None and self._settle_input_error(contact, envelope):
                    resend.append(contact)
        for contact in contacts:
            if contact.verdict is None and contact not in resend:
                # Neither in results nor in errors: never count it as written.
                contact.verdict = Verdict("retry", "UNACCOUNTED", "HubSpot's answer did not mention this input")
        return resend

    def deliver(self, updates: Sequence[tuple[str, ProfileUpdate]]) -> dict[str, Verdict]:
        """Write the updates to HubSpot and return a verdict per message id."""
        contacts = coalesce(updates)
        if not contacts:
            return {}
        paused_s = self._client.paused_for()
        if paused_s:
            detail = "the portal's daily limit was reached; HubSpot is not called until the pause ends"
            self._settle_all(contacts.values(), Verdict("requeue", "DAILY_LIMIT", detail, int(paused_s) + 1))
            return self._verdicts(contacts.values())
        try:
            self._lease(contacts.values())
        except (BotoCoreError, ClientError) as error:
            # The items could not be read, so no lease was taken.
            self._retry_all(contacts.values(), "VERSIONS_UNAVAILABLE", str(error))
            return self._verdicts(contacts.values())
        try:
            self._write([c for c in contacts.values() if c.verdict is None])
        finally:
            self._record(contacts.values())
        return self._verdicts(contacts.values())

    def _write(self, contacts: list[ContactWrite]) -> None:
        """Ensure audience properties and write the contacts."""
        if not contacts:
            return
        newest_names: dict[str, str] = {}
        for contact in contacts:
            for audience_id, status in contact.audiences.items():
                newest_names[audience_id] = status.name
        try:
            # Both may call HubSpot: the property list (cached) and the audience properties.
            resolution = self._audiences.resolve(newest_names)
            for contact in contacts:
                self._build_properties(contact, resolution.names)
        except HubSpotError as error:
            self._on_fault(contacts, error)
            return
        for audience_id in resolution.conflicts:
            metrics.add_metric(name="AudiencePropertyConflicts", unit=MetricUnit.Count, value=1)
            logger.error("audience status not written", extra={"audience": audience_id})
        for contact in contacts:
            if contact.verdict is None and resolution.deferred & contact.audiences.keys():
                contact.verdict = _AUDIENCES_PENDING
        pending = [contact for contact in contacts if contact.verdict is None]
        for _ in range(_MAX_ROUNDS):
            if not pending:
                break
            if not self._has_time():
                self._settle_all(pending, _OUT_OF_TIME)
                pending = []
                break
            again: list[ContactWrite] = []
            for start in range(0, len(pending), BATCH_LIMIT):
                again.extend(self._upsert(pending[start : start + BATCH_LIMIT]))
            pending = again
        for contact in pending:
            contact.verdict = Verdict("dead_letter", "INVALID_VALUE", "HubSpot kept refusing this contact's values")
        self._flag_conflicts(contacts, resolution.conflicts)

    @staticmethod
    def _flag_conflicts(contacts: Iterable[ContactWrite], conflicts: dict[str, str]) -> None:
        """A contact written without an audience's status (its property has an incompatible type) is also
        dead-lettered as `PROPERTY_CONFLICT`, so a redrive after fixing the property completes it."""
        for contact in contacts:
            missing = [audience_id for audience_id in contact.audiences if audience_id in conflicts]
            if missing and contact.verdict == DELIVERED:
                detail = "written without these audiences' status: " + "; ".join(conflicts[a] for a in missing)
                contact.verdict = Verdict("dead_letter", "PROPERTY_CONFLICT", detail[:1000])

    @staticmethod
    def _verdicts(contacts: Iterable[ContactWrite]) -> dict[str, Verdict]:
        verdicts: dict[str, Verdict] = {}
        for contact in contacts:
            verdict = contact.verdict or Verdict("retry", "UNACCOUNTED", "not attempted")
            if verdict.kind == "dead_letter":
                metrics.add_metric(
                    name=f"DeadLetters{verdict.reason.title().replace('_', '')}", unit=MetricUnit.Count, value=1
                )
            for message_id in contact.message_ids:
                verdicts[message_id] = verdict
        return verdicts

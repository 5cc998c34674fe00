"""Delivery: one batch of profiles written to HubSpot, and a verdict for every profile.

`Delivery.deliver` reads as its list of steps (steps.py): coalesce → lease versions → drop stale values →
resolve audience properties → build properties → upsert → classify outcomes → record versions. Verdicts:
`delivered`; `requeue` (back-pressure, faults.py); `retry` (transient faults); `dead_letter` with a reason for
what HubSpot will never accept (`INVALID_EMAIL`, `INVALID_VALUE`, `PROPERTY_CONFLICT`).
"""

from collections.abc import Sequence

from aws_lambda_powertools.metrics import MetricUnit

from hubspot_destination.deliver.faults import HALTS, fault_verdict
from hubspot_destination.deliver.policy import DeliveryPolicy
from hubspot_destination.deliver.ports import AudienceResolver, ContactWriter, PropertyCatalog, VersionsStore
from hubspot_destination.deliver.steps import (
    BUSY_REQUEUE_S,
    Built,
    Settled,
    audience_names,
    build_properties,
    drop_stale_values,
    flag_conflicts,
    lease_versions,
    record_versions,
    report_dropped,
)
from hubspot_destination.domain.contacts import ContactChange, coalesce
from hubspot_destination.domain.deadline import Deadline
from hubspot_destination.domain.profiles import ProfileUpdate
from hubspot_destination.domain.reasons import Reason
from hubspot_destination.domain.verdicts import DELIVERED, Verdict
from hubspot_destination.hubspot.contacts import EMAIL_PROPERTY, Failed, Refused, Written
from hubspot_destination.hubspot.errors import HubSpotError
from hubspot_destination.observability import logger, metrics

_MAX_ROUNDS = 3  # sends of one contact, each without the fields HubSpot refused the time before


class Delivery:
    """Writes batches of profiles to one HubSpot portal through its ports (ports.py)."""

    def __init__(
        self,
        contacts: ContactWriter,
        catalog: PropertyCatalog,
        audiences: AudienceResolver,
        versions: VersionsStore,
        policy: DeliveryPolicy,
    ):
        self._contacts, self._catalog, self._audiences = contacts, catalog, audiences
        self._versions, self._policy = versions, policy

    def deliver(self, updates: Sequence[tuple[str, ProfileUpdate]], deadline: Deadline) -> dict[str, Verdict]:
        """Write the updates (`(ref, update)` pairs) and return a verdict per ref."""
        changes = list(coalesce(updates).values())
        paused_s = self._contacts.paused_for()
        if paused_s:
            detail = "the portal's daily limit was reached; HubSpot is not called until the pause ends"
            paused = Verdict("requeue", Reason.DAILY_LIMIT, detail, int(paused_s) + 1)
            return _by_ref(changes, {change.email: paused for change in changes})
        leased, settled = lease_versions(self._versions, changes)
        accepted: list[Built] = []
        try:
            fresh, skipped = drop_stale_values(leased)
            written, verdicts = self._write(fresh, deadline) if fresh else ([], {})
            accepted = written
            settled |= skipped | verdicts
        finally:
            record_versions(self._versions, leased, accepted)
        return _by_ref(changes, settled)

    def _write(self, changes: list[ContactChange], deadline: Deadline) -> tuple[list[Built], Settled]:
        """Resolve the audience properties, build and upsert the contacts: what HubSpot accepted, and verdicts."""
        try:
            resolution = self._audiences.resolve(audience_names(changes), deadline)
            catalog = self._catalog.current(deadline)
        except HubSpotError as error:
            verdict = fault_verdict(error, self._policy)
            return [], {change.email: verdict for change in changes}
        for audience_id in resolution.conflicts:
            metrics.add_metric(name="AudiencePropertyConflicts", unit=MetricUnit.Count, value=1)
            logger.error("audience status not written", extra={"audience": audience_id})
        settled: Settled = {}
        ready = []
        for change in changes:
            built = build_properties(change, catalog, resolution, self._policy)
            refusal = report_dropped(change.email, built.dropped, self._policy)
            if refusal is not None:
                settled[change.email] = refusal
            elif resolution.deferred & change.audiences.keys():
                detail = "audience properties still to be created"
                settled[change.email] = Verdict("requeue", Reason.AUDIENCE_PROPERTIES_PENDING, detail, BUSY_REQUEUE_S)
            else:
                ready.append(built)
        accepted, verdicts = self._upsert(ready, deadline)
        return accepted, settled | verdicts | flag_conflicts(accepted, resolution.conflicts)

    def _upsert(self, ready: list[Built], deadline: Deadline) -> tuple[list[Built], Settled]:
        """Upsert the contacts and classify each outcome; a contact refused for some fields is sent again
        without them, at most `_MAX_ROUNDS` times in all."""
        accepted: list[Built] = []
        settled: Settled = {}
        refreshed = False
        for _ in range(_MAX_ROUNDS):
            if not ready:
                break
            outcomes = self._contacts.upsert([built.input for built in ready], deadline)
            faults: dict[int, Verdict] = {}  # one verdict per fault: it counts metrics
            resend = []
            for built in ready:
                email, outcome = built.change.email, outcomes.get(built.change.email)
                if isinstance(outcome, Written):
                    accepted.append(built)
                    settled[email] = DELIVERED
                elif isinstance(outcome, Failed):
                    settled[email] = faults.setdefault(id(outcome.fault), fault_verdict(outcome.fault, self._policy))
                elif not isinstance(outcome, Refused):
                    settled[email] = Verdict("retry", Reason.UNACCOUNTED, "HubSpot's answer did not mention this input")
                elif EMAIL_PROPERTY in outcome.problems:
                    detail = f"HubSpot: {outcome.problems[EMAIL_PROPERTY]}"
                    settled[email] = Verdict("dead_letter", Reason.INVALID_EMAIL, detail)
                elif not outcome.problems:
                    settled[email] = Verdict("dead_letter", Reason.INVALID_VALUE, f"HubSpot {outcome.message}")
                else:
                    if "PROPERTY_DOESNT_EXIST" in outcome.problems.values() and not refreshed:
                        refreshed = self._refresh_catalog(deadline)
                    again = built.without(outcome.problems)
                    refusal = report_dropped(email, again.dropped[len(built.dropped) :], self._policy)
                    if refusal is not None:
                        settled[email] = refusal
                    else:
                        resend.append(again)
            halt = next((verdict for verdict in faults.values() if verdict.reason in HALTS), None)
            if halt is not None:
                settled |= {built.change.email: halt for built in resend}
                resend = []
            ready = resend
        for built in ready:
            settled[built.change.email] = Verdict(
                "dead_letter", Reason.INVALID_VALUE, "HubSpot kept refusing this contact's values"
            )
        return accepted, settled

    def _refresh_catalog(self, deadline: Deadline) -> bool:
        """Read the properties again once: someone may have deleted or renamed one. True once tried."""
        try:
            self._catalog.refresh(deadline)
        except HubSpotError as error:
            logger.warning("property list not refreshed", extra={"error": str(error)})
        return True


def _by_ref(changes: Sequence[ContactChange], settled: Settled) -> dict[str, Verdict]:
    """Every profile's verdict (its contact's), counting dead letters by reason."""
    verdicts: dict[str, Verdict] = {}
    for change in changes:
        verdict = settled.get(change.email) or Verdict("retry", Reason.UNACCOUNTED, "not attempted")
        if verdict.kind == "dead_letter" and verdict.reason is not None:
            reason = verdict.reason.title().replace("_", "")
            metrics.add_metric(name=f"DeadLetters{reason}", unit=MetricUnit.Count, value=1)
        verdicts.update(dict.fromkeys(change.refs, verdict))
    return verdicts

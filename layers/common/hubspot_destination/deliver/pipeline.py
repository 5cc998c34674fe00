"""Delivery: one batch of profiles written to HubSpot, and a verdict for every profile.

`Delivery.deliver` coalesces the profiles of each contact, then delivers the contacts in groups of 100 (one
`batch/upsert` each), several groups at once, so one group's DynamoDB work overlaps the others' HubSpot calls.
Each group reads as its list of steps (steps.py): lease versions → drop stale values → resolve audience
properties (once for the batch, by the first group with something to write) → build properties → upsert →
classify outcomes → record versions. Verdicts: `delivered`; `requeue` (back-pressure, faults.py); `retry`
(transient faults); `dead_letter` with a reason for what HubSpot will never accept (`INVALID_EMAIL`,
`INVALID_VALUE`, `PROPERTY_CONFLICT`). A fault that halts (the daily limit, a refused token) stops the groups
not yet started, and the upserts of every group not yet sent (the groups share one `Halt`).
"""

import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from aws_lambda_powertools.metrics import MetricUnit

from hubspot_destination.deliver.faults import fault_verdict
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
from hubspot_destination.hubspot.contacts import EMAIL_PROPERTY, Failed, Halt, Refused, Written
from hubspot_destination.hubspot.errors import HubSpotError
from hubspot_destination.hubspot.models import Property
from hubspot_destination.hubspot.properties import AudienceResolution
from hubspot_destination.limits import HUBSPOT_BATCH_INPUTS
from hubspot_destination.observability import logger, metrics, metrics_lock

_MAX_ROUNDS = 3  # sends of one contact, each without the fields HubSpot refused the time before
_Resolved = tuple[AudienceResolution, Mapping[str, Property]] | Verdict  # or the fault's verdict


@dataclass
class _Batch:
    """What the groups of one `deliver` call share: its audiences (`{id: name}`), their resolution (made
    once), whether the catalog was read again (once at most), the `Halt` that stops them (a daily limit or a
    refused token met by any of them: the groups not yet started, and the upserts not yet sent), and the
    verdict of each HubSpot fault (made once: `fault_verdict` counts metrics)."""

    audiences: dict[str, str]
    lock: threading.Lock = field(default_factory=threading.Lock)
    resolved: _Resolved | None = None
    refreshed: bool = False
    halt: Halt = field(default_factory=Halt)
    verdicts: dict[HubSpotError, Verdict] = field(default_factory=dict)
    verdicts_lock: threading.Lock = field(default_factory=threading.Lock)

    def verdict_of(self, fault: HubSpotError, policy: DeliveryPolicy) -> Verdict:
        """The verdict for a fault, the same for every group it failed (an upsert the `Halt` skipped fails
        with the fault of the call that halted it, maybe another group's)."""
        with self.verdicts_lock:
            if fault not in self.verdicts:
                self.verdicts[fault] = fault_verdict(fault, policy)
            return self.verdicts[fault]


class Delivery:
    """Writes batches of profiles to one HubSpot portal through its ports (ports.py).

    Args:
        groups_in_flight: groups of 100 contacts delivered at once (threads). Their upserts share the
            contact writer's bound of calls in flight; more groups than that keep the next ones leased
            while the upserts are out.
    """

    def __init__(
        self,
        contacts: ContactWriter,
        catalog: PropertyCatalog,
        audiences: AudienceResolver,
        versions: VersionsStore,
        policy: DeliveryPolicy,
        groups_in_flight: int = 1,
    ):
        self._contacts, self._catalog, self._audiences = contacts, catalog, audiences
        self._versions, self._policy = versions, policy
        self._pool = ThreadPoolExecutor(max_workers=groups_in_flight, thread_name_prefix="delivery-groups")

    def deliver(self, updates: Sequence[tuple[str, ProfileUpdate]], deadline: Deadline) -> dict[str, Verdict]:
        """Write the updates (`(ref, update)` pairs) and return a verdict per ref."""
        changes = list(coalesce(updates).values())
        paused_s = self._contacts.paused_for()
        if paused_s:
            detail = "the portal's daily limit was reached; HubSpot is not called until the pause ends"
            paused = Verdict("requeue", Reason.DAILY_LIMIT, detail, int(paused_s) + 1)
            return _by_ref(changes, {change.email: paused for change in changes})
        batch = _Batch(audience_names(changes))
        step = HUBSPOT_BATCH_INPUTS  # one upsert's worth: its DynamoDB calls are one transaction, one read
        groups = [changes[start : start + step] for start in range(0, len(changes), step)]
        settled: Settled = {}
        for verdicts in self._pool.map(lambda group: self._deliver_group(group, batch, deadline), groups):
            settled |= verdicts
        return _by_ref(changes, settled)

    def _deliver_group(self, changes: list[ContactChange], batch: _Batch, deadline: Deadline) -> Settled:
        """Lease, write and record one group of contacts: a verdict per email."""
        if batch.halt.fault is not None:
            halted = batch.verdict_of(batch.halt.fault, self._policy)
            return {change.email: halted for change in changes}
        leased, settled = lease_versions(self._versions, changes)
        accepted: list[Built] = []
        try:
            fresh, skipped = drop_stale_values(leased)
            written, verdicts = self._write(fresh, batch, deadline) if fresh else ([], {})
            accepted = written
            settled |= skipped | verdicts
        finally:
            record_versions(self._versions, leased, accepted)
        return settled

    def _resolve(self, batch: _Batch, deadline: Deadline) -> _Resolved:
        """The batch's audience properties and the catalog, resolved by the first group to ask (the others wait
        for it), or the verdict of the fault that stopped it."""
        with batch.lock:
            if batch.resolved is not None:
                return batch.resolved
            try:
                resolution = self._audiences.resolve(batch.audiences, deadline)
                batch.resolved = resolution, self._catalog.current(deadline)
            except HubSpotError as error:
                batch.halt.note(error)
                batch.resolved = batch.verdict_of(error, self._policy)
                return batch.resolved
            for audience_id in resolution.conflicts:
                with metrics_lock:
                    metrics.add_metric(name="AudiencePropertyConflicts", unit=MetricUnit.Count, value=1)
                logger.error("audience status not written", extra={"audience": audience_id})
            return batch.resolved

    def _write(self, changes: list[ContactChange], batch: _Batch, deadline: Deadline) -> tuple[list[Built], Settled]:
        """Build and upsert the contacts, with the batch's audience properties: what HubSpot accepted, and
        verdicts."""
        resolved = self._resolve(batch, deadline)
        if isinstance(resolved, Verdict):
            return [], {change.email: resolved for change in changes}
        resolution, catalog = resolved
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
        accepted, verdicts = self._upsert(ready, batch, deadline)
        return accepted, settled | verdicts | flag_conflicts(accepted, resolution.conflicts)

    def _upsert(self, ready: list[Built], batch: _Batch, deadline: Deadline) -> tuple[list[Built], Settled]:
        """Upsert the contacts and classify each outcome; a contact refused for some fields is sent again
        without them, at most `_MAX_ROUNDS` times in all."""
        accepted: list[Built] = []
        settled: Settled = {}
        for _ in range(_MAX_ROUNDS):
            if not ready:
                break
            outcomes = self._contacts.upsert([built.input for built in ready], deadline, batch.halt)
            resend = []
            for built in ready:
                email, outcome = built.change.email, outcomes.get(built.change.email)
                if isinstance(outcome, Written):
                    accepted.append(built)
                    settled[email] = DELIVERED
                elif isinstance(outcome, Failed):
                    settled[email] = batch.verdict_of(outcome.fault, self._policy)
                elif not isinstance(outcome, Refused):
                    settled[email] = Verdict("retry", Reason.UNACCOUNTED, "HubSpot's answer did not mention this input")
                elif EMAIL_PROPERTY in outcome.problems:
                    detail = f"HubSpot: {outcome.problems[EMAIL_PROPERTY]}"
                    settled[email] = Verdict("dead_letter", Reason.INVALID_EMAIL, detail)
                elif not outcome.problems:
                    settled[email] = Verdict("dead_letter", Reason.INVALID_VALUE, f"HubSpot {outcome.message}")
                else:
                    if "PROPERTY_DOESNT_EXIST" in outcome.problems.values():
                        self._refresh_catalog(batch, deadline)
                    again = built.without(outcome.problems)
                    refusal = report_dropped(email, again.dropped[len(built.dropped) :], self._policy)
                    if refusal is not None:
                        settled[email] = refusal
                    else:
                        resend.append(again)
            if resend and batch.halt.fault is not None:  # met by this group or another
                halted = batch.verdict_of(batch.halt.fault, self._policy)
                settled |= {built.change.email: halted for built in resend}
                resend = []
            ready = resend
        for built in ready:
            settled[built.change.email] = Verdict(
                "dead_letter", Reason.INVALID_VALUE, "HubSpot kept refusing this contact's values"
            )
        return accepted, settled

    def _refresh_catalog(self, batch: _Batch, deadline: Deadline) -> None:
        """Read the properties again, once per batch: someone may have deleted or renamed one."""
        with batch.lock:
            if batch.refreshed:
                return
            batch.refreshed = True
        try:
            self._catalog.refresh(deadline)
        except HubSpotError as error:
            logger.warning("property list not refreshed", extra={"error": str(error)})


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

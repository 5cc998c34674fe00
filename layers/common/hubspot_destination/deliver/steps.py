"""The steps of delivery, each taking data and returning data (pipeline.py runs them in order).

Every step returns what goes on to the next step and the verdicts it settled (by email); none changes its
inputs. The steps that call a peer take it as a port (ports.py).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from hubspot_destination.deliver.policy import DeliveryPolicy
from hubspot_destination.deliver.ports import VersionsStore
from hubspot_destination.domain.audiences import is_audience_property
from hubspot_destination.domain.coercion import CoercionError, coerce
from hubspot_destination.domain.contacts import ContactChange
from hubspot_destination.domain.reasons import Reason
from hubspot_destination.domain.verdicts import DELIVERED, Verdict
from hubspot_destination.domain.versions import Lease, VersionsNotRecorded, drop_stale, versions_sent
from hubspot_destination.hubspot.contacts import EMAIL_PROPERTY, ContactInput
from hubspot_destination.hubspot.models import Property
from hubspot_destination.hubspot.properties import AudienceResolution
from hubspot_destination.observability import email_hash, logger, metrics, metrics_lock

Settled = dict[str, Verdict]  # verdicts by contact email
BUSY_REQUEUE_S = 5  # a contact leased by a concurrent invocation, or waiting for its audience properties


@dataclass(frozen=True)
class Leased:
    """A contact leased in the versions table: its change and its lease (what was last written)."""

    change: ContactChange
    lease: Lease


@dataclass(frozen=True)
class Dropped:
    """A field left out of a contact's write: the property, HubSpot's error code and why."""

    name: str
    code: str
    detail: str


@dataclass(frozen=True)
class Built:
    """A contact ready for `batch/upsert`: its properties as HubSpot strings (email included), which
    audience's status went to which property (`audience_properties`: id → name), and the fields dropped."""

    change: ContactChange
    properties: dict[str, str]
    audience_properties: dict[str, str] = field(default_factory=dict)
    dropped: tuple[Dropped, ...] = ()

    @property
    def input(self) -> ContactInput:
        return ContactInput(self.change.email, self.properties)

    def without(self, names: Mapping[str, str]) -> "Built":
        """The same contact less the named properties (HubSpot refused them: `{name: code}`)."""
        dropped = tuple(Dropped(name, code, "refused by HubSpot") for name, code in names.items())
        kept = {name: value for name, value in self.properties.items() if name not in names}
        return replace(self, properties=kept, dropped=self.dropped + dropped)


def lease_versions(versions: VersionsStore, changes: Sequence[ContactChange]) -> tuple[list[Leased], Settled]:
    """Lease the contacts: a contact leased elsewhere is requeued (`CONTACT_BUSY`), one the table failed for
    is retried (`VERSIONS_UNAVAILABLE`), and when nothing could be read every contact is retried."""
    try:
        leasing = versions.acquire([change.email for change in changes])
    except (BotoCoreError, ClientError) as error:
        return [], {change.email: Verdict("retry", Reason.VERSIONS_UNAVAILABLE, str(error)) for change in changes}
    leased, settled = [], {}
    for change in changes:
        lease = leasing.leases.get(change.email)
        if change.email in leasing.failed:
            settled[change.email] = Verdict("retry", Reason.VERSIONS_UNAVAILABLE, leasing.failed[change.email])
        elif lease is None:
            detail = "another invocation is writing this contact"
            settled[change.email] = Verdict("requeue", Reason.CONTACT_BUSY, detail, BUSY_REQUEUE_S)
        else:
            leased.append(Leased(change, lease))
    return leased, settled


def drop_stale_values(leased: Sequence[Leased]) -> tuple[list[ContactChange], Settled]:
    """Drop every field older than what was last written; a contact whose every field is stale (a late or
    replayed profile) is settled as delivered without calling HubSpot."""
    fresh, settled = [], {}
    for item in leased:
        change = drop_stale(item.change, item.lease.written)
        if change.empty and not item.change.empty:
            with metrics_lock:
                metrics.add_metric(name="StaleUpdatesSkipped", unit=MetricUnit.Count, value=1)
            settled[change.email] = DELIVERED
        else:
            fresh.append(change)
    return fresh, settled


def audience_names(changes: Sequence[ContactChange]) -> dict[str, str]:
    """`{audience id: name}` for every audience of the batch (a later contact's name wins)."""
    return {audience_id: status.name for change in changes for audience_id, status in change.audiences.items()}


def build_properties(
    change: ContactChange, catalog: Mapping[str, Property], resolution: AudienceResolution, policy: DeliveryPolicy
) -> Built:
    """A contact's properties: attributes coerced by the live property type (unknown, read-only, invalid and
    audience properties dropped), and each audience's status in its property."""
    properties, dropped = {EMAIL_PROPERTY: change.email}, []
    for name, value in change.attributes.items():
        prop = catalog.get(name)
        if name == EMAIL_PROPERTY:
            # The identity (identityMap) keys the contact and owns its email; a mapped email is ignored.
            logger.warning("email attribute ignored", extra={"contact": email_hash(change.email)})
        elif is_audience_property(name, prop.groupName if prop else None, policy.audience_group):
            # Only memberships write an audience's status, in order (an attribute could reverse an exit).
            dropped.append(Dropped(name, "AUDIENCE_PROPERTY", "an audience property is written from memberships only"))
        elif prop is None:
            dropped.append(Dropped(name, "PROPERTY_DOESNT_EXIST", "no such contact property in the portal"))
        else:
            try:
                properties[name] = coerce(value, prop, policy.number_format)
            except CoercionError as error:
                dropped.append(Dropped(name, error.code, str(error)))
    audience_properties = {a: n for a, n in resolution.names.items() if a in change.audiences}
    properties.update({name: change.audiences[a].status for a, name in audience_properties.items()})
    return Built(change, properties, audience_properties, tuple(dropped))


def report_dropped(email: str, dropped: Sequence[Dropped], policy: DeliveryPolicy) -> Verdict | None:
    """Count and log the fields left out (never their values: personal data); in strict mode the profile is
    dead-lettered instead (`INVALID_VALUE`), with the first field's detail."""
    for item in dropped:
        with metrics_lock:
            metrics.add_metric(name="AttributesDropped", unit=MetricUnit.Count, value=1)
        logger.warning(
            # A sender's key may be huge: the log quotes 100 characters of it (CloudWatch events are 256 KB at most).
            "attribute dropped",
            extra={"contact": email_hash(email), "property": item.name[:100], "code": item.code},
        )
    if policy.strict and dropped:
        first = dropped[0]
        return Verdict("dead_letter", Reason.INVALID_VALUE, f"{first.name}: {first.code}: {first.detail}")
    return None


def flag_conflicts(accepted: Sequence[Built], conflicts: Mapping[str, str]) -> Settled:
    """A contact written without some audiences' status (their property could not hold it) is dead-lettered as
    `PROPERTY_CONFLICT`, so a redrive after fixing the property completes it."""
    settled = {}
    for built in accepted:
        missing = [conflicts[a] for a in built.change.audiences if a in conflicts]
        if missing:
            detail = "written without these audiences' status: " + "; ".join(missing)
            settled[built.change.email] = Verdict("dead_letter", Reason.PROPERTY_CONFLICT, detail)
    return settled


def record_versions(versions: VersionsStore, leased: Sequence[Leased], accepted: Sequence[Built]) -> None:
    """Record what HubSpot now holds for each accepted contact and release every lease. A failure is counted
    (`VersionsNotRecorded`, alarmed on: an older message could now overwrite these writes), never raised."""
    written = {b.change.email: versions_sent(b.change, b.properties.keys(), b.audience_properties) for b in accepted}
    try:
        versions.release([item.lease for item in leased], written)
    except VersionsNotRecorded as error:
        unrecorded = sum(1 for email in error.emails if email in written)
        with metrics_lock:
            metrics.add_metric(name="VersionsNotRecorded", unit=MetricUnit.Count, value=unrecorded)
        logger.error("contact versions not recorded", extra={"error": str(error)})

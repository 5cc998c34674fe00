"""Order across batches: what was last written per contact, and the rule that drops older values.

SQS standard queues deliver at least once and in no particular order, and AEP retries; so a late or
replayed message could turn `exited` back into `realized`. The contact versions table (aws/dynamodb.py)
keeps, per contact, the time of the newest value written for each attribute (when it was observed at
ingest) and for each audience (its `lastQualificationTime`), as epoch microseconds. A value older than that
is dropped before anything is sent.
"""

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from hubspot_destination.domain.contacts import ContactChange

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_us(moment: datetime) -> int:
    """A datetime as integer microseconds since the epoch (exact, unlike float seconds); its UTC offset is
    honoured (`12:00+02:00` is 10:00Z), a naive one is taken as UTC."""
    # Subtracting datetimes that share a tzinfo ignores the offset: the epoch's is always UTC.
    delta = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def contact_key(email: str) -> str:
    """The table's partition key for a contact: the SHA-256 of its normalised email (no raw emails stored)."""
    return hashlib.sha256(email.encode()).hexdigest()


@dataclass(frozen=True)
class WrittenVersions:
    """What was last written for one contact: `{attribute: epoch µs}` and `{audience id: epoch µs}`."""

    attributes: Mapping[str, int]
    audiences: Mapping[str, int]

    def merged(self, newer: "WrittenVersions") -> "WrittenVersions":
        """These versions with `newer`'s laid over them, the later time winning per field."""

        def merge(old: Mapping[str, int], new: Mapping[str, int]) -> dict[str, int]:
            return {**old, **{name: max(stamp, old.get(name, stamp)) for name, stamp in new.items()}}

        return WrittenVersions(merge(self.attributes, newer.attributes), merge(self.audiences, newer.audiences))


NOTHING_WRITTEN = WrittenVersions({}, {})


@dataclass(frozen=True)
class Lease:
    """One contact leased by this invocation: `written` is what was last written (read under the lease),
    `seq` the item's sequence number while the lease holds, `until_ms` when it ends (epoch ms), `owner` who
    holds it (one random id per `acquire` call)."""

    email: str
    written: WrittenVersions
    seq: int
    until_ms: int
    owner: str


@dataclass(frozen=True)
class Leasing:
    """What a lease request got: `leases` by email, and `failed` (`{email: error}`) where the store failed for
    that contact; a contact in neither is held by another invocation."""

    leases: dict[str, Lease]
    failed: dict[str, str]


class VersionsNotRecorded(Exception):
    """The store failed for some records even one by one; `emails` are those contacts (their leases expire)."""

    def __init__(self, emails: list[str], cause: Exception):
        super().__init__(f"{len(emails)} contact versions not recorded: {cause}")
        self.emails = emails


def drop_stale(change: ContactChange, written: WrittenVersions) -> ContactChange:
    """The change less every attribute and audience older than what was last written (equal times are kept:
    the same value written again is harmless)."""
    stale = [n for n, t in change.attribute_times.items() if written.attributes.get(n, -1) > epoch_us(t)]
    old = [a for a, s in change.audiences.items() if written.audiences.get(a, -1) > epoch_us(s.qualified_at)]
    return change.without(stale, old) if stale or old else change


def versions_sent(
    change: ContactChange, sent: Collection[str], audience_properties: Mapping[str, str]
) -> WrittenVersions:
    """The versions to record for a contact HubSpot accepted: the times of the attributes whose property was
    `sent`, and of the audiences whose status property (`audience_properties`: id → name) was."""
    return WrittenVersions(
        attributes={n: epoch_us(t) for n, t in change.attribute_times.items() if n in sent},
        audiences={
            a: epoch_us(change.audiences[a].qualified_at)
            for a, name in audience_properties.items()
            if name in sent and a in change.audiences
        },
    )

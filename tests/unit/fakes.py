"""In-memory fakes of the delivery pipeline's ports (hubspot_destination.deliver.ports), for unit tests;
`FakeCatalog` also stands for the target fields' `PropertySource` (hubspot_destination.ingest.target_fields).

Each keeps what it was asked and can be told to fail, the way the real adapter fails; none reaches a network.
"""

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from hubspot_destination.aws.sqs import DeadLetter, EnqueueError
from hubspot_destination.domain.audiences import audience_property_name
from hubspot_destination.domain.deadline import Deadline
from hubspot_destination.domain.versions import NOTHING_WRITTEN, Lease, Leasing, WrittenVersions
from hubspot_destination.hubspot.contacts import ContactInput, Failed, Halt, Outcome, Written
from hubspot_destination.hubspot.errors import HubSpotError
from hubspot_destination.hubspot.models import Property
from hubspot_destination.hubspot.properties import AudienceResolution


def prop(name: str, kind: str = "string", field_type: str = "text", **extra) -> Property:
    return Property.model_validate({"name": name, "type": kind, "fieldType": field_type, **extra})


class FakeContactWriter:
    """Answers every input with `answer(input, call number)` (default: written); `calls` holds the inputs of
    each upsert sent (one a `Halt` stopped is not), `portal` what was written."""

    def __init__(self, answer: Callable[[ContactInput, int], Outcome] | None = None, paused_s: float = 0.0):
        self._answer = answer or (lambda item, call: Written())
        self.paused_s = paused_s
        self.calls: list[list[ContactInput]] = []
        self.portal: dict[str, dict[str, str]] = {}

    def paused_for(self) -> float:
        return self.paused_s

    def upsert(
        self, inputs: Sequence[ContactInput], deadline: Deadline, halt: Halt | None = None
    ) -> dict[str, Outcome]:
        if halt is not None and halt.fault is not None:  # not sent, as HubSpotContacts does
            return dict.fromkeys((item.email for item in inputs), Failed(halt.fault))
        self.calls.append(list(inputs))
        outcomes = {item.email: self._answer(item, len(self.calls)) for item in inputs}
        for item in inputs:
            outcome = outcomes[item.email]
            if isinstance(outcome, Written):
                self.portal.setdefault(item.email, {}).update(item.properties)
            elif isinstance(outcome, Failed) and halt is not None:
                halt.note(outcome.fault)
        return outcomes


class FakeCatalog:
    """A portal's properties; `fail` makes every read raise it; `reads` counts the reads."""

    def __init__(self, *properties: Property, fail: HubSpotError | None = None):
        self.properties = {p.name: p for p in properties}
        self.fail = fail
        self.refreshes = 0
        self.reads = 0

    def current(self, deadline: Deadline | None = None) -> Mapping[str, Property]:
        self.reads += 1
        if self.fail is not None:
            raise self.fail
        return self.properties

    def refresh(self, deadline: Deadline | None = None) -> None:
        self.refreshes += 1


@dataclass
class FakeAudiences:
    """Every audience gets its property, except those in `conflicts` (id → detail) and `deferred`."""

    catalog: FakeCatalog
    group: str = "aep_audiences"
    conflicts: dict[str, str] = field(default_factory=dict)
    deferred: set[str] = field(default_factory=set)

    def resolve(self, audiences: Mapping[str, str], deadline: Deadline | None = None) -> AudienceResolution:
        resolution = AudienceResolution()
        for audience_id in audiences:
            if audience_id in self.conflicts:
                resolution.conflicts[audience_id] = self.conflicts[audience_id]
            elif audience_id in self.deferred:
                resolution.deferred.add(audience_id)
            else:
                name = audience_property_name(audience_id)
                self.catalog.properties[name] = prop(name, "enumeration", "select", groupName=self.group)
                resolution.names[audience_id] = name
        return resolution


class FakeVersions:
    """The contact versions table in memory: `busy` contacts are leased elsewhere, `failing` ones fail;
    `unavailable` makes the whole read fail."""

    def __init__(self, busy: Collection[str] = (), failing: Collection[str] = (), unavailable: bool = False):
        self.written: dict[str, WrittenVersions] = {}
        self.busy, self.failing, self.unavailable = set(busy), set(failing), unavailable
        self.released: list[str] = []

    def acquire(self, emails: Collection[str]) -> Leasing:
        if self.unavailable:
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "BatchGetItem")
        leases = {
            email: Lease(email, self.written.get(email, NOTHING_WRITTEN), 1, 0, "me")
            for email in emails
            if email not in self.busy | self.failing
        }
        return Leasing(leases, {email: "throttled" for email in emails if email in self.failing})

    def release(self, leases: Iterable[Lease], written: Mapping[str, WrittenVersions]) -> None:
        for lease in leases:
            self.released.append(lease.email)
            self.written[lease.email] = lease.written.merged(written.get(lease.email, NOTHING_WRITTEN))


class FakeOutbox:
    """Keeps what was requeued and dead-lettered; `refuse` makes SQS refuse every send."""

    def __init__(self, refuse: bool = False):
        self.requeued: list[tuple[str, int]] = []
        self.letters: list[DeadLetter] = []
        self.refuse = refuse

    def dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        if self.refuse:
            raise EnqueueError(len(letters), "refused")
        self.letters.extend(letters)

    def requeue(self, bodies_and_delays: Sequence[tuple[str, int]]) -> None:
        if self.refuse:
            raise EnqueueError(len(bodies_and_delays), "refused")
        self.requeued.extend(bodies_and_delays)

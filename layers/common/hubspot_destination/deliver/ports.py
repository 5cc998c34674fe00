"""What the delivery pipeline needs from the world, as small interfaces. The adapters implement them
(hubspot/contacts.py, hubspot/properties.py, aws/dynamodb.py, aws/sqs.py); the unit tests implement them in
memory (tests/unit/fakes.py). Settlement sees the pipeline itself as a `Deliverer`."""

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Protocol

from hubspot_destination.aws.sqs import DeadLetter
from hubspot_destination.domain.deadline import Deadline
from hubspot_destination.domain.profiles import ProfileUpdate
from hubspot_destination.domain.verdicts import Verdict
from hubspot_destination.domain.versions import Lease, Leasing, WrittenVersions
from hubspot_destination.hubspot.contacts import ContactInput, Halt, Outcome
from hubspot_destination.hubspot.models import Property
from hubspot_destination.hubspot.properties import AudienceResolution


class ContactWriter(Protocol):
    def paused_for(self) -> float:
        """Seconds HubSpot must not be called for (the daily limit), 0 when it may be."""
        ...

    def upsert(
        self, inputs: Sequence[ContactInput], deadline: Deadline, halt: Halt | None = None
    ) -> dict[str, Outcome]:
        """Write the contacts; one outcome per email, whatever happened. A halting fault (the daily limit, a
        refused token) met by any `upsert` given the same `halt` fails the calls not yet sent with it."""
        ...


class PropertyCatalog(Protocol):
    def current(self, deadline: Deadline | None = None) -> Mapping[str, Property]:
        """The portal's contact properties by internal name (cached). Raises `HubSpotError`."""
        ...

    def refresh(self, deadline: Deadline | None = None) -> None:
        """Read them again. Raises `HubSpotError`."""
        ...


class AudienceResolver(Protocol):
    def resolve(self, audiences: Mapping[str, str], deadline: Deadline | None = None) -> AudienceResolution:
        """Ensure a status property per audience (`{id: name}`). Raises `HubSpotError`."""
        ...


class VersionsStore(Protocol):
    def acquire(self, emails: Collection[str]) -> Leasing:
        """Lease the contacts. Raises `BotoCoreError`/`ClientError` when nothing could be read."""
        ...

    def release(self, leases: Iterable[Lease], written: Mapping[str, WrittenVersions]) -> None:
        """Record what was written and release the leases. Raises `VersionsNotRecorded`."""
        ...


class Outbox(Protocol):
    def dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        """Put messages on the dead-letter queue. Raises `EnqueueError`, `BotoCoreError`, `ClientError`."""
        ...

    def requeue(self, bodies_and_delays: Sequence[tuple[str, int]]) -> None:
        """Send messages back to the activation queue, hidden for a delay (s). Raises as `dead_letter`."""
        ...


class Deliverer(Protocol):
    def deliver(self, updates: Sequence[tuple[str, ProfileUpdate]], deadline: Deadline) -> dict[str, Verdict]:
        """A verdict for every `(ref, update)` pair, by ref."""
        ...

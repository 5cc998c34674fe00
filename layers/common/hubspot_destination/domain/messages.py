"""The queue message codec: profiles as SQS message bodies, packed several to a message.

Fewer, larger messages keep ingest fast (1,000 profiles are a handful of `SendMessageBatch` calls, well inside
AEP's 2-second budget) and let one delivery fill `batch/upsert` calls of 100. A body is the compact JSON of a
`QueueMessage`: `{"profiles": [ProfileUpdate, ...], "attempt": n}`.
"""

from collections.abc import Sequence

from pydantic import ValidationError

from hubspot_destination.domain.profiles import ProfileUpdate, QueueMessage
from hubspot_destination.domain.verdicts import DETAIL_MAX

# What the reason and detail attributes of a dead letter can add to its size, in bytes (generous: UTF-8).
DEAD_LETTER_ATTRIBUTES_BYTES = 4 * DETAIL_MAX + 256


def _body(parts: Sequence[str], attempt: int) -> str:
    # The compact JSON of a `QueueMessage`, assembled from already-encoded profiles.
    return '{"profiles":[' + ",".join(parts) + '],"attempt":' + str(attempt) + "}"


def encode_profile(profile: ProfileUpdate) -> str:
    """One profile update as a message body carries it (compact JSON), for `pack_encoded`."""
    return profile.model_dump_json()


def encode_message(profiles: Sequence[ProfileUpdate], attempt: int = 0) -> str:
    """Serialise profile updates as one queue message body (compact JSON of a `QueueMessage`)."""
    return _body([encode_profile(profile) for profile in profiles], attempt)


def message_bytes(part: str) -> int:
    """The size in bytes of the message body holding one encoded profile (`encode_profile`) alone."""
    return len(_body([part], 0).encode())


def decode_message(body: str) -> QueueMessage:
    """Parse a queue message body; raises `pydantic.ValidationError` when it is not a `QueueMessage`."""
    return QueueMessage.model_validate_json(body)


def message_email(body: str) -> str | None:
    """The contact email of a dead letter (a one-profile message); None for a malformed body."""
    try:
        return decode_message(body).profiles[0].email
    except ValidationError:
        return None


def pack(profiles: Sequence[ProfileUpdate], max_profiles: int, max_bytes: int, attempt: int = 0) -> list[str]:
    """Pack profile updates into as few message bodies as fit `max_profiles` and `max_bytes` (bytes) each.

    Raises:
        ValueError: a single profile does not fit `max_bytes` (ingest rejects those first).
    """
    return pack_encoded([encode_profile(profile) for profile in profiles], max_profiles, max_bytes, attempt)


def pack_encoded(parts: Sequence[str], max_profiles: int, max_bytes: int, attempt: int = 0) -> list[str]:
    """`pack` for profiles already encoded (`encode_profile`): ingest encodes each once, to check its size."""
    overhead = len(_body([], attempt).encode())
    bodies: list[str] = []
    group: list[str] = []
    size = overhead
    for part in parts:
        length = len(part.encode()) + (1 if group else 0)
        if group and (len(group) == max_profiles or size + length > max_bytes):
            bodies.append(_body(group, attempt))
            group, size, length = [], overhead, length - 1
        if size + length > max_bytes:
            raise ValueError(f"one profile encodes to more than {max_bytes - overhead} bytes")
        group.append(part)
        size += length
    if group:
        bodies.append(_body(group, attempt))
    return bodies

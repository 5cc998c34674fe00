"""SQS messages: encoding, `SendMessageBatch` chunking within SQS's limits, and dead letters with reasons.

SQS limits (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html):
at most 10 entries per `SendMessageBatch`, and the sum of the bodies at most the largest message size
(1 MiB). Entries SQS refuses are retried; if any is still refused, `EnqueueError` tells the caller so
the sender retries instead of losing profiles silently.
"""

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from hubspot_destination.models import ProfileUpdate, QueueMessage

SQS_BATCH_ENTRIES = 10
# Dead-letter message attributes: machine-readable reason code and human-readable detail.
# The reason codes dead letters carry (README, "Order, retries and dead letters").
DEAD_LETTER_REASONS = (
    "INVALID_EMAIL",
    "INVALID_VALUE",
    "PROPERTY_CONFLICT",
    "MALFORMED_MESSAGE",
    "RETRIES_EXHAUSTED",
)
REASON_ATTRIBUTE = "reason"
DETAIL_ATTRIBUTE = "detail"
_DETAIL_MAX = 1000
# What the reason and detail attributes of a dead letter can add to its size, in bytes (generous: UTF-8).
DEAD_LETTER_ATTRIBUTES_BYTES = 4 * _DETAIL_MAX + 256
_SEND_ATTEMPTS = 3


class EnqueueError(Exception):
    """Some messages could not be enqueued after retries; `failed` holds how many."""

    def __init__(self, failed: int, detail: str):
        super().__init__(f"{failed} message(s) could not be enqueued: {detail}")
        self.failed = failed


@dataclass(frozen=True)
class DeadLetter:
    """A message that cannot be delivered: its original body, a reason code and a detail."""

    body: str
    reason: str
    detail: str


def _body(parts: Sequence[str], attempt: int) -> str:
    # The compact JSON of a `QueueMessage`, assembled from already-encoded profiles.
    return '{"profiles":[' + ",".join(parts) + '],"attempt":' + str(attempt) + "}"


def encode_message(profiles: Sequence[ProfileUpdate], attempt: int = 0) -> str:
    """Serialise profile updates as one queue message body (compact JSON of a `QueueMessage`)."""
    return _body([profile.model_dump_json() for profile in profiles], attempt)


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

    Fewer, larger messages keep ingest fast (1,000 profiles are a handful of `SendMessageBatch` calls, well
    inside AEP's 2-second budget) and let one delivery fill `batch/upsert` calls of 100.

    Raises:
        ValueError: a single profile does not fit `max_bytes` (ingest rejects those first).
    """
    overhead = len(_body([], attempt).encode())
    bodies: list[str] = []
    group: list[str] = []
    size = overhead
    for profile in profiles:
        part = profile.model_dump_json()
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


def _entry_bytes(entry: dict) -> int:
    """What an entry counts toward SQS's size limits: its body and its message attributes, in bytes."""
    attributes = entry.get("MessageAttributes", {})
    extra = sum(len(name.encode()) + len(value["StringValue"].encode()) + 16 for name, value in attributes.items())
    return len(entry["MessageBody"].encode()) + extra


def chunk_entries(entries: Sequence[dict], max_batch_bytes: int) -> Iterator[list[dict]]:
    """Group `SendMessageBatch` entries into calls of ≤ 10 entries and ≤ `max_batch_bytes` of bodies.

    Every body must itself be at most `max_batch_bytes` bytes (ingest rejects larger profiles). Entry
    `Id`s are renumbered within each call.
    """
    chunk: list[dict] = []
    size = 0
    for entry in entries:
        length = _entry_bytes(entry)
        if chunk and (len(chunk) == SQS_BATCH_ENTRIES or size + length > max_batch_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append({**entry, "Id": str(len(chunk))})
        size += length
    if chunk:
        yield chunk


def _send_batch(sqs, queue_url: str, entries: list[dict]) -> None:
    """Send one batch, retrying the entries SQS refuses (sender faults are not retried)."""
    pending = entries
    for attempt in range(_SEND_ATTEMPTS):
        answer = sqs.send_message_batch(QueueUrl=queue_url, Entries=pending)
        failed_ids = {failure["Id"] for failure in answer.get("Failed", [])}
        if not failed_ids:
            return
        permanent = [f for f in answer["Failed"] if f.get("SenderFault")]
        pending = [entry for entry in pending if entry["Id"] in failed_ids]
        if permanent or attempt == _SEND_ATTEMPTS - 1:
            codes = sorted({failure.get("Code", "?") for failure in answer["Failed"]})
            raise EnqueueError(len(pending), "SQS refused entries: " + ", ".join(codes))
        time.sleep(0.05 * 2**attempt)


def send_entries(sqs, queue_url: str, entries: Sequence[dict], max_batch_bytes: int) -> None:
    """Send `SendMessageBatch` entries (`MessageBody` and optional `DelaySeconds`, `MessageAttributes`).

    Raises:
        EnqueueError: when SQS still refuses some entries after retries.
        botocore.exceptions.ClientError: when SQS rejects a whole call.
    """
    for chunk in chunk_entries(entries, max_batch_bytes):
        _send_batch(sqs, queue_url, chunk)


def send_messages(sqs, queue_url: str, bodies: Sequence[str], max_batch_bytes: int) -> None:
    """Enqueue message bodies; raises as `send_entries`."""
    send_entries(sqs, queue_url, [{"MessageBody": body} for body in bodies], max_batch_bytes)


def send_dead_letters(sqs, queue_url: str, letters: Sequence[DeadLetter], max_batch_bytes: int) -> None:
    """Put undeliverable messages on the dead-letter queue with `reason` and `detail` message attributes.

    The body is unchanged, so a redrive to the source queue delivers it again after a fix.

    Raises:
        as `send_entries`; the caller must then keep the source messages on their queue (retry) so
        nothing is lost.
    """
    entries = [
        {
            "MessageBody": letter.body,
            "MessageAttributes": {
                REASON_ATTRIBUTE: {"DataType": "String", "StringValue": letter.reason},
                # SQS attribute values are limited in size; the detail is a summary.
                DETAIL_ATTRIBUTE: {"DataType": "String", "StringValue": letter.detail[:_DETAIL_MAX] or "-"},
            },
        }
        for letter in letters
    ]
    send_entries(sqs, queue_url, entries, max_batch_bytes)


def requeue(sqs, queue_url: str, bodies_and_delays: Sequence[tuple[str, int]], max_batch_bytes: int) -> None:
    """Send messages back to their queue as new messages, hidden for a delay (seconds, at most 900).

    Used for back-pressure (throttling, a paused portal, a token fault): a new message starts with a
    receive count of 0, so waiting never burns `maxReceiveCount` toward the dead-letter queue. Raises as
    `send_entries`; the caller then keeps the original message instead (nothing is lost).
    """
    entries = [{"MessageBody": body, "DelaySeconds": min(900, max(0, delay))} for body, delay in bodies_and_delays]
    send_entries(sqs, queue_url, entries, max_batch_bytes)


class Outbox:
    """Where the deliver function sends messages: dead letters, and requeued profiles.

    Args:
        sqs: a boto3 SQS client.
        queue_url: the activation queue (requeues).
        dead_letter_queue_url: its dead-letter queue.
        max_message_bytes: the queues' largest message, in bytes.
    """

    def __init__(self, sqs, queue_url: str, dead_letter_queue_url: str, max_message_bytes: int):
        self._sqs = sqs
        self._queue_url = queue_url
        self._dead_letter_queue_url = dead_letter_queue_url
        self._max_bytes = max_message_bytes

    def dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        """See `send_dead_letters`."""
        send_dead_letters(self._sqs, self._dead_letter_queue_url, letters, self._max_bytes)

    def requeue(self, bodies_and_delays: Sequence[tuple[str, int]]) -> None:
        """See `requeue`."""
        requeue(self._sqs, self._queue_url, bodies_and_delays, self._max_bytes)

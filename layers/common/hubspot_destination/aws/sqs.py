"""The SQS adapter: `SendMessageBatch` chunked within SQS's limits, requeues and dead letters with reasons.

SQS limits (limits.py): at most 10 entries per `SendMessageBatch`, and the sum of the bodies at most the
largest message size (1 MiB). Entries SQS refuses are retried; if any is still refused, `EnqueueError` tells
the caller so the sender retries instead of losing profiles silently.
"""

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import boto3

from hubspot_destination.domain.reasons import Reason
from hubspot_destination.domain.verdicts import DETAIL_MAX
from hubspot_destination.limits import SQS_BATCH_ENTRIES, SQS_MAX_DELAY_S

# Dead-letter message attributes: machine-readable reason code and human-readable detail.
REASON_ATTRIBUTE = "reason"
DETAIL_ATTRIBUTE = "detail"
_SEND_ATTEMPTS = 3


if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


@cache
def client() -> "SQSClient":
    """The function's SQS client (one per execution environment)."""
    return boto3.client("sqs")


class EnqueueError(Exception):
    """Some messages could not be enqueued after retries; `failed` holds how many."""

    def __init__(self, failed: int, detail: str):
        super().__init__(f"{failed} message(s) could not be enqueued: {detail}")
        self.failed = failed


@dataclass(frozen=True)
class DeadLetter:
    """A message that cannot be delivered: its original body, a reason code and a detail."""

    body: str
    reason: Reason
    detail: str


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
                DETAIL_ATTRIBUTE: {"DataType": "String", "StringValue": letter.detail[:DETAIL_MAX] or "-"},
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
    entries = [
        {"MessageBody": body, "DelaySeconds": min(SQS_MAX_DELAY_S, max(0, delay))} for body, delay in bodies_and_delays
    ]
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

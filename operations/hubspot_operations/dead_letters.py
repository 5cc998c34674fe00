"""Operator tools for the dead-letter queue: list dead letters without consuming them, and redrive them.

Dead letters sent by the deliver function carry the original body and the `reason` and `detail` message
attributes (`hubspot_destination.aws.sqs.send_dead_letters`). Messages that SQS itself moved there after
`maxReceiveCount` receives have no attributes; they are reported as `REDRIVEN_BY_SQS`.

Both work locally (`endpoint_url` of moto or another emulator) and against a deployed stack, whose queue URLs
are read from the CloudFormation outputs `QueueUrl` and `DeadLetterQueueUrl`. Every AWS error a user can cause
(no credentials, no region, unknown stack or queue, unreachable endpoint) is raised as `ValueError` with a
one-line message.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from hubspot_destination.aws.sqs import DETAIL_ATTRIBUTE, REASON_ATTRIBUTE
from hubspot_destination.domain.messages import decode_message, message_email
from hubspot_destination.observability import email_hash

# Reason shown for a dead letter without a `reason` attribute: SQS's redrive policy moved it.
SQS_REDRIVE_REASON = "REDRIVEN_BY_SQS"
# Seconds a received message stays hidden while a scan goes on; long enough for a scan of thousands of
# messages, short enough that a crashed run gives them back soon. Listing makes them visible at once after.
_SCAN_VISIBILITY_SECONDS = 60
# Long polling (> 0) asks every SQS server, so an empty answer really means "no visible message left".
_WAIT_SECONDS = 1
_SQS_BATCH = 10
_CLIENT_CONFIG = Config(
    connect_timeout=5, read_timeout=_WAIT_SECONDS + 10, retries={"mode": "standard", "max_attempts": 2}
)


@dataclass(frozen=True)
class QueueUrls:
    """The activation queue and its dead-letter queue."""

    queue_url: str
    dead_letter_queue_url: str


@dataclass(frozen=True)
class DeadLetterView:
    """One dead letter as shown to an operator.

    `sent_at` is when it was sent to the dead-letter queue (ISO-8601 UTC, seconds); `receive_count` counts
    receives on the dead-letter queue (each listing adds one); `email_sha256` is `email_hash` of the body's
    email (what the functions log), `None` when the body has no email; `email` is the raw address, filled
    only when asked for (personal data).
    """

    message_id: str
    sent_at: str
    receive_count: int
    reason: str
    detail: str
    email_sha256: str | None
    email: str | None = None


@dataclass(frozen=True)
class RedriveResult:
    """What `redrive` moved (or, in a dry run, would move): a count in total and by reason code."""

    moved: int
    by_reason: dict[str, int]
    dry_run: bool


@contextmanager
def aws_errors() -> Iterator[None]:
    """Turn the botocore errors a user can cause into `ValueError` with a one-line message."""
    try:
        yield
    except ClientError as error:
        details = error.response.get("Error", {})
        code = details.get("Code", "Error")
        message = details.get("Message", "")
        raise ValueError(f"AWS refused {error.operation_name}: {code}: {message}") from None
    except BotoCoreError as error:
        # NoCredentialsError, NoRegionError, EndpointConnectionError, ... all word themselves clearly.
        raise ValueError(f"AWS call failed: {error}") from None


def clients(endpoint_url: str | None, region: str | None, *services: str) -> list:
    """boto3 clients for `services` at `endpoint_url` (AWS itself when `None`) in `region` (else the default).

    Raises:
        ValueError: when no region is configured.
    """
    session = boto3.session.Session(region_name=region)
    with aws_errors():
        return [session.client(name, endpoint_url=endpoint_url, config=_CLIENT_CONFIG) for name in services]


def stack_queue_urls(cloudformation, stack_name: str) -> QueueUrls:
    """Read the queue URLs from the outputs `QueueUrl` and `DeadLetterQueueUrl` of a CloudFormation stack.

    Raises:
        ValueError: when the stack does not exist (or cannot be read), or lacks one of the outputs.
    """
    with aws_errors():
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])}
    missing = [key for key in ("QueueUrl", "DeadLetterQueueUrl") if key not in outputs]
    if missing:
        raise ValueError(f"stack {stack_name!r} has no output(s) {', '.join(missing)}: is it this product's stack?")
    return QueueUrls(outputs["QueueUrl"], outputs["DeadLetterQueueUrl"])


def _attribute(message: dict, name: str) -> str | None:
    value = message.get("MessageAttributes", {}).get(name)
    return value.get("StringValue") if value else None


def reason_of(message: dict) -> str:
    """The reason code of a received dead letter: its `reason` attribute, else `REDRIVEN_BY_SQS`."""
    return _attribute(message, REASON_ATTRIBUTE) or SQS_REDRIVE_REASON


def _view(message: dict, show_emails: bool) -> DeadLetterView:
    attributes = message.get("Attributes", {})
    sent_ms = int(attributes.get("SentTimestamp", 0))
    email = message_email(message["Body"])
    return DeadLetterView(
        message_id=message["MessageId"],
        sent_at=datetime.fromtimestamp(sent_ms / 1000, UTC).isoformat(timespec="seconds"),
        receive_count=int(attributes.get("ApproximateReceiveCount", 0)),
        reason=reason_of(message),
        detail=_attribute(message, DETAIL_ATTRIBUTE) or "",
        email_sha256=email_hash(email) if email else None,
        email=email if show_emails else None,
    )


class _HeldMessages:
    """Receives messages from a queue, each once, and keeps them hidden until `release` makes them visible again.

    Standard queues may hand a message out twice; duplicates (same `MessageId`) are skipped.
    """

    def __init__(self, sqs, queue_url: str):
        self.sqs = sqs
        self.queue_url = queue_url
        self.receipts: dict[str, str] = {}  # MessageId -> receipt handle of a message still held

    def receive(self, limit: int | None = None) -> Iterator[dict]:
        """Yield new messages (body, `SentTimestamp`, `ApproximateReceiveCount`, message attributes) until the
        queue has no visible message left or `limit` messages were yielded."""
        seen = 0
        while limit is None or seen < limit:
            answer = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=_SQS_BATCH if limit is None else min(_SQS_BATCH, limit - seen),
                VisibilityTimeout=_SCAN_VISIBILITY_SECONDS,
                WaitTimeSeconds=_WAIT_SECONDS,
                MessageSystemAttributeNames=["SentTimestamp", "ApproximateReceiveCount"],
                MessageAttributeNames=["All"],
            )
            messages = [m for m in answer.get("Messages", []) if m["MessageId"] not in self.receipts]
            if not messages:
                return
            # Held before any is yielded, so `release` gives the whole batch back if the caller stops early.
            self.receipts.update((m["MessageId"], m["ReceiptHandle"]) for m in messages)
            seen += len(messages)
            yield from messages

    def delete(self, message: dict) -> None:
        """Delete a held message from the queue for good."""
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=self.receipts.pop(message["MessageId"]))

    def release(self) -> None:
        """Make every message still held visible again (`ChangeMessageVisibility` 0), in batches of 10."""
        handles = list(self.receipts.values())
        for start in range(0, len(handles), _SQS_BATCH):
            entries = [
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for i, handle in enumerate(handles[start : start + _SQS_BATCH])
            ]
            self.sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)
        self.receipts.clear()


def list_dead_letters(
    sqs, dlq_url: str, *, limit: int | None = None, show_emails: bool = False
) -> list[DeadLetterView]:
    """Read up to `limit` dead letters (all when `None`) without consuming them.

    Each message is received with a short visibility timeout, then made visible again as soon as the scan
    ends (also when it fails), so the deliver function and later listings still see it.

    Raises:
        ValueError: on AWS errors (unknown queue, credentials, endpoint).
    """
    held = _HeldMessages(sqs, dlq_url)
    with aws_errors():
        try:
            return [_view(message, show_emails) for message in held.receive(limit)]
        finally:
            held.release()


def count_by_reason(letters: list[DeadLetterView]) -> dict[str, int]:
    """Dead letters per reason code, most frequent first."""
    return dict(Counter(letter.reason for letter in letters).most_common())


def listing_as_dict(letters: list[DeadLetterView]) -> dict:
    """The `--json` shape: `{"dead_letters": [{message_id, sent_at, receive_count, reason, detail,
    email_sha256[, email]}], "by_reason": {code: count}}`; `email` only when raw emails were asked for."""
    rows = [{k: v for k, v in asdict(letter).items() if k != "email" or v is not None} for letter in letters]
    return {"dead_letters": rows, "by_reason": count_by_reason(letters)}


def _first_attempt(body: str) -> str:
    """The queue message with its `attempt` set to 0 and everything else as it was (fields this version does
    not know included); a body that is not a queue message, unchanged."""
    try:
        decode_message(body)
    except ValidationError:
        return body
    document = json.loads(body)
    document["attempt"] = 0
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def redrive(
    sqs, dlq_url: str, queue_url: str, *, reasons: frozenset[str] | None = None, dry_run: bool = False
) -> RedriveResult:
    """Send dead letters back to the activation queue, without message attributes, each with its attempt count
    back to 0: a redrive (after the cause was fixed) starts a new series of retries, where the letter of a
    profile that ran out of attempts would otherwise get one. The profiles themselves are unchanged, and a
    body that is not a queue message goes back as it is.

    Only dead letters whose reason code is in `reasons` are moved (all when `None`). Each message is
    deleted from the dead-letter queue only after its `SendMessage` succeeded, so none is ever lost; if the
    delete then fails the message may be delivered twice, which the deliver function tolerates (updates are
    ordered by their timestamps). Messages not moved are made visible again at the end.

    SQS's native `StartMessageMoveTask` is not used: it keeps the `reason`/`detail` attributes, cannot filter
    by reason, and moto (the local and test backend) does not implement it. Receive → send → delete serves
    every case.

    Raises:
        ValueError: on AWS errors (unknown queue, credentials, endpoint), saying how many were moved before;
            when both URLs are the same queue.
    """
    if dlq_url == queue_url:
        raise ValueError("the dead-letter queue and the activation queue are the same queue")
    held = _HeldMessages(sqs, dlq_url)
    moved: Counter[str] = Counter()
    try:
        with aws_errors():
            try:
                for message in held.receive():
                    reason = reason_of(message)
                    if reasons is not None and reason not in reasons:
                        continue
                    if not dry_run:
                        sqs.send_message(QueueUrl=queue_url, MessageBody=_first_attempt(message["Body"]))
                        held.delete(message)
                    moved[reason] += 1
            finally:
                held.release()
    except ValueError as error:
        raise ValueError(f"{error} ({moved.total()} message(s) moved before the error)") from None
    return RedriveResult(moved=moved.total(), by_reason=dict(moved.most_common()), dry_run=dry_run)

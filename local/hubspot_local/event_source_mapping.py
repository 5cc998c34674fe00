"""A faithful stand-in for the Lambda SQS event source mapping, run in-process against moto's SQS.

What it imitates (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-parameters.html,
.../services-sqs-errorhandling.html): batches of up to `batch_size` records gathered over several
`ReceiveMessage` calls (at most 10 messages each); the Lambda SQS event shape; partial batch responses
(`batchItemFailures`: only those records come back, after their visibility timeout; an empty or missing
list means success; a malformed identifier or a raised exception fails the whole batch); deletion of the
records that succeeded; and the queue's redrive policy moving a message to the dead-letter queue once it
has been received `maxReceiveCount` times. Visibility timeouts are shortened to 0 on failure so a local
run does not wait minutes. Delayed messages (requeued by the function for back-pressure) are waited for, up
to `max_wait_s`.
"""

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from hubspot_local.lambda_runtime import LambdaContext

_RECEIVE_MAX = 10  # ReceiveMessage returns at most 10 messages per call
_IDLE_POLL_S = 0.25
log = logging.getLogger(__name__)


@dataclass
class DrainStats:
    """What a drain did: handler invocations, records delivered to the handler, records reported failed."""

    invocations: int = 0
    records: int = 0
    failures: int = 0


def _record(message: dict, queue_arn: str, region: str) -> dict:
    attributes = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attributes.get("SentTimestamp", "0"),
            "SenderId": attributes.get("SenderId", "AIDAEXAMPLE"),
            "ApproximateFirstReceiveTimestamp": attributes.get("ApproximateFirstReceiveTimestamp", "0"),
        },
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": hashlib.md5(message["Body"].encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


class EventSourceMapping:
    """Polls `queue_url` and invokes `handler(event, context)` until the queue is empty.

    Args:
        sqs: a boto3 SQS client (moto).
        queue_url: the source queue.
        handler: the deliver function's `lambda_handler`.
        batch_size: the mapping's `BatchSize`.
        function_timeout_s: the function's timeout, in seconds (the context's deadline).
        max_invocations: a safety stop for a run that never drains.
        max_wait_s: how long to wait for delayed or in-flight messages once none is visible, in seconds.
    """

    def __init__(
        self,
        sqs,
        queue_url: str,
        handler: Callable[[dict, LambdaContext], dict | None],
        batch_size: int = 100,
        function_timeout_s: float = 60.0,
        max_invocations: int = 1000,
        max_wait_s: float = 30.0,
    ):
        self._sqs = sqs
        self._queue_url = queue_url
        self._handler = handler
        self._batch_size = batch_size
        self._timeout_s = function_timeout_s
        self._max_invocations = max_invocations
        self._max_wait_s = max_wait_s
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
        self._queue_arn = attributes["QueueArn"]
        self._region = sqs.meta.region_name

    def _poll(self) -> list[dict]:
        messages: list[dict] = []
        while len(messages) < self._batch_size:
            answer = self._sqs.receive_message(
                QueueUrl=self._queue_url,
                MaxNumberOfMessages=min(_RECEIVE_MAX, self._batch_size - len(messages)),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            received = answer.get("Messages", [])
            if not received:
                break
            messages.extend(received)
        return messages

    def _failed_ids(self, response: object, batch_ids: set[str]) -> set[str]:
        """Lambda's reading of a partial batch response; anything malformed fails the whole batch."""
        if response is None:
            return set()
        if not isinstance(response, dict):
            return batch_ids
        failures = response.get("batchItemFailures")
        if not failures:
            return set()
        failed = set()
        for failure in failures:
            item = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if not item or item not in batch_ids:
                return batch_ids
            failed.add(item)
        return failed

    def pending(self) -> int:
        """Messages on the queue that are not visible yet: delayed or in flight."""
        names = ["ApproximateNumberOfMessagesDelayed", "ApproximateNumberOfMessagesNotVisible"]
        attributes = self._sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=names)["Attributes"]
        return sum(int(attributes.get(name, 0)) for name in names)

    def drain(self) -> DrainStats:
        """Invoke the handler batch after batch until the queue is empty, or only holds messages delayed
        beyond `max_wait_s`."""
        stats = DrainStats()
        idle_since = None
        while stats.invocations < self._max_invocations:
            messages = self._poll()
            if not messages:
                idle_since = idle_since or time.monotonic()
                if not self.pending() or time.monotonic() - idle_since > self._max_wait_s:
                    return stats
                time.sleep(_IDLE_POLL_S)
                continue
            idle_since = None
            event = {"Records": [_record(m, self._queue_arn, self._region) for m in messages]}
            batch_ids = {m["MessageId"] for m in messages}
            stats.invocations += 1
            stats.records += len(messages)
            context = LambdaContext("DeliverFunction", self._timeout_s)
            try:
                failed = self._failed_ids(self._handler(json.loads(json.dumps(event)), context), batch_ids)
            except Exception:  # an invocation error: the whole batch comes back
                log.exception("the deliver handler raised; the whole batch comes back")
                failed = batch_ids
            stats.failures += len(failed)
            for message in messages:
                if message["MessageId"] in failed:
                    self._sqs.change_message_visibility(
                        QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                    )
                else:
                    self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
        raise RuntimeError(f"the queue did not drain within {self._max_invocations} invocations")

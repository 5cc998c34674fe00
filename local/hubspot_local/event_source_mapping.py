"""A faithful stand-in for the Lambda SQS event source mapping, run in-process against moto's SQS (in this
process, or moto's server: `bench`).

What it imitates (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-parameters.html,
.../services-sqs-errorhandling.html, .../services-sqs-scaling.html): batches of up to `batch_size` records
gathered over several `ReceiveMessage` calls (at most 10 messages each), for up to the batching window; the
Lambda SQS event shape; partial batch responses (`batchItemFailures`: only those records come back, after
their visibility timeout; an empty or missing list means success; a malformed identifier or a raised
exception fails the whole batch); deletion of the records that succeeded; the queue's redrive policy moving
a message to the dead-letter queue once it has been received `maxReceiveCount` times; and
`ScalingConfig.MaximumConcurrency`: given one handler per execution environment (a handler module's, or a
`function_worker.FunctionEnvironment`, a process of its own), one poller per environment runs in its own
thread on the same queue. Visibility timeouts are shortened to 0 on failure so a local run
does not wait minutes. Delayed messages (requeued by the function for back-pressure) are waited for, up to
`max_wait_s`. A drain ends only once the queue holds no message in any state (visible, delayed, in flight;
`queue_depth`), or when it gives up waiting, and then it says what it left (`DrainStats.left_on_queue`).

`MappingChaos` adds, seeded, what the real mapping and SQS do on a bad day: an invocation that dies
mid-batch (its response is lost and the whole batch comes back), a processed message delivered again
(at-least-once delivery), and batches delivered out of order. An invocation dies at one of its AWS calls:
that needs `aws_call_checkpoint` called on every AWS call (`harness.thread_safe_moto` does); without it a
doomed invocation runs to its end and only its response is lost.
"""

import hashlib
import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hubspot_local.lambda_runtime import LambdaContext

_RECEIVE_MAX = 10  # ReceiveMessage returns at most 10 messages per call
_IDLE_POLL_S = 0.25
_WINDOW_POLL_S = 0.05  # pause between empty receives while a batching window is open
log = logging.getLogger(__name__)

Handler = Callable[[dict, LambdaContext], dict | None]
# The invocation running on this thread: `calls` (AWS calls so far), `dies_at` (the call where a doomed
# invocation dies, or None) and `context` (its LambdaContext).
_invocation = threading.local()


class InvocationKilled(BaseException):
    """Raised at the AWS call where an invocation dies (doomed by `MappingChaos`, or past its timeout). A
    `BaseException`, so the function's own error handling does not catch it, just as nothing in a function
    survives its sandbox being stopped."""


def aws_call_checkpoint() -> None:
    """Count an AWS call of the invocation running on this thread (nothing outside an invocation).

    Raises:
        InvocationKilled: from the call where a doomed invocation dies on, or once the invocation has run
            past its timeout (Lambda stops it then; here it stops at its next AWS call).
    """
    calls = getattr(_invocation, "calls", None)
    if calls is None:
        return
    _invocation.calls = calls + 1
    if _invocation.dies_at is not None and calls >= _invocation.dies_at:
        raise InvocationKilled(f"the invocation died at its AWS call #{calls}")
    if _invocation.context.get_remaining_time_in_millis() <= 0:
        raise InvocationKilled("the invocation timed out")


@dataclass(frozen=True)
class QueueDepth:
    """Messages on a queue by state: `visible` (can be received now), `delayed` (sent with a delay that is not
    over) and `in_flight` (received, and neither deleted nor visible again)."""

    visible: int = 0
    delayed: int = 0
    in_flight: int = 0

    @property
    def total(self) -> int:
        """Messages in any state."""
        return self.visible + self.delayed + self.in_flight

    def __str__(self) -> str:
        return f"{self.total} message(s): {self.visible} visible, {self.delayed} delayed, {self.in_flight} in flight"


_DEPTH_ATTRIBUTES = {
    "visible": "ApproximateNumberOfMessages",
    "delayed": "ApproximateNumberOfMessagesDelayed",
    "in_flight": "ApproximateNumberOfMessagesNotVisible",
}


def _count(sqs, queue_url: str) -> QueueDepth:
    names = list(_DEPTH_ATTRIBUTES.values())
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
    return QueueDepth(**{state: int(attributes.get(name, 0)) for state, name in _DEPTH_ATTRIBUTES.items()})


def queue_depth(sqs, queue_url: str) -> QueueDepth:
    """The messages on a queue in every state, from one `GetQueueAttributes` call, re-checked when it says 0.

    One call counts the three states one after the other (moto evaluates each against the clock in turn), so
    a message whose delay or visibility timeout ends between two of them is counted by neither. It is
    visible from then on until someone receives it, so a second count sees it: the queue is taken for empty
    only when both counts say so. (A message sent between the two counts is not covered: the mapping counts
    again once its pollers stopped.)

    Raises:
        botocore errors of `GetQueueAttributes` (an unknown queue, ...).
    """
    first = _count(sqs, queue_url)
    return first if first.total else _count(sqs, queue_url)


@dataclass
class DrainStats:
    """What a drain did.

    `invocations`, `records` (delivered to the handler) and `failures` (records reported failed, or whole
    batches of invocations that raised or died) count as their names say; `errors` counts invocations that
    raised; `invocation_seconds` sums their wall time and `longest_invocation_s` is the longest;
    `handler_cpu_s` sums the CPU time of the handlers' own threads during their invocations (by the mapping's
    `cpu_clock`). `killed`:
    invocations that died (doomed by chaos, or past their timeout). The other chaos counters: `duplicated`
    records (processed, not deleted) and `held` batches (delivered after later ones). `first_invocation_at`
    and `last_invocation_end_at` are `time.monotonic()` readings (None before any invocation).
    `left_on_queue`: what was on the queue when the drain ended (nothing, unless it gave up waiting).
    """

    invocations: int = 0
    records: int = 0
    failures: int = 0
    errors: int = 0
    invocation_seconds: float = 0.0
    longest_invocation_s: float = 0.0
    handler_cpu_s: float = 0.0
    killed: int = 0
    duplicated: int = 0
    held: int = 0
    first_invocation_at: float | None = None
    last_invocation_end_at: float | None = None
    left_on_queue: QueueDepth = field(default_factory=QueueDepth)


@dataclass(frozen=True)
class MappingChaos:
    """Seeded failures of the mapping itself (rates are probabilities in [0, 1]).

    - `kill_rate` per invocation: the function dies mid-batch, at a random one of its AWS calls (the
      number drawn up to the most calls a whole invocation has made so far, so some doomed invocations
      finish and only their response is lost, as after a timeout). Whatever it did before stays done:
      HubSpot partly written, contacts leased, records requeued. The whole batch comes back.
    - `duplicate_rate` per successfully processed record: it is not deleted and is delivered again
      (SQS's at-least-once delivery).
    - `hold_rate` per batch: the batch is held back and invoked after 1 to 3 later batches of the same
      poller, so an older update can be processed after a newer one. Records are also shuffled within
      every batch.
    - `redelivery_delay_s`: duplicated records become visible again after a random whole number of seconds
      up to this, so they arrive late.
    - `kill_visibility_s`: the batch of an invocation that died (or timed out) becomes visible again after
      this many seconds: a stand-in for the queue's visibility timeout, which in production (360 s) outlasts
      the contact leases a dead invocation leaves behind (90 s).

    Each poller draws from its own generator seeded with `seed` and the poller's index; thread timing still
    varies from run to run.
    """

    seed: int
    kill_rate: float = 0.0
    duplicate_rate: float = 0.0
    hold_rate: float = 0.0
    redelivery_delay_s: int = 2
    kill_visibility_s: int = 0


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
    """Polls `queue_url` and invokes the handler(s) until the queue is empty, or until `stop` is called.

    Args:
        sqs: a boto3 SQS client (moto).
        queue_url: the source queue.
        handler: the deliver function's `lambda_handler`, or one `lambda_handler` per concurrent execution
            environment (`MaximumConcurrency` = their number; each gets a poller thread of its own); any
            callable `(event, context) -> response` (`function_worker.FunctionEnvironment`).
        batch_size: the mapping's `BatchSize`.
        function_timeout_s: the function's timeout, in seconds (the context's deadline).
        max_invocations: a safety stop for a run that never drains (all pollers together).
        max_wait_s: how long a poller waits for delayed or in-flight messages once none is visible, in
            seconds; then it gives up.
        time_limit_s: seconds after which `drain` starts no more invocations and gives up (None: no limit).
        batching_window_s: `MaximumBatchingWindowInSeconds`: keep receiving until the batch is full or this
            many seconds have passed since the first record arrived; 0 invokes with what one pass returned.
        chaos: seeded failures of the mapping (`MappingChaos`); None for a well-behaved mapping.
        cpu_clock: the CPU seconds that count as the handler's, read on the poller's thread around each
            invocation (`time.thread_time`; the bench's handlers run in workers that report their CPU:
            `function_worker.invocations_cpu_s`).
    """

    def __init__(
        self,
        sqs,
        queue_url: str,
        handler: Handler | Sequence[Handler],
        batch_size: int = 100,
        function_timeout_s: float = 60.0,
        max_invocations: int = 1000,
        max_wait_s: float = 30.0,
        *,
        time_limit_s: float | None = None,
        batching_window_s: float = 0.0,
        chaos: MappingChaos | None = None,
        cpu_clock: Callable[[], float] = time.thread_time,
    ):
        self._sqs = sqs
        self._queue_url = queue_url
        self._handlers = list(handler) if isinstance(handler, Sequence) else [handler]
        self._batch_size = batch_size
        self._timeout_s = function_timeout_s
        self._max_invocations = max_invocations
        self._max_wait_s = max_wait_s
        self._time_limit_s = time_limit_s
        self._window_s = batching_window_s
        self._chaos = chaos
        self._cpu_clock = cpu_clock
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._most_calls = 1  # the most AWS calls one invocation has made (where a doomed one may die)
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
        self._queue_arn = attributes["QueueArn"]
        self._region = sqs.meta.region_name

    def stop(self) -> None:
        """Make the drain start no more invocations and return once those running have ended (callable
        from any thread; what is left stays on the queue: `DrainStats.left_on_queue`). A stopped mapping stays
        stopped."""
        self._stopping.set()

    def _receive(self, count: int) -> list[dict]:
        answer = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=min(_RECEIVE_MAX, count),
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return answer.get("Messages", [])

    def _poll(self) -> list[dict]:
        messages: list[dict] = []
        first_at = None
        while len(messages) < self._batch_size:
            received = self._receive(self._batch_size - len(messages))
            if received:
                messages.extend(received)
                first_at = first_at or time.monotonic()
                continue
            if not messages or time.monotonic() - first_at >= self._window_s:
                break
            time.sleep(_WINDOW_POLL_S)
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

    def _count(self, stats: DrainStats, **increments: float) -> None:
        with self._lock:
            for name, value in increments.items():
                setattr(stats, name, getattr(stats, name) + value)

    def _show_again(self, message: dict, delay_s: int = 0) -> None:
        self._sqs.change_message_visibility(
            QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=delay_s
        )

    def _call(self, handler: Handler, event: dict, context: LambdaContext, dies_at: int | None) -> tuple[object, str]:
        """One invocation of `handler`; it dies at its AWS call number `dies_at` (None: it does not).

        Returns:
            `(response, outcome)`: outcome `ok`, `raised` (an invocation error) or `died` (killed, or past
            its timeout); the response is None unless `ok`.
        """
        _invocation.calls, _invocation.context, _invocation.dies_at = 0, context, dies_at
        try:
            return handler(json.loads(json.dumps(event)), context), "ok"
        except InvocationKilled as death:
            # A death chaos planned is expected; a timeout is not.
            log.log(logging.INFO if dies_at is not None else logging.WARNING, "%s; the whole batch comes back", death)
            return None, "died"
        except Exception:
            log.exception("the deliver handler raised; the whole batch comes back")
            return None, "raised"
        finally:
            if dies_at is None:
                with self._lock:
                    self._most_calls = max(self._most_calls, _invocation.calls)
            _invocation.calls = _invocation.context = None

    def _invoke(self, handler: Handler, messages: list[dict], stats: DrainStats, rng: random.Random | None) -> None:
        """One invocation on `messages`, then deletion of what succeeded (chaos drawn from `rng`)."""
        with self._lock:
            if stats.invocations >= self._max_invocations:
                raise RuntimeError(f"the queue did not drain within {self._max_invocations} invocations")
            stats.invocations += 1
            stats.records += len(messages)
            if stats.first_invocation_at is None:
                stats.first_invocation_at = time.monotonic()
        chaos = self._chaos
        if rng is not None:
            rng.shuffle(messages)
        event = {"Records": [_record(m, self._queue_arn, self._region) for m in messages]}
        batch_ids = {m["MessageId"] for m in messages}
        context = LambdaContext("DeliverFunction", self._timeout_s)
        started, cpu_before = time.monotonic(), self._cpu_clock()
        doomed = chaos is not None and rng.random() < chaos.kill_rate
        response, outcome = self._call(handler, event, context, rng.randint(0, self._most_calls) if doomed else None)
        self._count(stats, handler_cpu_s=self._cpu_clock() - cpu_before)
        if outcome == "died" or doomed:  # a doomed invocation that finished has its response lost
            for message in messages:
                self._show_again(message, chaos.kill_visibility_s if chaos is not None else 0)
            self._count(stats, killed=1, failures=len(messages))
            self._finished(stats, started)
            return
        if outcome == "raised":
            failed = batch_ids
            self._count(stats, errors=1)
        else:
            failed = self._failed_ids(response, batch_ids)
        self._count(stats, failures=len(failed))
        for message in messages:
            if message["MessageId"] in failed:
                self._show_again(message)
            elif chaos is not None and rng.random() < chaos.duplicate_rate:
                self._show_again(message, rng.randint(0, chaos.redelivery_delay_s))
                self._count(stats, duplicated=1)
            else:
                self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
        self._finished(stats, started)

    def _finished(self, stats: DrainStats, started: float) -> None:
        with self._lock:
            stats.last_invocation_end_at = time.monotonic()
            stats.invocation_seconds += stats.last_invocation_end_at - started
            stats.longest_invocation_s = max(stats.longest_invocation_s, stats.last_invocation_end_at - started)

    def _run_poller(self, index: int, stats: DrainStats, inputs_done: threading.Event | None, deadline: float) -> bool:
        """One execution environment's poller: invoke batch after batch until the queue stays empty.

        Returns:
            True when it stopped because the queue was empty; False when it gave up (waited `max_wait_s`
            for messages that did not become visible, or the drain's `deadline`, a `time.monotonic()`
            reading, passed), or was stopped.
        """
        handler = self._handlers[index]
        chaos = self._chaos
        rng = random.Random(f"{chaos.seed}/{index}") if chaos is not None else None
        held: list[list] = []  # [batches still to let pass, messages] for batches held back
        idle_since = None
        while True:
            if time.monotonic() >= deadline or self._stopping.is_set():
                for _, messages in held:  # handed back, as a stopped mapping's would be after their timeout
                    for message in messages:
                        self._show_again(message)
                return False
            messages = self._poll()
            if not messages and held:
                messages = held.pop(0)[1]
            elif not messages:
                idle_since = idle_since or time.monotonic()
                if inputs_done is None or inputs_done.is_set():
                    if not queue_depth(self._sqs, self._queue_url).total:
                        return True
                    if time.monotonic() - idle_since > self._max_wait_s:
                        return False
                self._stopping.wait(_IDLE_POLL_S)
                continue
            elif chaos is not None and rng.random() < chaos.hold_rate:
                held.append([rng.randint(1, 3), messages])
                self._count(stats, held=1)
                continue
            idle_since = None
            self._invoke(handler, messages, stats, rng)
            for entry in held:
                entry[0] -= 1
            due = [entry[1] for entry in held if entry[0] <= 0]
            held[:] = [entry for entry in held if entry[0] > 0]
            for batch in due:
                self._invoke(handler, batch, stats, rng)

    def _run_pollers(self, stats: DrainStats, inputs_done: threading.Event | None, deadline: float) -> bool:
        """Run one poller per handler (the calling thread's own when there is one) until all have stopped.

        Returns:
            True when every poller stopped because the queue was empty.

        Raises:
            RuntimeError: the queue did not drain within `max_invocations`; or what a poller raised.
        """
        if len(self._handlers) == 1:
            return self._run_poller(0, stats, inputs_done, deadline)
        emptied: list[bool] = []
        errors: list[BaseException] = []

        def poller(index: int) -> None:
            try:
                emptied.append(self._run_poller(index, stats, inputs_done, deadline))
            except BaseException as error:  # re-raised by drain
                errors.append(error)

        threads = [
            threading.Thread(target=poller, args=(index,), name=f"esm-poller-{index}")
            for index in range(len(self._handlers))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return all(emptied)

    def drain(self, inputs_done: threading.Event | None = None) -> DrainStats:
        """Invoke the handler(s) batch after batch until no message is left on the queue in any state, or until
        the pollers give up (`max_wait_s`, `time_limit_s`) or `stop` is called; with `inputs_done`, not before
        that event is set (input is still arriving) or `stop` is called. `DrainStats.left_on_queue` says what
        was left.

        Once the pollers stopped, the queue is counted again: a poller that found it empty may have stopped
        while another one's invocation was sending messages, and those are drained too.

        Raises:
            RuntimeError: the queue did not drain within `max_invocations`; or a poller failed.
        """
        stats = DrainStats()
        deadline = time.monotonic() + self._time_limit_s if self._time_limit_s is not None else math.inf
        while True:
            emptied = self._run_pollers(stats, inputs_done, deadline)
            stats.left_on_queue = queue_depth(self._sqs, self._queue_url)
            if not emptied or not stats.left_on_queue.total:
                return stats

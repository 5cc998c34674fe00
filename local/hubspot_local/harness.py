"""What the local runs share: a thread-safe moto (every `LocalPipeline`), handler environments and ingest running
beside delivery (`bench`, `chaos`).

moto's in-process backends are not thread-safe (SQS `DeleteMessage` rebuilds the queue's message list, so a
message sent by another thread at the same moment can vanish; DynamoDB conditional writes are
check-then-write), its SQS checks every message's visibility with datetime arithmetic (about 5 µs a
message, several times per `SendMessage`/`ReceiveMessage`), which makes each call cost O(queue depth) with
a large constant, and its DynamoDB `TransactWriteItems` deep-copies the whole table once per action to roll
the transaction back if it is cancelled (100 copies of the table per 100-contact lease: about 1.6 s at 640
items, 10 s at 3,300, more than a deliver invocation has). `thread_safe_moto` serialises every moto call
behind one lock (they are CPU-bound under the GIL anyway, so little concurrency is lost), compares
visibility against `time.time()` directly (the same comparison, one clock read) and rolls a transaction of
`Put`s back from a shallow copy of each table taken once (`_PutsRollBack`: about 0.1 s per 100-contact lease,
whatever the table's size); it counts every call's billable units (`usage.AwsUsage`, as the bench's
client-side count does: `usage.ClientMeter`), lets the calls to a stand-in of its own (dynalite,
`stand_ins.py`) through unserialised, and it is where an invocation doomed by `MappingChaos` dies
(`event_source_mapping.aws_call_checkpoint`). (`bench` runs moto as a server of its own instead:
`moto_server.py` does the same there.)
"""

import contextlib
import copy
import gc
import math
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import TextIO
from urllib.parse import urlsplit

from moto.core.botocore_stubber import BotocoreStubber
from moto.dynamodb import models as dynamodb_models
from moto.sqs.models import Message

from hubspot_local.event_source_mapping import DrainStats, EventSourceMapping, aws_call_checkpoint
from hubspot_local.lambda_runtime import load_handler_module
from hubspot_local.usage import AwsUsage

_active: list[AwsUsage] = []  # the usage of the `thread_safe_moto` in force, if any


class _PutsRollBack:
    """What moto's `DynamoDBBackend.transact_write_items` sees as the `copy` module while it runs a transaction
    of `Put`s only (moto runs one call at a time here): its `deepcopy(table)`, the state the transaction is
    rolled back to when cancelled, is a shallow copy of the table with item containers of its own, taken once
    per table. A `Put` only replaces an item in them (moto's `Table.put_item`), never changes one in place, so
    the copy holds the items as they were; moto takes all its copies before it writes anything."""

    def __init__(self) -> None:
        self._copies: dict[int, object] = {}

    def deepcopy(self, table):
        if id(table) not in self._copies:
            state = copy.copy(table)
            state.items = copy.copy(table.items)  # keeps a defaultdict's default
            if table.range_key_attr is not None:  # {hash: {range: item}}: the inner dicts are written to
                state.items.update((hash_key, dict(by_range)) for hash_key, by_range in table.items.items())
            self._copies[id(table)] = state
        return self._copies[id(table)]


def transact_puts_cheaply(transact: Callable) -> Callable:
    """moto's `transact_write_items`, rolled back from `_PutsRollBack` when every action is a `Put`."""

    def transact_write_items(backend, transact_items):
        if not all(set(action) == {"Put"} for action in transact_items):
            return transact(backend, transact_items)
        dynamodb_models.copy = _PutsRollBack()  # type: ignore[assignment]
        try:
            return transact(backend, transact_items)
        finally:
            dynamodb_models.copy = copy

    return transact_write_items


@contextlib.contextmanager
def thread_safe_moto() -> Iterator[AwsUsage]:
    """While active, moto calls run one at a time and SQS visibility checks are cheap (see the module doc).
    Entered again while active (a `LocalPipeline` inside a test's), it changes nothing and yields the same
    usage.

    Yields:
        the billable units of every AWS call moto is handed meanwhile (`usage.AwsUsage`).
    """
    if _active:
        yield _active[0]
        return
    lock = threading.RLock()
    usage = AwsUsage()
    process_request = BotocoreStubber.process_request
    visible, delayed = Message.visible, Message.delayed
    transact = dynamodb_models.DynamoDBBackend.transact_write_items

    def serialised(self, request):
        aws_call_checkpoint()  # where a doomed invocation dies (`MappingChaos.kill_rate`)
        target = request.headers.get("X-Amz-Target") or b""
        usage.count(target.decode() if isinstance(target, bytes) else target, request.body or b"")
        if not (urlsplit(request.url).hostname or "").endswith(".amazonaws.com"):
            return None  # a stand-in of its own (dynalite, stand_ins.py): sent over HTTP, nothing to serialise
        with lock:
            return process_request(self, request)

    BotocoreStubber.process_request = serialised
    # moto's own properties compare the same fields with unix_time_millis() built from naive datetimes.
    Message.visible = property(lambda message: time.time() * 1000 > message.visible_at)
    Message.delayed = property(lambda message: time.time() * 1000 < message.delayed_until)
    dynamodb_models.DynamoDBBackend.transact_write_items = transact_puts_cheaply(transact)  # type: ignore[method-assign]
    _active.append(usage)
    try:
        yield usage
    finally:
        _active.clear()
        BotocoreStubber.process_request = process_request
        Message.visible, Message.delayed = visible, delayed
        dynamodb_models.DynamoDBBackend.transact_write_items = transact  # type: ignore[method-assign]


@contextlib.contextmanager
def stand_ins_share_fairly() -> Iterator[None]:
    """While active, the stand-ins hosted as threads of this one interpreter (the bench's: the emulator's
    request threads, the API Gateway and mapping stand-ins) share it more as separate machines would, for
    latency measurements:

    - a thread switch interval of 1 ms instead of 5: with some threads busy, the default lets them hold the
      GIL in turns while a thread with a request to answer or to pass on waits, for hundreds of ms;
    - no full garbage collections: they scan the whole heap, moto's tables and the emulator's contacts
      included (hundreds of ms each at 20,000 contacts), inside whichever request allocates next.
      The younger generations are still collected; the process stays a few hundred MB at 20,000 profiles.
    """
    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    sys.setswitchinterval(0.001)
    gc.set_threshold(thresholds[0], thresholds[1], 1_000_000)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)
        gc.set_threshold(*thresholds)


@contextlib.contextmanager
def environment(**variables: str) -> Iterator[None]:
    """Set environment variables for the duration (handlers read them at load), then restore them."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def load_deliver_environments(count: int, output: TextIO) -> list[ModuleType]:
    """`count` deliver handler modules, each loaded afresh: one per concurrent execution environment, each
    with its own HubSpot client and pacing (as Lambda runs each concurrent invocation in its own sandbox).
    Load-time output (Powertools) goes to `output`."""
    with contextlib.redirect_stdout(output):
        return [load_handler_module("deliver") for _ in range(count)]


def feed_and_drain(
    mapping: EventSourceMapping,
    feed: Callable[[], None],
    output: TextIO,
    abort: Callable[[], None] | None = None,
) -> DrainStats:
    """Run `feed` (which ingests) in this thread while `mapping` drains the queue in the background.

    The drain does not end before `feed` has returned, so an empty queue between two requests does not
    stop delivery. If `feed` raises, or this thread is interrupted (Ctrl-C), the mapping is stopped, `abort`
    is called (what ends the running invocations at once: `bench` stops its deliver workers), and the drain
    is waited for before the error is re-raised. The handlers' stdout (Powertools metrics) goes to
    `output` for the whole run, and Powertools' "No application metrics to publish" warning is silenced.

    Raises:
        whatever `feed` or the drain raised.
    """
    fed = threading.Event()
    outcome: dict = {}

    def drain() -> None:
        try:
            outcome["stats"] = mapping.drain(inputs_done=fed)
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error

    with contextlib.redirect_stdout(output), warnings.catch_warnings():
        # The execution environments share this process's Powertools Metrics store, so an invocation may
        # find its metrics already flushed by another one.
        warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)
        delivery = threading.Thread(target=drain, name="event-source-mapping")
        delivery.start()
        try:
            feed()
            fed.set()
            delivery.join()
        finally:
            if delivery.is_alive():  # `feed` failed, or the run was interrupted
                mapping.stop()
                if abort is not None:
                    abort()
                fed.set()
                delivery.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["stats"]


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` 0.5 for p50, 0.99 for p99) of `values`; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]

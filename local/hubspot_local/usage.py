"""What a local run would cost on AWS: the billable units of the AWS calls it made, at list prices.

`AwsUsage` counts every AWS request botocore sends: `harness.thread_safe_moto` hands it each one moto answers
in process, and a `ClientMeter` each one botocore sends from its process (`metering`; the bench has one in
each process its functions run in, the stand-ins being processes of their own). SQS requests are counted as
SQS bills them (each 64-KB chunk of a request's payload is one request), DynamoDB read and write request
units from the items each call reads or writes (on demand: a strongly consistent read of up to 4 KB is 1
RRU, read or not found; a write of up to 1 KB is 1 WRU, a refused conditional write included; a transactional
write is 2 WRU per KB of each item, as DynamoDB writes it twice, to prepare and to commit:
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html#transaction-capacity-handling).
A `TransactWriteItems` call is counted as sent, a cancelled one included: an upper bound (the pages read for
this say nothing of what a cancelled transaction consumes). The event source mapping's own calls count as the
real mapping makes them: its receives, its deletes in batches of 10 (`DeleteMessageBatch`), never the
stand-in's `GetQueueAttributes` polling.

Prices (`PRICES`) are us-east-1 list prices without free tiers, read on 2026-12-02; the README's
"Cost" paragraph says where each came from, and which could not be confirmed on AWS's own pages.
"""

import contextlib
import json
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import boto3
from botocore import handlers

# USD per unit, us-east-1, read 2026-12-02 (README, "Performance and resilience").
PRICES = {
    "lambda_gb_second": 0.0000133334,  # arm64, the first 7.5 billion GB-s a month
    "lambda_request": 0.20 / 1e6,
    "dynamodb_read_unit": 0.125 / 1e6,  # on demand
    "dynamodb_write_unit": 0.625 / 1e6,
    "sqs_request": 0.40 / 1e6,  # standard queue, per 64-KB chunk
    "api_gateway_request": 3.50 / 1e6,  # REST API, the first 333 million a month
}
_SQS_CHUNK_BYTES = 64 * 1024
_HARNESS_ONLY = frozenset({"GetQueueAttributes"})  # the mapping stand-in's polling; the real mapping long-polls


def _item_bytes(item: dict) -> int:
    """An item's size as DynamoDB bills it, about: its attribute names and values (a string's or number's
    text; any other type's JSON text)."""
    return sum(len(name.encode()) + _value_bytes(value) for name, value in item.items())


def _value_bytes(typed: dict) -> int:
    [(kind, value)] = typed.items()  # DynamoDB's typed value: {"S": "..."}, {"N": "12"}, {"M": {...}}, ...
    return len(value.encode()) if kind in {"S", "N"} else len(json.dumps(value).encode())


def _write_units(item: dict) -> int:
    return max(1, math.ceil(_item_bytes(item) / 1024))


_TRANSACTIONAL = 2  # a transactional write costs each item's units twice (rounded per item first)


class AwsUsage:
    """Billable units of the AWS requests counted so far (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.units: Counter[str] = Counter()  # sqs_requests, dynamodb_read_units, dynamodb_write_units

    def count(self, target: str, body: bytes) -> None:
        """Count one request from its `X-Amz-Target` header (service and operation) and its body."""
        service, _, operation = target.rpartition(".")
        request = json.loads(body or b"{}") if service.startswith("DynamoDB") else {}
        self.add(units_of(service, operation, request, len(body)))

    def add(self, units: Counter[str]) -> None:
        with self._lock:
            self.units.update(units)


def units_of(service: str, operation: str, request: dict, body_bytes: int) -> Counter[str]:
    """The billable units of one request: its service and operation, its parameters (DynamoDB's, as the
    JSON body carries them) and its body's size in bytes (SQS bills by the 64 KB)."""
    units: Counter[str] = Counter()
    if operation in _HARNESS_ONLY:
        return units
    if service == "AmazonSQS":
        chunks = max(1, math.ceil(body_bytes / _SQS_CHUNK_BYTES))
        units["sqs_requests"] = chunks / 10 if operation == "DeleteMessage" else chunks
    elif service.startswith("DynamoDB"):
        if operation == "BatchGetItem":
            units["dynamodb_read_units"] = sum(len(t["Keys"]) for t in request["RequestItems"].values())
        elif operation == "PutItem":
            units["dynamodb_write_units"] = _write_units(request["Item"])
        elif operation == "BatchWriteItem":
            puts = [w["PutRequest"]["Item"] for t in request["RequestItems"].values() for w in t]
            units["dynamodb_write_units"] = sum(_write_units(item) for item in puts)
        elif operation == "TransactWriteItems":  # the product sends `Put` actions only
            puts = [action["Put"]["Item"] for action in request["TransactItems"] if "Put" in action]
            units["dynamodb_write_units"] = _TRANSACTIONAL * sum(_write_units(item) for item in puts)
    return units


class ClientMeter:
    """What this process's AWS calls cost, seen from the client side (botocore's events, `metering`):
    their billable units (`usage`), the wall time of each thread's SQS calls (serialising, signing, the HTTP
    exchange and parsing: the whole call, retries included), and the CPU the counting itself takes, so
    that it can be left out of the functions' own. Thread-safe."""

    def __init__(self) -> None:
        self.usage = AwsUsage()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._counting_cpu_s = 0.0

    def before_dynamodb_parameters(self, params: dict, **_) -> None:
        """botocore's `before-parameter-build.dynamodb`: keep the call's parameters, which its body will carry
        (counted from them: parsing the body again would cost more than the call's own serialising)."""
        self._local.dynamodb_request = params

    def before_send(self, request, **_) -> None:
        """botocore's `before-send`: count the request about to be sent (each attempt, as moto would see it)."""
        started = time.thread_time()
        target = request.headers.get("X-Amz-Target") or b""
        service, _, operation = (target.decode() if isinstance(target, bytes) else target).rpartition(".")
        parameters = getattr(self._local, "dynamodb_request", {}) if service.startswith("DynamoDB") else {}
        self.usage.add(units_of(service, operation, parameters, len(request.body or b"")))
        spent = time.thread_time() - started
        self._local.counting_cpu_s = self.thread_counting_cpu_s() + spent
        with self._lock:
            self._counting_cpu_s += spent

    def before_sqs_call(self, **_) -> None:
        """botocore's `before-call.sqs`: an SQS call starts on this thread."""
        self._local.sqs_started = time.perf_counter()

    def after_sqs_call(self, **_) -> None:
        """botocore's `after-call.sqs` and `after-call-error.sqs`: the call started on this thread ended."""
        started = getattr(self._local, "sqs_started", None)
        if started is not None:
            self._local.sqs_s = self.thread_sqs_s() + time.perf_counter() - started
            self._local.sqs_started = None

    def thread_sqs_s(self) -> float:
        """Seconds the calling thread has spent in SQS calls so far."""
        return getattr(self._local, "sqs_s", 0.0)

    def thread_counting_cpu_s(self) -> float:
        """CPU seconds the counting has taken on the calling thread so far."""
        return getattr(self._local, "counting_cpu_s", 0.0)

    def counting_cpu_s(self) -> float:
        """CPU seconds the counting has taken so far, all threads together."""
        with self._lock:
            return self._counting_cpu_s


@contextlib.contextmanager
def metering(meter: ClientMeter) -> Iterator[ClientMeter]:
    """While active, `meter` sees every AWS call of this process: from the clients of every botocore session
    created meanwhile (botocore copies its built-in handlers into each new one; Powertools makes a session of
    its own for Secrets Manager), and of boto3's default session if it exists already. Clients created
    before it began are not seen (the local pipeline makes its clients afresh). Its `before-send` runs
    first, before moto's in-process stub answers (which ends the event).
    """
    hooks: list[tuple[str, Callable[..., None], object]] = [
        ("before-send", meter.before_send, handlers.REGISTER_FIRST),
        ("before-parameter-build.dynamodb", meter.before_dynamodb_parameters, handlers.REGISTER_LAST),
        ("before-call.sqs", meter.before_sqs_call, handlers.REGISTER_LAST),
        ("after-call.sqs", meter.after_sqs_call, handlers.REGISTER_LAST),
        ("after-call-error.sqs", meter.after_sqs_call, handlers.REGISTER_LAST),
    ]
    handlers.BUILTIN_HANDLERS.extend(hooks)
    session = boto3.DEFAULT_SESSION
    if session is not None:
        session.events.register_first("before-send", meter.before_send)
        for event, hook, _ in hooks[1:]:
            session.events.register_last(event, hook)
    try:
        yield meter
    finally:
        for spec in hooks:
            handlers.BUILTIN_HANDLERS.remove(spec)
        if session is not None:
            for event, hook, _ in hooks:
                session.events.unregister(event, hook)


@dataclass(frozen=True)
class Bill:
    """What a run used: Lambda GB-seconds and requests (invocations), API Gateway requests, and the AWS
    units `AwsUsage` counted."""

    lambda_gb_seconds: float
    lambda_requests: int
    api_gateway_requests: int
    units: Counter[str]

    def usd(self) -> float:
        """Its price in USD at `PRICES`."""
        return (
            self.lambda_gb_seconds * PRICES["lambda_gb_second"]
            + self.lambda_requests * PRICES["lambda_request"]
            + self.api_gateway_requests * PRICES["api_gateway_request"]
            + self.units["sqs_requests"] * PRICES["sqs_request"]
            + self.units["dynamodb_read_units"] * PRICES["dynamodb_read_unit"]
            + self.units["dynamodb_write_units"] * PRICES["dynamodb_write_unit"]
        )

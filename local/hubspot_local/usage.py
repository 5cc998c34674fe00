"""What a local run would cost on AWS: the billable units of the AWS calls it made, at list prices.

`AwsUsage` counts every AWS request botocore sends while it is active (`harness.thread_safe_moto` hands it
each one): SQS requests as SQS bills them (each 64-KB chunk of a request's payload is one request), DynamoDB
read and write request units from the items each call reads or writes (on demand: a strongly consistent read
of up to 4 KB is 1 RRU, read or not found; a write of up to 1 KB is 1 WRU, a refused conditional write
included; a transactional write is 2 WRU per KB of each item, as DynamoDB writes it twice, to prepare and to
commit: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html#transaction-capacity-handling).
A `TransactWriteItems` call is counted as sent, a cancelled one included: an upper bound (the pages read for
this say nothing of what a cancelled transaction consumes). The event source mapping's own calls count as the
real mapping makes them: its receives, its deletes in batches of 10 (`DeleteMessageBatch`), never the
stand-in's `GetQueueAttributes` polling.

Prices (`PRICES`) are us-east-1 list prices without free tiers, read on 2026-12-02; the README's
"Cost" paragraph says where each came from, and which could not be confirmed on AWS's own pages.
"""

import json
import math
import threading
from collections import Counter
from dataclasses import dataclass

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
    """An item's size as DynamoDB bills it, about: its attribute names and values (their JSON text)."""
    return sum(len(name.encode()) + len(json.dumps(value).encode()) for name, value in item.items())


def _write_units(item: dict) -> int:
    return max(1, math.ceil(_item_bytes(item) / 1024))


_TRANSACTIONAL = 2  # a transactional write costs each item's units twice (rounded per item first)


class AwsUsage:
    """Billable units of the AWS requests counted so far (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.units: Counter[str] = Counter()  # sqs_requests, dynamodb_read_units, dynamodb_write_units

    def count(self, target: str, body: bytes) -> None:
        """Count one request: its `X-Amz-Target` header (service and operation) and its body."""
        service, _, operation = target.rpartition(".")
        if operation in _HARNESS_ONLY:
            return
        units: Counter[str] = Counter()
        if service == "AmazonSQS":
            chunks = max(1, math.ceil(len(body) / _SQS_CHUNK_BYTES))
            units["sqs_requests"] = chunks / 10 if operation == "DeleteMessage" else chunks
        elif service.startswith("DynamoDB"):
            request = json.loads(body or b"{}")
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
        with self._lock:
            self.units.update(units)


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

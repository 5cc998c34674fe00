"""The contact versions table (DynamoDB): what was last written per contact (domain/versions.py), with
per-contact leases. Before a write the deliver function leases its contacts (so two concurrent invocations
never write the same contact at once) and drops every field older than the table's; after HubSpot answered
it records the new times and releases the leases.

A batch of 100 contacts costs a few round trips, not two calls per contact one after the other:
- read: one consistent `BatchGetItem` per 100 contacts;
- lease: one conditional `PutItem` per contact, several in flight at once, conditional on the item's `seq`
  being the one just read (or on there being no item), so of two invocations that read the same item only
  one gets it;
- record and release: `BatchWriteItem`, 25 items a call, without a condition: the lease is still held (it
  lasts longer than the function's timeout, and its time left is checked first). A lease with less than
  `_LEASE_MARGIN_S` left is written back conditionally on `seq` instead, so a lease that did run out never
  overwrites its next holder's record.
A crashed invocation's lease expires after `lease_s`.

Item: `{"contact": <sha256 hex>, "versions": <JSON {"attributes": {name: epoch µs}, "audiences":
{audience id: epoch µs}}>, "seq": <incremented by each lease>, "lease_until": epoch ms (0 when free),
"owner": <random id, while leased>, "expires": epoch s (TTL)}`. One string for the versions keeps the item
small and its reads cheap. A failed DynamoDB call never holds up the other contacts of the batch.

DynamoDB references: conditional writes
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/WorkingWithItems.html#WorkingWithItems.ConditionalUpdate,
batch limits (100 keys per `BatchGetItem`, 25 requests per `BatchWriteItem`, unprocessed items to resend)
https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html.
"""

import json
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from hubspot_destination.domain.versions import (
    NOTHING_WRITTEN,
    Lease,
    Leasing,
    VersionsNotRecorded,
    WrittenVersions,
    contact_key,
)
from hubspot_destination.limits import DYNAMODB_GET_KEYS, DYNAMODB_WRITE_REQUESTS
from hubspot_destination.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_CONDITION_FAILED = "ConditionalCheckFailedException"
_UNPROCESSED_TRIES = 5
# A lease with less than this left, in seconds, is written back conditionally.
_LEASE_MARGIN_S = 10


def client(max_pool_connections: int) -> "DynamoDBClient":
    """A low-level DynamoDB client (thread-safe) with room for `max_pool_connections` calls in flight."""
    return boto3.client("dynamodb", config=Config(max_pool_connections=max_pool_connections))


class ContactVersions:
    """The contact versions table.

    Args:
        client: a low-level `boto3.client("dynamodb")` (thread-safe, unlike a `Table` resource), with a
            connection pool of at least `concurrency`.
        table_name: the table's name.
        lease_s: how long a lease holds, in seconds (longer than the deliver function's timeout).
        ttl_days: items expire this many days after their last write (AEP forgets exited memberships
            after 30 days, so older versions no longer matter).
        clock: current time in seconds since the epoch.
        concurrency: conditional writes in flight at once.
    """

    def __init__(
        self,
        client,
        table_name: str,
        lease_s: int,
        ttl_days: int,
        clock: Callable[[], float] = time.time,
        concurrency: int = 16,
    ):
        self._client = client
        self._table = table_name
        self._lease_s = lease_s
        self._ttl_s = ttl_days * 86_400
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="contact-versions")

    def acquire(self, emails: Collection[str]) -> Leasing:
        """Lease the contacts; those another invocation holds (or took a moment ago) are left out, and a
        contact whose conditional write failed is reported in `failed` without holding up the others.

        Raises:
            botocore.exceptions.ClientError, BotoCoreError: the items could not be read (nothing leased).
        """
        keys = {contact_key(email): email for email in emails}
        items = self._read(list(keys))
        now_ms = int(self._clock() * 1000)
        until_ms, owner = now_ms + self._lease_s * 1000, uuid.uuid4().hex
        wanted = []
        for key, email in keys.items():
            item = items.get(key)
            if item is None:
                wanted.append(Lease(email, NOTHING_WRITTEN, 1, until_ms, owner))
            elif int(item["lease_until"]["N"]) < now_ms:
                wanted.append(Lease(email, _versions(item), int(item["seq"]["N"]) + 1, until_ms, owner))
        leasing = Leasing({}, {})
        for lease, outcome in self._in_parallel(self._take, [(lease,) for lease in wanted]):
            if isinstance(outcome, Exception):
                leasing.failed[lease.email] = str(outcome)  # if the write did land, the lease just expires
            elif outcome:
                leasing.leases[lease.email] = lease
        return leasing

    def release(self, leases: Iterable[Lease], written: Mapping[str, WrittenVersions]) -> None:
        """Record the times of the values just written (`{email: versions}`, merged with what was there)
        and release the leases; a lease without an entry in `written` is released unchanged.

        Every record is tried: a batch DynamoDB refused is written again item by item, conditionally. A
        lease found taken over (it ran out) is not written back: its next holder decides; a warning is logged.

        Raises:
            VersionsNotRecorded: after trying them all, for the contacts whose record DynamoDB refused.
        """
        safe_until_ms = int((self._clock() + _LEASE_MARGIN_S) * 1000)
        batched: list[tuple[Lease, dict]] = []
        conditional: list[tuple[Lease, dict]] = []
        for lease in leases:
            item = self._item(lease, lease.written.merged(written.get(lease.email, NOTHING_WRITTEN)), 0)
            (batched if lease.until_ms > safe_until_ms else conditional).append((lease, item))
        for start in range(0, len(batched), DYNAMODB_WRITE_REQUESTS):
            chunk = batched[start : start + DYNAMODB_WRITE_REQUESTS]
            try:
                self._write_batch([item for _, item in chunk])
            except (BotoCoreError, ClientError):
                conditional.extend(chunk)  # one by one: whatever did land is rewritten as it is
        failed, cause = [], None
        for lease, outcome in self._in_parallel(self._put_if_held, conditional):
            if isinstance(outcome, Exception):
                failed.append(lease.email)
                cause = outcome
            elif not outcome:
                logger.warning("contact lease expired before the write was recorded")
        if cause is not None:
            raise VersionsNotRecorded(failed, cause)

    def _in_parallel(self, write: Callable[..., bool], calls: Sequence[tuple]) -> list[tuple[Lease, object]]:
        """Run `write(*call)` for each call on the pool: `[(the call's lease, its result or DynamoDB error)]`."""
        futures = [(call[0], self._pool.submit(write, *call)) for call in calls]
        outcomes: list[tuple[Lease, object]] = []
        for lease, future in futures:
            try:
                outcomes.append((lease, future.result()))
            except (BotoCoreError, ClientError) as error:
                outcomes.append((lease, error))
        return outcomes

    # -- DynamoDB calls ------------------------------------------------------------------------------
    def _read(self, keys: list[str]) -> dict[str, dict]:
        """`{key: item}` for the keys that have an item (consistent reads, so a lease just taken shows)."""
        items: dict[str, dict] = {}
        for start in range(0, len(keys), DYNAMODB_GET_KEYS):
            request = {
                self._table: {
                    "Keys": [{"contact": {"S": key}} for key in keys[start : start + DYNAMODB_GET_KEYS]],
                    "ConsistentRead": True,
                }
            }
            for answer in self._until_processed("batch_get_item", "UnprocessedKeys", request):
                items.update({item["contact"]["S"]: item for item in answer["Responses"].get(self._table, [])})
        return items

    def _take(self, lease: Lease) -> bool:
        """Write the lease if the item is still as read; False when another invocation got there first."""
        if lease.seq == 1:
            condition, values = "attribute_not_exists(contact)", None
        else:
            condition, values = "seq = :seq", {":seq": {"N": str(lease.seq - 1)}}
        item = self._item(lease, lease.written, lease.until_ms)
        item["owner"] = {"S": lease.owner}
        current = self._put(item, condition, values)
        # botocore resends a write whose answer was lost: if the first one landed, the lease is ours.
        return current is None or current.get("owner", {}).get("S") == lease.owner

    def _put_if_held(self, lease: Lease, item: dict) -> bool:
        return self._put(item, "seq = :seq", {":seq": {"N": str(lease.seq)}}) is None

    def _put(self, item: dict, condition: str, values: dict | None) -> dict | None:
        """Put the item if `condition` holds: None when written, else the item as it is (`{}` if absent)."""
        arguments = {
            "TableName": self._table,
            "Item": item,
            "ConditionExpression": condition,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if values:
            arguments["ExpressionAttributeValues"] = values
        try:
            self._client.put_item(**arguments)
        except ClientError as error:
            if error.response["Error"].get("Code") == _CONDITION_FAILED:
                # The refusal carries the item as it is (ReturnValuesOnConditionCheckFailure).
                return dict(error.response.get("Item", {}))  # type: ignore[call-overload]
            raise
        return None

    def _write_batch(self, items: list[dict]) -> None:
        puts = [{"PutRequest": {"Item": item}} for item in items]
        self._until_processed("batch_write_item", "UnprocessedItems", {self._table: puts})

    def _until_processed(self, operation: str, unprocessed: str, request: dict) -> list[dict]:
        """Call a batch `operation` again with what DynamoDB handed back as `unprocessed` (it was throttled),
        backing off, until nothing is left; returns every answer.

        Raises:
            botocore.exceptions.ClientError: items were still unprocessed after a few tries.
        """
        answers = []
        for attempt in range(_UNPROCESSED_TRIES):
            answers.append(getattr(self._client, operation)(RequestItems=request))
            request = answers[-1].get(unprocessed) or {}
            if not request:
                return answers
            time.sleep(0.05 * 2**attempt)
        code, message = "ProvisionedThroughputExceededException", f"{operation} left items unprocessed"
        raise ClientError({"Error": {"Code": code, "Message": message}}, operation)

    def _item(self, lease: Lease, versions: WrittenVersions, lease_until_ms: int) -> dict:
        document = {"attributes": dict(versions.attributes), "audiences": dict(versions.audiences)}
        return {
            "contact": {"S": contact_key(lease.email)},
            "versions": {"S": json.dumps(document, separators=(",", ":"), sort_keys=True)},
            "seq": {"N": str(lease.seq)},
            "lease_until": {"N": str(lease_until_ms)},
            "expires": {"N": str(int(self._clock() + self._ttl_s))},
        }


def _versions(item: dict) -> WrittenVersions:
    document = json.loads(item["versions"]["S"])
    return WrittenVersions(document["attributes"], document["audiences"])

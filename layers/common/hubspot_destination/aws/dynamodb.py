"""The contact versions table (DynamoDB): what was last written per contact (domain/versions.py), with
per-contact leases. Before a write the deliver function leases its contacts (so two concurrent invocations
never write the same contact at once) and drops every field older than the table's; after HubSpot answered
it records the new times and releases the leases.

A batch of 100 contacts costs a few round trips, not one or two calls per contact:
- read: one consistent `BatchGetItem` per 100 contacts;
- lease: one `TransactWriteItems` per 100 contacts (fewer if their items pass 4 MB together), the
  transactions of a batch in flight at once; each contact is a `Put` conditional on the item's `seq` being
  the one just read (or on there being no item), so of two invocations that read the same item only one gets
  it. A transaction is all or nothing: when DynamoDB cancels it, its `CancellationReasons` (one per item, in
  order) say which contacts were refused, and the others go again in a new transaction, a few rounds at most
  (`_LEASE_ROUNDS`; see `_lease_all`);
- record and release: `BatchWriteItem`, 25 items a call, the calls in flight at once, without a condition:
  the lease is still held (it lasts longer than the function's timeout, and its time left is checked first).
  A lease with less than `_LEASE_MARGIN_S` left is written back with a `PutItem` conditional on `seq`
  instead, so a lease that did run out never overwrites its next holder's record.
A crashed invocation's lease expires after `lease_s`.

Item: `{"contact": <sha256 hex>, "versions": <JSON {"attributes": {name: epoch µs}, "audiences":
{audience id: epoch µs}}>, "seq": <incremented by each lease>, "lease_until": epoch ms (0 when free),
"owner": <random id, while leased>, "expires": epoch s (TTL)}`. One string for the versions keeps the item
small and its reads cheap. A failed DynamoDB call never holds up the other contacts of the batch.

Cost (on demand): a transactional write is 2 write request units per KB of each item, twice a `PutItem`'s,
as DynamoDB writes every item twice (prepare, commit)
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html#transaction-capacity-handling);
botocore's client side of one call per 100 contacts costs far less CPU than one call per contact (README,
"Throughput: bench").

DynamoDB references: conditional writes
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/WorkingWithItems.html#WorkingWithItems.ConditionalUpdate,
batch limits (100 keys per `BatchGetItem`, 25 requests per `BatchWriteItem`, unprocessed items to resend)
https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html, transactions and
their cancellation reasons https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html.
"""

import json
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
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
from hubspot_destination.limits import (
    DYNAMODB_GET_KEYS,
    DYNAMODB_TRANSACTION_BYTES,
    DYNAMODB_TRANSACTION_ITEMS,
    DYNAMODB_WRITE_REQUESTS,
)
from hubspot_destination.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_CONDITION_FAILED = "ConditionalCheckFailedException"
_TRANSACTION_CANCELED = "TransactionCanceledException"
# Cancellation reasons (API_TransactWriteItems.html, "Errors"): the item was fine ("None", the literal string),
# or another invocation has it or is taking it; any other code is DynamoDB failing for that item.
_FINE = "None"
_TAKEN = frozenset({"ConditionalCheckFailed", "TransactionConflict"})
_LEASE_ROUNDS = 3
_UNPROCESSED_TRIES = 5
# A lease with less than this left, in seconds, is written back conditionally.
_LEASE_MARGIN_S = 10
_VERSIONS_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=True)  # one encoder, not one per item


def client(max_pool_connections: int) -> "DynamoDBClient":
    """A low-level DynamoDB client (thread-safe) with room for `max_pool_connections` calls in flight.

    botocore's client-side parameter validation is off: it walks every attribute of every item of a
    100-item transaction before sending, a third of the client's CPU for the lease and the record (measured
    against dynalite: 0.19 → 0.13 ms per contact), while DynamoDB validates each request itself (a malformed
    one is a `ValidationException`) and mypy checks the calls against botocore's model (mypy-boto3-dynamodb).
    """
    config = Config(max_pool_connections=max_pool_connections, parameter_validation=False)
    return boto3.client("dynamodb", config=config)


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
        concurrency: DynamoDB calls in flight at once (lease transactions, record batches, conditional puts).
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
        contact DynamoDB failed for is reported in `failed` without holding up the others.

        Raises:
            botocore.exceptions.ClientError, BotoCoreError: the items could not be read (nothing leased).
        """
        keys = {contact_key(email): email for email in emails}
        items = self._read(list(keys))
        now_ms = int(self._clock() * 1000)
        until_ms, owner = now_ms + self._lease_s * 1000, uuid.uuid4().hex
        wanted: list[tuple[Lease, str]] = []  # with the versions as stored
        for key, email in keys.items():
            item = items.get(key)
            if item is None:
                wanted.append((Lease(email, NOTHING_WRITTEN, 1, until_ms, owner), _encode(NOTHING_WRITTEN)))
            elif int(item["lease_until"]["N"]) < now_ms:
                stored = item["versions"]["S"]
                lease = Lease(email, _versions(stored), int(item["seq"]["N"]) + 1, until_ms, owner)
                wanted.append((lease, stored))
        leasing = Leasing({}, {})
        puts = [(lease, self._lease_put(lease, stored)) for lease, stored in wanted]
        for leased, failed in self._pool.map(self._lease_all, list(_transactions(puts))):
            leasing.leases.update((lease.email, lease) for lease in leased)
            leasing.failed.update(failed)
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
            versions = lease.written.merged(written.get(lease.email, NOTHING_WRITTEN))
            item = self._item(lease, _encode(versions), 0)
            (batched if lease.until_ms > safe_until_ms else conditional).append((lease, item))
        step = DYNAMODB_WRITE_REQUESTS
        chunks = [batched[start : start + step] for start in range(0, len(batched), step)]
        outcomes = self._in_parallel(self._write_batch, [([item for _, item in chunk],) for chunk in chunks])
        for chunk, (_, outcome) in zip(chunks, outcomes, strict=True):
            if isinstance(outcome, Exception):
                conditional.extend(chunk)  # one by one: whatever did land is rewritten as it is
        failed, cause = [], None
        for (lease, _), outcome in self._in_parallel(self._put_if_held, conditional):
            if isinstance(outcome, Exception):
                failed.append(lease.email)
                cause = outcome
            elif not outcome:
                logger.warning("contact lease expired before the write was recorded")
        if cause is not None:
            raise VersionsNotRecorded(failed, cause)

    def _in_parallel(self, call: Callable[..., object], calls: Sequence[tuple]) -> list[tuple[tuple, object]]:
        """Run `call(*arguments)` for each tuple of `calls` on the pool: `[(arguments, result or DynamoDB
        error)]`, in order."""
        futures = [(arguments, self._pool.submit(call, *arguments)) for arguments in calls]
        outcomes: list[tuple[tuple, object]] = []
        for arguments, future in futures:
            try:
                outcomes.append((arguments, future.result()))
            except (BotoCoreError, ClientError) as error:
                outcomes.append((arguments, error))
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

    def _lease_put(self, lease: Lease, stored: str) -> dict:
        """The transaction's action for one lease: put it, with its versions as they were `stored` (JSON), if
        the item is still as read."""
        item = self._item(lease, stored, lease.until_ms)
        item["owner"] = {"S": lease.owner}
        put = {"TableName": self._table, "Item": item, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
        if lease.seq == 1:
            put["ConditionExpression"] = "attribute_not_exists(contact)"
        else:
            put["ConditionExpression"] = "seq = :seq"
            put["ExpressionAttributeValues"] = {":seq": {"N": str(lease.seq - 1)}}
        return {"Put": put}

    def _lease_all(self, puts: Sequence[tuple[Lease, dict]]) -> tuple[list[Lease], dict[str, str]]:
        """Write the leases in one transaction (at most 100): `(leased, {email: why DynamoDB failed})`; a
        lease in neither is held by another invocation.

        When DynamoDB cancels the transaction, each item's cancellation reason says what became of it:
        `ConditionalCheckFailed` or `TransactionConflict`, another invocation has it or is taking it (left
        out), unless the item it returns (ALL_OLD) is already ours; `None`, it was fine (sent again, without
        the refused ones, in a new transaction: up to `_LEASE_ROUNDS` in all); any other code (throttled,
        invalid...) is a failure for that contact. A failed call (another error) fails the contacts it carried.

        A lost answer is safe: botocore fills the call's `ClientRequestToken` itself, once per call before
        its retries (the service model marks it `idempotencyToken`; `botocore.handlers.generate_idempotent_uuid`),
        and DynamoDB answers a call repeated with the same token within 10 minutes as it did the first
        time, without writing again (API_TransactWriteItems.html, `ClientRequestToken`). If one of our
        earlier transactions did land anyway, the item then carries our `owner`: the lease is ours.
        """
        leased: list[Lease] = []
        failed: dict[str, str] = {}
        pending = list(puts)
        for _ in range(_LEASE_ROUNDS):
            try:
                self._client.transact_write_items(TransactItems=[put for _, put in pending])
            except ClientError as error:
                # The modeled fields of the error (its cancellation reasons) are added to the response.
                reasons = error.response.get("CancellationReasons") or []
                if error.response["Error"].get("Code") != _TRANSACTION_CANCELED or len(reasons) != len(pending):
                    return leased, {**failed, **{lease.email: str(error) for lease, _ in pending}}
                again = []
                for (lease, put), reason in zip(pending, reasons, strict=True):
                    code = reason.get("Code")
                    if code == _FINE:
                        again.append((lease, put))
                    elif code in _TAKEN:
                        if _owner(reason.get("Item")) == lease.owner:
                            leased.append(lease)  # our own earlier attempt landed
                    else:
                        failed[lease.email] = f"lease refused by DynamoDB ({code}): {reason.get('Message', '')}"
                pending = again
            except BotoCoreError as error:
                return leased, {**failed, **{lease.email: str(error) for lease, _ in pending}}
            else:
                return leased + [lease for lease, _ in pending], failed
            if not pending:
                break
        for lease, _ in pending:
            failed[lease.email] = (
                f"not leased: {_LEASE_ROUNDS} transactions in a row were cancelled because of other contacts"
            )
        return leased, failed

    def _put_if_held(self, lease: Lease, item: dict) -> bool:
        """Write the record if the lease is still ours: False when another invocation took it over."""
        arguments = {
            "TableName": self._table,
            "Item": item,
            "ConditionExpression": "seq = :seq",
            "ExpressionAttributeValues": {":seq": {"N": str(lease.seq)}},
        }
        try:
            self._client.put_item(**arguments)
        except ClientError as error:
            if error.response["Error"].get("Code") == _CONDITION_FAILED:
                return False
            raise
        return True

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

    def _item(self, lease: Lease, versions: str, lease_until_ms: int) -> dict:
        """The item of a lease, with its versions encoded (`_encode`)."""
        return {
            "contact": {"S": contact_key(lease.email)},
            "versions": {"S": versions},
            "seq": {"N": str(lease.seq)},
            "lease_until": {"N": str(lease_until_ms)},
            "expires": {"N": str(int(self._clock() + self._ttl_s))},
        }


def _transactions(puts: Sequence[tuple[Lease, dict]]) -> Iterator[list[tuple[Lease, dict]]]:
    """The puts in groups one transaction can take: at most 100, their items under 4 MB together."""
    group: list[tuple[Lease, dict]] = []
    size = 0
    for lease, put in puts:
        item_size = _item_bytes(put["Put"]["Item"])
        if group and (len(group) == DYNAMODB_TRANSACTION_ITEMS or size + item_size > DYNAMODB_TRANSACTION_BYTES):
            yield group
            group, size = [], 0
        group.append((lease, put))
        size += item_size
    if group:
        yield group


def _item_bytes(item: dict) -> int:
    """An item's size as DynamoDB counts it, about: its attribute names and values (all strings or numbers)."""
    return sum(len(name.encode()) + len(value.encode()) for name, typed in item.items() for value in typed.values())


def _owner(item: Mapping | None) -> str | None:
    """Who holds an item as DynamoDB returned it (None without an item or an owner)."""
    return (item or {}).get("owner", {}).get("S")


def _encode(versions: WrittenVersions) -> str:
    """The item's `versions` string: compact JSON, keys sorted."""
    return _VERSIONS_JSON.encode({"attributes": dict(versions.attributes), "audiences": dict(versions.audiences)})


def _versions(stored: str) -> WrittenVersions:
    """The versions an item's `versions` string holds."""
    document = json.loads(stored)
    return WrittenVersions(document["attributes"], document["audiences"])

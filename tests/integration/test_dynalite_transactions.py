"""The bench's DynamoDB, dynalite with `TransactWriteItems` (`local/bench/dynalite-transactions.js`, started by
`stand_ins.dynalite`), through a real boto3 client and the real contact versions adapter: transactions are all
or nothing, their refusals name each item's reason in order, and leases behave as they do on moto."""

import http.client
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.exceptions import ClientError

from hubspot_destination.aws.dynamodb import ContactVersions
from hubspot_destination.domain.versions import WrittenVersions
from hubspot_local.stand_ins import DYNALITE, dynalite
from tests.helpers import HookedClient, lease_while_a_rival_takes_two


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    if not DYNALITE.is_file() or shutil.which("node") is None:
        why = "needs Node.js and npm: `make bench` installs dynalite (local/bench/)"
        if os.environ.get("CI"):
            pytest.fail(f"CI runs the dynalite tests; {why}")
        pytest.skip(f"{why}; CI runs these")
    with dynalite() as stand_in:
        yield stand_in.url


@pytest.fixture(scope="module")
def client(endpoint):
    """A client of the stand-in: never AWS (its own endpoint, dummy credentials)."""
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def table(client) -> str:
    """A fresh table of the contact versions' shape."""
    name = f"versions-{uuid.uuid4().hex[:12]}"
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "contact", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "contact", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    # dynalite marks it ACTIVE a moment later (--createTableMs 0: on its next turn), as DynamoDB does later.
    while client.describe_table(TableName=name)["Table"]["TableStatus"] != "ACTIVE":
        time.sleep(0.01)
    return name


def versions_table(client, table: str, **options) -> ContactVersions:
    return ContactVersions(client, table, lease_s=90, ttl_days=35, **options)


def put(table: str, contact: str, **condition) -> dict:
    return {"Put": {"TableName": table, "Item": {"contact": {"S": contact}}, **condition}}


def test_a_cancelled_transaction_writes_nothing_and_gives_each_items_reason_in_order(client, table):
    client.put_item(TableName=table, Item={"contact": {"S": "b"}, "owner": {"S": "someone"}})
    new_only = {"ConditionExpression": "attribute_not_exists(contact)"}
    with pytest.raises(ClientError) as refused:
        client.transact_write_items(
            TransactItems=[
                put(table, "a", **new_only),
                put(table, "b", **new_only, ReturnValuesOnConditionCheckFailure="ALL_OLD"),
                put(table, "c", **new_only),
                put(table, "d", **new_only, ReturnValuesOnConditionCheckFailure="NONE"),
            ]
        )
    error = refused.value.response
    assert error["Error"]["Code"] == "TransactionCanceledException"
    assert error["Error"]["Message"] == (
        "Transaction cancelled, please refer cancellation reasons for specific reasons [None, ConditionalCheckFailed, "
        "None, None]"
    )
    assert error["CancellationReasons"] == [
        {"Code": "None"},
        {
            "Code": "ConditionalCheckFailed",
            "Message": "The conditional request failed",
            "Item": {"contact": {"S": "b"}, "owner": {"S": "someone"}},
        },
        {"Code": "None"},
        {"Code": "None"},
    ]
    assert [item["contact"]["S"] for item in client.scan(TableName=table)["Items"]] == ["b"]  # nothing written
    client.transact_write_items(TransactItems=[put(table, "a", **new_only), put(table, "c", **new_only)])
    assert sorted(item["contact"]["S"] for item in client.scan(TableName=table)["Items"]) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("actions", "message"),
    [
        (lambda t: [{"Delete": {"TableName": t, "Key": {"contact": {"S": "a"}}}}], "Only Put actions are supported"),
        (lambda t: [put(t, "a"), put(t, "a")], "Transaction request cannot include multiple operations on one item"),
        (lambda t: [put(t, f"k{i}") for i in range(101)], "Member must have length less than or equal to 100"),
        (lambda t: [{"Put": {"TableName": t, "Item": {"other": {"S": "a"}}}}], "Missing the key contact"),
    ],
    ids=["delete", "one item twice", "101 actions", "no key"],
)
def test_what_the_stand_in_does_not_take_is_a_validation_error_and_writes_nothing(client, table, actions, message):
    with pytest.raises(ClientError) as refused:
        client.transact_write_items(TransactItems=actions(table))
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert message in refused.value.response["Error"]["Message"]
    assert client.scan(TableName=table)["Items"] == []


def test_a_condition_parsed_once_is_still_checked_against_each_calls_own_values(client, table):
    # The stand-in memoises dynalite's parse of a condition expression: by expression, names and values.
    client.put_item(TableName=table, Item={"contact": {"S": "a"}, "seq": {"N": "5"}})
    outcomes = []
    for seq in ["4", "5", "4", "5", "6"]:
        action = put(table, "a", ConditionExpression="#s = :seq", ExpressionAttributeNames={"#s": "seq"})
        action["Put"]["ExpressionAttributeValues"] = {":seq": {"N": seq}}
        action["Put"]["Item"]["seq"] = {"N": "5"}  # written back as it was, so each call sees seq 5
        try:
            client.transact_write_items(TransactItems=[action])
            outcomes.append("written")
        except ClientError as error:
            outcomes.append(error.response["CancellationReasons"][0]["Code"])
    refused = "ConditionalCheckFailed"
    assert outcomes == [refused, "written", refused, "written", refused]
    for _ in range(2):  # an unused value is refused every time, the parse kept or not
        unused = put(table, "a", ConditionExpression="attribute_exists(contact)")
        unused["Put"]["ExpressionAttributeValues"] = {":spare": {"N": "1"}}
        with pytest.raises(ClientError, match="unused in expressions"):
            client.transact_write_items(TransactItems=[unused])


def test_fresh_contacts_are_leased_in_transactions_of_100(client, table):
    calls = []

    def transact_write_items(real, **arguments):
        calls.append(len(arguments["TransactItems"]))
        return real(**arguments)

    emails = [f"u{i}@example.com" for i in range(250)]
    leasing = versions_table(HookedClient(client, transact_write_items=transact_write_items), table).acquire(emails)
    assert sorted(calls) == [50, 100, 100]
    assert (set(leasing.leases), leasing.failed) == (set(emails), {})
    items = client.scan(TableName=table)["Items"]
    assert len(items) == 250
    assert {(item["seq"]["N"], item["owner"]["S"]) for item in items} == {("1", leasing.leases[emails[0]].owner)}
    assert versions_table(client, table).acquire(emails).leases == {}  # all held


def test_a_contact_leased_meanwhile_is_left_out_and_the_others_leased_next_round(client, table):
    leasing, sizes, emails, held = lease_while_a_rival_takes_two(
        lambda **hooks: versions_table(HookedClient(client, **hooks), table), versions_table(client, table)
    )
    assert sizes == [10, 8]
    assert (set(leasing.leases), leasing.failed) == (emails - held, {})


def test_an_expired_lease_is_taken_over_and_its_late_record_is_not_written(client, table):
    now = [1_000_000.0]
    slow, fast = (
        versions_table(client, table, clock=lambda: now[0]),
        versions_table(client, table, clock=lambda: now[0]),
    )
    [stale] = slow.acquire(["a@example.com"]).leases.values()
    assert fast.acquire(["a@example.com"]).leases == {}  # held
    now[0] += 91  # the holder stalled past its lease
    [current] = fast.acquire(["a@example.com"]).leases.values()  # conditional on the seq it read
    assert (current.seq, current.written) == (stale.seq + 1, stale.written)
    assert current.owner != stale.owner
    # The stalled holder comes back: its lease ended and was taken over, so its record is not written.
    slow.release([stale], {"a@example.com": WrittenVersions({"city": 40}, {})})
    [item] = client.scan(TableName=table)["Items"]
    assert (item["seq"]["N"], item["owner"]["S"]) == (str(current.seq), current.owner)
    fast.release([current], {"a@example.com": WrittenVersions({"city": 50}, {})})
    [lease] = fast.acquire(["a@example.com"]).leases.values()
    assert lease.written == WrittenVersions({"city": 50}, {})


def test_of_two_invocations_racing_for_contacts_exactly_one_gets_each(client, table):
    # Their first transactions of a round go out together (each waits for the other's), so the stand-in runs
    # them at once; a second round, if any, goes alone.
    together, waited, current = threading.Barrier(2, timeout=10), set(), {"round": 0}

    def transact_write_items(real, **arguments):
        first = (current["round"], threading.get_ident())  # a racer's rounds run on one thread
        if first not in waited:
            waited.add(first)
            together.wait()
        return real(**arguments)

    racers = [versions_table(HookedClient(client, transact_write_items=transact_write_items), table) for _ in "ab"]
    for round_ in range(5):
        current["round"] = round_
        emails = [f"u{round_}-{i}@example.com" for i in range(100)]  # one transaction each
        with ThreadPoolExecutor(2) as pool:
            won = [leasing.leases for leasing in pool.map(ContactVersions.acquire, racers, [emails, emails])]
        assert sorted([*won[0], *won[1]]) == sorted(emails)  # each contact leased once, by one of them
        assert versions_table(client, table).acquire(emails).leases == {}


def test_two_transactions_on_one_item_at_once_commit_one_and_cancel_the_other(endpoint, table):
    # Both requests are on the stand-in's sockets before it reads either (raw HTTP, connected first: botocore
    # would send them one after the other), so without its item locks both would read "no item" and commit.
    # dynalite checks that a signature is there, not what it is.
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "DynamoDB_20120810.TransactWriteItems",
        "X-Amz-Date": "20250101T000000Z",
        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=host, Signature=0",
    }
    address = urlsplit(endpoint)
    for round_ in range(10):
        condition = {"ConditionExpression": "attribute_not_exists(contact)"}
        bodies = [json.dumps({"TransactItems": [put(table, f"item-{round_}", **condition)]}) for _ in "ab"]
        connections = [http.client.HTTPConnection(address.hostname, address.port, timeout=10) for _ in bodies]
        try:
            for connection in connections:
                connection.connect()
            for connection, body in zip(connections, bodies, strict=True):
                connection.request("POST", "/", body=body, headers=headers)
            answers = [connection.getresponse() for connection in connections]
            statuses = sorted(answer.status for answer in answers)
            kinds = sorted(json.loads(answer.read()).get("__type", "").rpartition("#")[2] for answer in answers)
        finally:
            for connection in connections:
                connection.close()
        assert (statuses, kinds) == ([200, 400], ["", "TransactionCanceledException"]), round_

"""Order across batches: the contact versions table (moto DynamoDB) makes late, replayed and concurrent
deliveries safe, through the real handlers against the emulator."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from hubspot_destination.aws.dynamodb import ContactVersions
from hubspot_destination.domain.audiences import audience_property_name
from hubspot_destination.domain.versions import VersionsNotRecorded, WrittenVersions, contact_key, epoch_us
from hubspot_local.pipeline import VERSIONS_TABLE
from tests.conftest import queued_messages
from tests.helpers import HookedClient, assert_all_accounted_for, lease_while_a_rival_takes_two

AUD = audience_property_name("aud-1")


def faulty_dynamodb(**hooks) -> HookedClient:
    """The real (moto) client, with chosen calls failing or sent twice (see `HookedClient`)."""
    return HookedClient(boto3.client("dynamodb"), **hooks)


def throttled(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, operation)


def profile(status, when, **attributes):
    return {
        "identityMap": {"email": [{"id": "user1@example.com"}]},
        "attributes": {name: {"value": value} for name, value in attributes.items()},
        "segmentMembership": {"ups": {"aud-1": {"status": status, "lastQualificationTime": when}}},
    }


def enqueue(pipeline, *profiles) -> list[str]:
    """Ingest each profile in its own request and return the queued bodies (taken off the queue)."""
    bodies = []
    for item in profiles:
        assert pipeline.ingest(json.dumps({"profiles": [item]}).encode())["status"] == 202
        bodies.extend(message["Body"] for message in queued_messages(pipeline))
    purge(pipeline)
    return bodies


def purge(pipeline):
    for message in queued_messages(pipeline):
        pipeline.sqs.delete_message(QueueUrl=pipeline.queue_url, ReceiptHandle=message["ReceiptHandle"])
    pipeline.sqs.purge_queue(QueueUrl=pipeline.queue_url)


def deliver(pipeline, *bodies):
    """Send each body (one `enqueue` took off the queue) and drain the queue after each."""
    for body in bodies:
        pipeline.sqs.send_message(QueueUrl=pipeline.queue_url, MessageBody=body)
        pipeline.drain()
    assert_all_accounted_for(pipeline)


def contact(pipeline) -> dict:
    [found] = [c["properties"] for c in pipeline.emulator.snapshot()["contacts"]]
    return found


def test_a_late_older_message_never_overwrites_a_newer_one(pipeline):
    older, newer = enqueue(
        pipeline,
        profile("realized", "2025-03-04T10:00:00Z", city="York"),
        profile("exited", "2025-03-04T11:00:00Z", city="Leeds"),
    )
    deliver(pipeline, newer, older)  # the older message arrives last (reordered, or redelivered)
    user = contact(pipeline)
    assert (user[AUD], user["city"]) == ("exited", "Leeds")
    assert pipeline.dead_letters() == []
    upserts = [r for r in pipeline.emulator.snapshot()["requests"] if r["path"].endswith("/batch/upsert")]
    assert len(upserts) == 1  # the stale message did not call HubSpot at all


def test_newer_fields_of_a_late_message_are_still_written(pipeline):
    # The late message is older for the audience but carries an attribute the newer one did not have.
    late, newer = enqueue(
        pipeline,
        profile("realized", "2025-03-04T12:00:00Z", firstname="Ann"),
        profile("exited", "2025-03-04T11:00:00Z", city="Leeds"),
    )
    deliver(pipeline, newer, late)
    user = contact(pipeline)
    assert (user[AUD], user["firstname"], user["city"]) == ("realized", "Ann", "Leeds")


def test_a_replayed_message_is_harmless(pipeline):
    [body] = enqueue(pipeline, profile("realized", "2025-03-04T10:00:00Z", city="York"))
    deliver(pipeline, body, body)
    assert contact(pipeline)["city"] == "York"
    assert pipeline.dead_letters() == []


def versions_table(client=None, **options) -> ContactVersions:
    client = client or boto3.client("dynamodb")
    return ContactVersions(client, VERSIONS_TABLE, lease_s=90, ttl_days=35, **options)


def test_versions_are_keyed_by_email_hash_and_record_what_was_written(pipeline):
    [body] = enqueue(pipeline, profile("realized", "2025-03-04T10:00:00Z", city="York"))
    deliver(pipeline, body)
    table = boto3.resource("dynamodb").Table(VERSIONS_TABLE)
    [item] = table.scan()["Items"]
    assert item["contact"] == contact_key("user1@example.com")
    assert "user1@example.com" not in json.dumps(item, default=str)
    versions = json.loads(item["versions"])
    assert set(versions["attributes"]) == {"city"}
    assert versions["audiences"] == {"aud-1": 1741082400000000}  # 2025-03-04T10:00:00Z in µs
    assert item["lease_until"] == 0  # released after the write
    assert item["seq"] == 1


def test_a_contact_leased_by_another_invocation_is_requeued_not_written(pipeline):
    [body] = enqueue(pipeline, profile("realized", "2025-03-04T10:00:00Z", city="York"))
    versions = versions_table()
    [lease] = versions.acquire(["user1@example.com"]).leases.values()
    pipeline.sqs.send_message(QueueUrl=pipeline.queue_url, MessageBody=body)
    pipeline.drain(max_wait_s=0)
    assert_all_accounted_for(pipeline, queued=1)  # requeued: the contact is leased
    assert pipeline.emulator.snapshot()["contacts"] == []
    assert pipeline.dead_letters() == []
    versions.release([lease], {})
    pipeline.drain(max_wait_s=10)  # the requeued copy comes back after its short delay
    assert_all_accounted_for(pipeline)
    assert contact(pipeline)["city"] == "York"


def test_of_two_invocations_racing_for_a_contact_exactly_one_gets_it(pipeline):
    emails = [f"user{i}@example.com" for i in range(150)]  # more than one BatchGetItem
    first, second = versions_table(), versions_table()
    with ThreadPoolExecutor(2) as pool:
        won = [leasing.leases for leasing in pool.map(lambda table: table.acquire(emails), (first, second))]
    assert sorted([*won[0], *won[1]]) == sorted(emails)  # each contact leased once, by one of them
    assert second.acquire(emails).leases == {}  # all held
    first.release(won[0].values(), {})
    assert set(second.acquire(emails).leases) == set(won[0])  # released ones can be taken again


def test_records_merge_with_what_was_written_and_keep_the_newest_time(pipeline):
    versions = versions_table()
    [lease] = versions.acquire(["a@example.com"]).leases.values()
    versions.release([lease], {"a@example.com": WrittenVersions({"city": 20, "zip": 5}, {"aud-1": 7})})
    [lease] = versions.acquire(["a@example.com"]).leases.values()
    assert lease.written == WrittenVersions({"city": 20, "zip": 5}, {"aud-1": 7})
    versions.release([lease], {"a@example.com": WrittenVersions({"city": 10, "phone": 3}, {"aud-2": 1})})
    [lease] = versions.acquire(["a@example.com"]).leases.values()
    assert lease.written == WrittenVersions({"city": 20, "zip": 5, "phone": 3}, {"aud-1": 7, "aud-2": 1})


def test_an_expired_lease_is_taken_over_and_its_late_record_is_not_written(pipeline):
    now = [1_000_000.0]
    slow, fast = versions_table(clock=lambda: now[0]), versions_table(clock=lambda: now[0])
    [stale] = slow.acquire(["a@example.com"]).leases.values()
    assert fast.acquire(["a@example.com"]).leases == {}  # held
    now[0] += 91  # the holder stalled past its lease
    [current] = fast.acquire(["a@example.com"]).leases.values()
    fast.release([current], {"a@example.com": WrittenVersions({"city": 50}, {})})
    # The stalled holder comes back: its lease ended, so it writes back only if nobody took over.
    slow.release([stale], {"a@example.com": WrittenVersions({"city": 40, "zip": 40}, {})})
    [lease] = fast.acquire(["a@example.com"]).leases.values()
    assert lease.written == WrittenVersions({"city": 50}, {})


def test_a_lease_near_its_end_is_still_recorded_when_nobody_took_over(pipeline):
    now = [1_000_000.0]
    versions = versions_table(clock=lambda: now[0])
    [lease] = versions.acquire(["a@example.com"]).leases.values()
    now[0] += 85  # 5 s left: written back conditionally
    versions.release([lease], {"a@example.com": WrittenVersions({"city": 50}, {})})
    [lease] = versions.acquire(["a@example.com"]).leases.values()
    assert lease.written == WrittenVersions({"city": 50}, {})


def test_a_late_older_status_given_with_a_utc_offset_is_still_older(pipeline):
    # 12:30+02:00 is 10:30Z: older than the exit at 11:00Z although its wall-clock time is later.
    newer, late = enqueue(
        pipeline,
        profile("exited", "2025-03-04T11:00:00Z"),
        profile("realized", "2025-03-04T12:30:00+02:00"),
    )
    deliver(pipeline, newer, late)
    assert contact(pipeline)[AUD] == "exited"
    assert epoch_us(datetime(2025, 3, 4, 12, 30, tzinfo=timezone(timedelta(hours=2)))) == 1741084200000000


def cancelled(reasons: list[dict]) -> ClientError:
    """DynamoDB's refusal of a whole transaction, with one reason per item (in order)."""
    codes = ", ".join(reason["Code"] for reason in reasons)
    message = f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]"
    error = {"Code": "TransactionCanceledException", "Message": message}
    return ClientError({"Error": error, "CancellationReasons": reasons}, "TransactWriteItems")


def contacts_of(arguments) -> list[str]:
    """The contact keys a `TransactWriteItems` call carries, in order."""
    return [action["Put"]["Item"]["contact"]["S"] for action in arguments["TransactItems"]]


def test_more_than_100_contacts_are_leased_in_transactions_of_100(pipeline):
    calls = []

    def transact_write_items(real, **arguments):
        calls.append(len(arguments["TransactItems"]))
        return real(**arguments)

    emails = [f"u{i}@example.com" for i in range(250)]
    leasing = versions_table(faulty_dynamodb(transact_write_items=transact_write_items)).acquire(emails)
    assert sorted(calls) == [50, 100, 100]
    assert (set(leasing.leases), leasing.failed) == (set(emails), {})


def test_a_transaction_stays_under_4_mb_of_items(pipeline):
    versions = versions_table()
    emails = [f"u{i}@example.com" for i in range(25)]
    many = WrittenVersions({f"attribute_{n:05}_{'x' * 20}": 1_700_000_000_000_000 for n in range(4000)}, {})
    versions.release(versions.acquire(emails).leases.values(), dict.fromkeys(emails, many))  # 224 KB each
    sizes = []

    def transact_write_items(real, **arguments):
        sizes.append(len(json.dumps(arguments["TransactItems"]).encode()))
        return real(**arguments)

    leasing = versions_table(faulty_dynamodb(transact_write_items=transact_write_items)).acquire(emails)
    assert len(sizes) == 2  # 25 items of 224 KB: more than the 4 MB one transaction may carry
    assert max(sizes) < 4_000_000
    assert set(leasing.leases) == set(emails)


def test_contacts_a_transaction_was_refused_for_are_left_out_and_the_others_leased_next_round(pipeline):
    leasing, sizes, emails, held = lease_while_a_rival_takes_two(
        lambda **hooks: versions_table(faulty_dynamodb(**hooks)), versions_table()
    )
    assert sizes == [10, 8]  # refused (two conditions failed: nothing written), then sent again without them
    assert set(leasing.leases) == emails - held
    assert leasing.failed == {}  # held elsewhere: left out (requeued as CONTACT_BUSY), not a failure


def test_a_cancelled_transaction_writes_nothing(pipeline):
    # moto under the local harness (`harness._PutsRollBack`): all or nothing, as DynamoDB.
    dynamodb, table = boto3.client("dynamodb"), VERSIONS_TABLE
    versions_table().acquire(["held@example.com"])
    fresh, held = contact_key("fresh@example.com"), contact_key("held@example.com")
    actions = [
        {
            "Put": {
                "TableName": table,
                "Item": {"contact": {"S": key}},
                "ConditionExpression": "attribute_not_exists(contact)",
            }
        }
        for key in (fresh, held)
    ]
    with pytest.raises(ClientError) as refused:
        dynamodb.transact_write_items(TransactItems=actions)
    assert [reason["Code"] for reason in refused.value.response["CancellationReasons"]] == [
        "None",
        "ConditionalCheckFailed",
    ]
    assert [item["contact"]["S"] for item in dynamodb.scan(TableName=table)["Items"]] == [held]
    assert set(versions_table().acquire(["fresh@example.com", "held@example.com"]).leases) == {"fresh@example.com"}


def test_a_lease_whose_answer_was_lost_is_still_ours(pipeline):
    def transact_write_items(real, **arguments):
        real(**arguments)  # applied, but the answer is lost: the same transaction is sent again
        return real(**arguments)  # refused: every item is already there, with our owner (ALL_OLD)

    emails = [f"u{i}@example.com" for i in range(5)]
    versions = versions_table(faulty_dynamodb(transact_write_items=transact_write_items))
    leasing = versions.acquire(emails)
    assert (set(leasing.leases), leasing.failed) == (set(emails), {})
    assert versions_table().acquire(emails).leases == {}  # and they are held


@pytest.mark.parametrize("code", ["ThrottlingError", "ProvisionedThroughputExceeded", "ValidationError"])
def test_a_contact_dynamodb_fails_for_is_reported_and_the_others_are_leased(pipeline, code):
    failing = contact_key("u3@example.com")
    refused = []

    def transact_write_items(real, **arguments):
        if failing in contacts_of(arguments):
            refused.append(contacts_of(arguments))
            raise cancelled(
                [
                    {"Code": code, "Message": "Throughput exceeds the current capacity"}
                    if key == failing
                    else {"Code": "None"}
                    for key in contacts_of(arguments)
                ]
            )
        return real(**arguments)

    emails = [f"u{i}@example.com" for i in range(20)]
    leasing = versions_table(faulty_dynamodb(transact_write_items=transact_write_items)).acquire(emails)
    assert len(refused) == 1  # the next round went without it
    assert set(leasing.failed) == {"u3@example.com"}
    assert code in leasing.failed["u3@example.com"]
    assert set(leasing.leases) == set(emails) - {"u3@example.com"}


def test_contacts_still_refused_after_three_rounds_are_reported(pipeline):
    calls = []

    def transact_write_items(real, **arguments):
        # Every round, the first contact is in another transaction at that moment: all is cancelled again.
        calls.append(contacts_of(arguments))
        reasons = [{"Code": "None"} for _ in contacts_of(arguments)]
        reasons[0] = {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
        raise cancelled(reasons)

    emails = [f"u{i}@example.com" for i in range(10)]
    leasing = versions_table(faulty_dynamodb(transact_write_items=transact_write_items)).acquire(emails)
    assert [len(call) for call in calls] == [10, 9, 8]
    assert leasing.leases == {}
    assert len(leasing.failed) == 7  # the three in conflict are left out (busy), the rest failed
    assert all("3 transactions in a row were cancelled" in reason for reason in leasing.failed.values())
    assert versions_table().acquire(emails).leases.keys() == set(emails)  # nothing was written


@pytest.mark.parametrize(
    "error",
    [throttled("TransactWriteItems"), ReadTimeoutError(endpoint_url="https://dynamodb")],
    ids=lambda error: type(error).__name__,
)
def test_a_failed_transaction_fails_only_its_own_contacts(pipeline, error):
    failing, carried = contact_key("u3@example.com"), []

    def transact_write_items(real, **arguments):
        if failing in contacts_of(arguments):
            carried.extend(contacts_of(arguments))
            raise error
        return real(**arguments)

    emails = [f"u{i}@example.com" for i in range(250)]
    leasing = versions_table(faulty_dynamodb(transact_write_items=transact_write_items)).acquire(emails)
    by_key = {contact_key(email): email for email in emails}
    assert len(carried) == 100
    assert set(leasing.failed) == {by_key[key] for key in carried}
    assert set(leasing.leases) == set(emails) - set(leasing.failed)


def test_lease_transactions_and_record_batches_are_in_flight_at_once(pipeline):
    # Each call waits for the other two of its kind: sent one after another, they would time out.
    transactions, batches = threading.Barrier(3, timeout=10), threading.Barrier(3, timeout=10)

    def together(barrier):
        def hook(real, **arguments):
            barrier.wait()
            return real(**arguments)

        return hook

    client = faulty_dynamodb(transact_write_items=together(transactions), batch_write_item=together(batches))
    versions = versions_table(client)
    emails = [f"u{i}@example.com" for i in range(75)]  # 3 batches of 25 records
    leases = versions.acquire([*emails, *(f"v{i}@example.com" for i in range(150))]).leases  # 3 transactions
    assert len(leases) == 225
    versions.release([leases[email] for email in emails], {email: WrittenVersions({"city": 5}, {}) for email in emails})
    assert {lease.written.attributes["city"] for lease in versions_table().acquire(emails).leases.values()} == {5}


def test_a_refused_batch_of_records_is_written_one_by_one(pipeline):
    calls = []

    def batch_write_item(real, **arguments):
        calls.append(arguments)
        if len(calls) == 2:
            raise throttled("BatchWriteItem")
        return real(**arguments)

    versions = versions_table(faulty_dynamodb(batch_write_item=batch_write_item))
    emails = [f"u{i}@example.com" for i in range(60)]  # batches of 25, 25 and 10
    leases = versions.acquire(emails).leases
    versions.release(leases.values(), {email: WrittenVersions({"city": 5}, {}) for email in emails})
    assert len(calls) == 3
    again = versions_table().acquire(emails)
    assert set(again.leases) == set(emails)  # every lease was released...
    assert all(lease.written.attributes == {"city": 5} for lease in again.leases.values())  # ...and recorded


def test_records_dynamodb_refuses_even_one_by_one_are_reported_after_the_others(pipeline):
    def put_item(real, **arguments):
        if arguments["Item"]["contact"]["S"] == contact_key("u7@example.com") and "owner" not in arguments["Item"]:
            raise throttled("PutItem")
        return real(**arguments)

    def batch_write_item(real, **arguments):
        raise throttled("BatchWriteItem")

    versions = versions_table(faulty_dynamodb(put_item=put_item, batch_write_item=batch_write_item))
    emails = [f"u{i}@example.com" for i in range(30)]
    leases = versions.acquire(emails).leases
    with pytest.raises(VersionsNotRecorded) as refused:
        versions.release(leases.values(), {email: WrittenVersions({"city": 5}, {}) for email in emails})
    assert refused.value.emails == ["u7@example.com"]
    assert set(versions_table().acquire(emails).leases) == set(emails) - {"u7@example.com"}  # still leased


def test_unprocessed_keys_and_items_are_sent_again(pipeline):
    first_call = {"batch_get_item", "batch_write_item"}

    def unprocessed_once(name, field):
        def hook(real, **arguments):
            if name in first_call:  # DynamoDB throttled the whole batch: nothing done, all of it handed back
                first_call.discard(name)
                return {"Responses": {}, field: arguments["RequestItems"]}
            return real(**arguments)

        return hook

    versions = versions_table(
        faulty_dynamodb(
            batch_get_item=unprocessed_once("batch_get_item", "UnprocessedKeys"),
            batch_write_item=unprocessed_once("batch_write_item", "UnprocessedItems"),
        )
    )
    emails = [f"u{i}@example.com" for i in range(30)]
    versions.release(
        versions_table().acquire(emails).leases.values(), {e: WrittenVersions({"city": 5}, {}) for e in emails}
    )
    leasing = versions.acquire(emails)  # its read was handed back once
    assert first_call == set()
    assert {lease.written.attributes["city"] for lease in leasing.leases.values()} == {5}
    assert len(leasing.leases) == 30

"""Order across batches: the contact versions table (moto DynamoDB) makes late, replayed and concurrent
deliveries safe, through the real handlers against the emulator."""

import json
from concurrent.futures import ThreadPoolExecutor

import boto3

from hubspot_destination.audiences import audience_property_name
from hubspot_destination.ordering import ContactVersions, WrittenVersions, contact_key
from hubspot_local.pipeline import VERSIONS_TABLE
from tests.conftest import queued_messages

AUD = audience_property_name("aud-1")


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
    for body in bodies:
        pipeline.sqs.send_message(QueueUrl=pipeline.queue_url, MessageBody=body)
        pipeline.drain()


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


def versions_table(**options) -> ContactVersions:
    return ContactVersions(boto3.client("dynamodb"), VERSIONS_TABLE, lease_s=90, ttl_days=35, **options)


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
    [lease] = versions.acquire(["user1@example.com"]).values()
    pipeline.sqs.send_message(QueueUrl=pipeline.queue_url, MessageBody=body)
    pipeline.drain(max_wait_s=0)
    assert pipeline.emulator.snapshot()["contacts"] == []
    assert pipeline.dead_letters() == []
    versions.release([lease], {})
    pipeline.drain(max_wait_s=10)  # the requeued copy comes back after its short delay
    assert contact(pipeline)["city"] == "York"


def test_of_two_invocations_racing_for_a_contact_exactly_one_gets_it(pipeline):
    emails = [f"user{i}@example.com" for i in range(150)]  # more than one BatchGetItem
    first, second = versions_table(), versions_table()
    with ThreadPoolExecutor(2) as pool:
        won = list(pool.map(lambda table: table.acquire(emails), (first, second)))
    assert sorted([*won[0], *won[1]]) == sorted(emails)  # each contact leased once, by one of them
    assert second.acquire(emails) == {}  # all held
    first.release(won[0].values(), {})
    assert set(second.acquire(emails)) == set(won[0])  # released ones can be taken again


def test_records_merge_with_what_was_written_and_keep_the_newest_time(pipeline):
    versions = versions_table()
    [lease] = versions.acquire(["a@example.com"]).values()
    versions.release([lease], {"a@example.com": WrittenVersions({"city": 20, "zip": 5}, {"aud-1": 7})})
    [lease] = versions.acquire(["a@example.com"]).values()
    assert lease.written == WrittenVersions({"city": 20, "zip": 5}, {"aud-1": 7})
    versions.release([lease], {"a@example.com": WrittenVersions({"city": 10, "phone": 3}, {"aud-2": 1})})
    [lease] = versions.acquire(["a@example.com"]).values()
    assert lease.written == WrittenVersions({"city": 20, "zip": 5, "phone": 3}, {"aud-1": 7, "aud-2": 1})


def test_an_expired_lease_is_taken_over_and_its_late_record_is_not_written(pipeline):
    now = [1_000_000.0]
    slow, fast = versions_table(clock=lambda: now[0]), versions_table(clock=lambda: now[0])
    [stale] = slow.acquire(["a@example.com"]).values()
    assert fast.acquire(["a@example.com"]) == {}  # held
    now[0] += 91  # the holder stalled past its lease
    [current] = fast.acquire(["a@example.com"]).values()
    fast.release([current], {"a@example.com": WrittenVersions({"city": 50}, {})})
    # The stalled holder comes back: its lease ended, so it writes back only if nobody took over.
    slow.release([stale], {"a@example.com": WrittenVersions({"city": 40, "zip": 40}, {})})
    [lease] = fast.acquire(["a@example.com"]).values()
    assert lease.written == WrittenVersions({"city": 50}, {})


def test_a_lease_near_its_end_is_still_recorded_when_nobody_took_over(pipeline):
    now = [1_000_000.0]
    versions = versions_table(clock=lambda: now[0])
    [lease] = versions.acquire(["a@example.com"]).values()
    now[0] += 85  # 5 s left: written back conditionally
    versions.release([lease], {"a@example.com": WrittenVersions({"city": 50}, {})})
    [lease] = versions.acquire(["a@example.com"]).values()
    assert lease.written == WrittenVersions({"city": 50}, {})

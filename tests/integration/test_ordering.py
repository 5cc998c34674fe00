"""Order across batches: the contact versions table (moto DynamoDB) makes late, replayed and concurrent
deliveries safe, through the real handlers against the emulator."""

import json

import boto3

from hubspot_destination.audiences import audience_property_name
from hubspot_destination.ordering import ContactVersions, contact_key
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


def test_versions_are_keyed_by_email_hash_and_record_what_was_written(pipeline):
    [body] = enqueue(pipeline, profile("realized", "2025-03-04T10:00:00Z", city="York"))
    deliver(pipeline, body)
    table = boto3.resource("dynamodb").Table(VERSIONS_TABLE)
    [item] = table.scan()["Items"]
    assert item["contact"] == contact_key("user1@example.com")
    assert "user1@example.com" not in json.dumps(item, default=str)
    assert set(item["attrs"]) == {"city"}
    assert int(item["auds"]["aud-1"]) == 1741082400000000  # 2025-03-04T10:00:00Z in µs
    assert "lease_owner" not in item  # released after the write


def test_a_contact_leased_by_another_invocation_is_requeued_not_written(pipeline):
    [body] = enqueue(pipeline, profile("realized", "2025-03-04T10:00:00Z", city="York"))
    versions = ContactVersions(boto3.resource("dynamodb").Table(VERSIONS_TABLE), lease_s=90, ttl_days=35)
    assert versions.acquire("user1@example.com", "another-invocation") is not None
    pipeline.sqs.send_message(QueueUrl=pipeline.queue_url, MessageBody=body)
    pipeline.drain(max_wait_s=0)
    assert pipeline.emulator.snapshot()["contacts"] == []
    assert pipeline.dead_letters() == []
    versions.release("user1@example.com", "another-invocation")
    pipeline.drain(max_wait_s=10)  # the requeued copy comes back after its short delay
    assert contact(pipeline)["city"] == "York"

"""DeliverFunction through its real handler: moto SQS and Secrets Manager, the HubSpot emulator over HTTP."""

import io
import json

import pytest

from hubspot_destination.domain.audiences import audience_property_name
from hubspot_destination.domain.messages import encode_message
from hubspot_local.lambda_runtime import LambdaContext
from hubspot_local.pipeline import LocalPipeline
from tests.conftest import EVENTS, bodies, emf_metrics, queued_messages
from tests.helpers import assert_all_accounted_for

HIGH_VALUE = "0b7a6c1e-3f2d-4e59-9a61-5c4d3b2a1f00"
CART = "9e8d7c6b-5a49-4382-b1f0-e2d3c4b5a697"


def contacts_by_email(pipeline) -> dict[str, dict]:
    return {c["properties"]["email"]: c["properties"] for c in pipeline.emulator.snapshot()["contacts"]}


def upsert_requests(pipeline) -> list[dict]:
    return [r for r in pipeline.emulator.snapshot()["requests"] if r["path"].endswith("/batch/upsert")]


def profile(email, attributes=None, audiences=None):
    return {
        "identityMap": {"email": [{"id": email}]},
        "attributes": attributes or {},
        "segmentMembership": {"ups": audiences or {}},
    }


def send(pipeline, *profiles):
    answer = pipeline.ingest(json.dumps({"profiles": list(profiles)}).encode())
    assert answer["status"] == 202, answer
    stats = pipeline.drain()
    assert_all_accounted_for(pipeline)
    return stats


def test_committed_sqs_event_is_delivered_with_an_empty_partial_batch_response(pipeline):
    event = json.loads((EVENTS / "sqs-deliver.json").read_text())
    response = pipeline.deliver_module.lambda_handler(event, LambdaContext("DeliverFunction", 60))
    assert_all_accounted_for(pipeline, also_sent=[record["body"] for record in event["Records"]])
    assert response == {"batchItemFailures": []}
    contacts = contacts_by_email(pipeline)
    assert len(contacts) == 5
    ana = contacts["ana.garcia@example.com"]
    assert ana["firstname"] == "Ana"
    assert ana[audience_property_name(HIGH_VALUE)] == "realized"
    assert ana[audience_property_name(CART)] == "exited"


def test_sample_activation_end_to_end_creates_contacts_and_audience_properties(pipeline, activation_body):
    assert pipeline.ingest(activation_body)["body"]["accepted"] == 5
    delivery = pipeline.drain()
    assert_all_accounted_for(pipeline)
    assert delivery["invocations"] == 1
    contacts = contacts_by_email(pipeline)
    assert set(contacts) == {
        "ana.garcia@example.com",
        "ben.okafor@example.org",
        "chen.li@example.net",
        "dara.obrien@example.ie",
        "farah.haddad@example.com",
    }
    chen = contacts["chen.li@example.net"]
    assert "city" not in chen or chen["city"] in (None, "")  # `{}` leaves HubSpot untouched
    assert chen["country"] == "Hong Kong"
    assert contacts["dara.obrien@example.ie"][audience_property_name(HIGH_VALUE)] == "existing"
    properties = {p["name"]: p for p in pipeline.emulator.snapshot()["properties"]}
    high_value = properties[audience_property_name(HIGH_VALUE)]
    assert high_value["label"] == "High Value Customers"
    assert high_value["groupName"] == "aep_audiences"
    assert [o["value"] for o in high_value["options"]] == ["realized", "existing", "exited"]
    assert queued_messages(pipeline) == []
    assert pipeline.dead_letters() == []


def test_property_definitions_are_read_once_across_invocations(pipeline):
    send(pipeline, profile("a@example.com", {"firstname": "A"}))
    send(pipeline, profile("b@example.com", {"firstname": "B"}))
    reads = [
        r
        for r in pipeline.emulator.snapshot()["requests"]
        if r["method"] == "GET" and r["path"] == "/crm/v3/properties/contacts"
    ]
    assert len(reads) == 1


def test_same_contact_twice_in_a_batch_is_one_merged_input(pipeline):  # B1
    send(
        pipeline,
        profile(
            "user1@example.com",
            {"firstname": {"value": "Ann"}},
            {"aud-1": {"status": "realized", "lastQualificationTime": "2025-03-04T10:00:00Z", "name": "High Value"}},
        ),
        profile(
            "USER1@example.com",
            {"city": {"value": "Leeds"}},
            {"aud-1": {"status": "exited", "lastQualificationTime": "2025-03-04T10:00:05Z", "name": "High Value"}},
        ),
    )
    [upsert] = upsert_requests(pipeline)
    assert upsert["status"] == 200
    assert upsert["inputs"] == 1
    user = contacts_by_email(pipeline)["user1@example.com"]
    assert (user["firstname"], user["city"], user[audience_property_name("aud-1")]) == ("Ann", "Leeds", "exited")


def test_unknown_property_is_dropped_and_the_contact_still_written(pipeline):  # B5
    send(pipeline, profile("user5@example.com", {"favoriteColor": {"value": "blue"}, "firstname": "Five"}))
    contact = contacts_by_email(pipeline)["user5@example.com"]
    assert contact["firstname"] == "Five"
    assert "favoriteColor" not in contact
    assert pipeline.dead_letters() == []


def test_invalid_value_for_the_property_type_is_dropped_field_by_field(pipeline):
    send(pipeline, profile("u@example.com", {"lifecyclestage": "not-a-stage", "lastname": "Kept"}))
    contact = contacts_by_email(pipeline)["u@example.com"]
    assert contact["lastname"] == "Kept"
    assert not contact.get("lifecyclestage")


def test_enumeration_label_is_written_as_its_internal_value(pipeline):
    send(pipeline, profile("u@example.com", {"lifecyclestage": "Customer"}))
    assert contacts_by_email(pipeline)["u@example.com"]["lifecyclestage"] == "customer"


def enqueue_raw(pipeline, *message_bodies):
    for body in message_bodies:
        pipeline.sqs.send_message(QueueUrl=pipeline.queue_url, MessageBody=body)


def test_malformed_message_goes_to_the_dead_letter_queue_with_a_reason(pipeline):
    enqueue_raw(pipeline, "not json at all")
    pipeline.drain()
    assert_all_accounted_for(pipeline, also_sent=["not json at all"])
    [letter] = pipeline.dead_letters()
    assert letter["reason"] == "MALFORMED_MESSAGE"
    assert queued_messages(pipeline) == []


def test_an_address_hubspot_refuses_is_isolated_and_dead_lettered(pipeline, activation_body):  # B4
    from datetime import UTC, datetime

    from hubspot_destination.domain.profiles import ProfileUpdate

    now = datetime.now(UTC)
    good = [ProfileUpdate(email=f"user{i}@example.com", observed_at=now, request_id="r") for i in (1, 3)]
    # Bypasses ingest's own check, as a message from an older version would.
    bad = ProfileUpdate(email="user2@example.con", observed_at=now, request_id="r")
    raw = [encode_message([good[0], bad]), encode_message([good[1]])]
    enqueue_raw(pipeline, *raw)
    pipeline.drain()
    assert_all_accounted_for(pipeline, also_sent=raw)
    assert set(contacts_by_email(pipeline)) == {"user1@example.com", "user3@example.com"}
    [letter] = pipeline.dead_letters()
    assert (letter["email"], letter["reason"]) == ("user2@example.con", "INVALID_EMAIL")


def test_existing_audience_property_missing_an_option_gets_it(pipeline):
    name = audience_property_name("aud-9")
    pipeline.hubspot_client.create_property(
        {
            "name": name,
            "label": "Old label",
            "type": "enumeration",
            "fieldType": "select",
            "groupName": "contactinformation",
            "options": [{"label": "Realized", "value": "realized", "displayOrder": 0, "hidden": False}],
        }
    )
    audience = {"aud-9": {"status": "exited", "lastQualificationTime": "2025-03-04T10:00:00Z", "name": "Renamed"}}
    send(pipeline, profile("u@example.com", audiences=audience))
    prop = {p["name"]: p for p in pipeline.emulator.snapshot()["properties"]}[name]
    assert sorted(o["value"] for o in prop["options"]) == ["existing", "exited", "realized"]
    assert prop["label"] == "Renamed"
    assert contacts_by_email(pipeline)["u@example.com"][name] == "exited"


def test_incompatible_audience_property_skips_that_audience_only(pipeline):
    name = audience_property_name("aud-n")
    pipeline.hubspot_client.create_property(
        {"name": name, "label": "N", "type": "number", "fieldType": "number", "groupName": "contactinformation"}
    )
    audiences = {
        "aud-n": {"status": "realized", "lastQualificationTime": "2025-03-04T10:00:00Z"},
        "aud-ok": {"status": "realized", "lastQualificationTime": "2025-03-04T10:00:00Z"},
    }
    send(pipeline, profile("u@example.com", {"firstname": "Still"}, audiences))
    contact = contacts_by_email(pipeline)["u@example.com"]
    assert contact["firstname"] == "Still"
    assert contact[audience_property_name("aud-ok")] == "realized"
    assert not contact.get(name)


@pytest.mark.parametrize("count", [250])
def test_batches_never_exceed_100_inputs(pipeline, count):
    send(pipeline, *(profile(f"user{i}@example.com", {"firstname": f"U{i}"}) for i in range(count)))
    assert len(contacts_by_email(pipeline)) == count
    assert all(r["inputs"] <= 100 for r in upsert_requests(pipeline))
    assert all(r["status"] == 200 for r in upsert_requests(pipeline))


def test_queue_messages_are_what_ingest_enqueued(pipeline):
    pipeline.ingest(json.dumps({"profiles": [profile("A@Example.com", {"zip": "02134"})]}).encode())
    assert_all_accounted_for(pipeline, queued=1)  # not delivered: this test reads what was enqueued
    [message] = bodies(queued_messages(pipeline))
    assert message["email"] == "a@example.com"
    assert message["attributes"] == {"zip": "02134"}


def test_a_request_without_the_audience_name_keeps_the_label(pipeline):
    named = {"aud-7": {"status": "realized", "lastQualificationTime": "2025-03-04T10:00:00Z", "name": "VIPs"}}
    unnamed = {"aud-7": {"status": "exited", "lastQualificationTime": "2025-03-04T11:00:00Z"}}
    send(pipeline, profile("u@example.com", audiences=named))
    send(pipeline, profile("u@example.com", audiences=unnamed))
    prop = {p["name"]: p for p in pipeline.emulator.snapshot()["properties"]}[audience_property_name("aud-7")]
    assert prop["label"] == "VIPs"
    assert contacts_by_email(pipeline)["u@example.com"][audience_property_name("aud-7")] == "exited"


def test_metrics_count_profiles_and_time_each_hubspot_request(pipeline_env, activation_body):
    output = io.StringIO()
    with LocalPipeline(handler_output=output) as running:
        assert running.ingest(activation_body)["status"] == 202
        running.drain()
        assert_all_accounted_for(running)
        requests = len(running.emulator.snapshot()["requests"])
    metrics = emf_metrics(output.getvalue())
    assert sum(metrics["ProfilesAccepted"]) == 5
    assert sum(metrics["ProfilesRejected"]) == 1  # the `.con` address: not a top-level domain
    assert sum(metrics["ProfilesDelivered"]) == 5
    # One response time per HubSpot request (property list, group, audience properties, upsert, ...), in ms.
    assert len(metrics["HubSpotResponseTime"]) == requests
    assert all(0 < ms < 5_000 for ms in metrics["HubSpotResponseTime"])

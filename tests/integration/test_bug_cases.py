"""Each case of shared/reference/bug-cases.md, through the real pipeline (ingest handler → moto SQS → deliver
handler → the emulator over HTTP), asserting the right value: the properties sent, the contact state and the
dead letters."""

import json
import threading

import pytest

from hubspot_destination.domain.audiences import audience_property_name
from hubspot_local.emulator import load_portal
from hubspot_local.event_source_mapping import EventSourceMapping
from hubspot_local.lambda_runtime import load_handler_module
from hubspot_local.pipeline import LocalPipeline
from tests.conftest import EVENTS
from tests.helpers import assert_all_accounted_for

AUD_1 = audience_property_name("aud-1")
AUD_2 = audience_property_name("aud-2")


@pytest.fixture
def portal_pipeline(pipeline_env):
    with LocalPipeline(portal=load_portal(EVENTS / "portals" / "bug-cases.json")) as running:
        yield running


def p(email, attrs=None, aud=None):
    memberships = {
        audience_id: {"status": status, "lastQualificationTime": when, "name": "High Value"}
        for audience_id, (status, when) in (aud or {}).items()
    }
    return {
        "identityMap": {"email": [{"id": email}]},
        "attributes": {k: {"value": v} for k, v in (attrs or {}).items()},
        "segmentMembership": {"ups": memberships},
    }


def run(pipeline, *profiles, raw_attributes=None):
    body = {"profiles": list(profiles)}
    if raw_attributes is not None:
        body["profiles"][0]["attributes"] = raw_attributes
    answer = pipeline.ingest(json.dumps(body).encode())
    assert answer["status"] == 202, answer
    pipeline.drain()
    assert_all_accounted_for(pipeline)
    return answer["body"]


def contact(pipeline, email) -> dict:
    [found] = [c["properties"] for c in pipeline.emulator.snapshot()["contacts"] if c["properties"]["email"] == email]
    return found


def upserts(pipeline) -> list[dict]:
    return [r for r in pipeline.emulator.snapshot()["requests"] if r["path"].endswith("/batch/upsert")]


def test_b1_duplicate_ids_become_one_merged_input(portal_pipeline):
    run(
        portal_pipeline,
        p("user1@example.com", {"firstname": "Ann"}, {"aud-1": ("realized", "2025-03-04T10:00:00Z")}),
        p("user1@example.com", {"city": "Leeds"}, {"aud-1": ("exited", "2025-03-04T10:00:05Z")}),
    )
    ann = contact(portal_pipeline, "user1@example.com")
    assert (ann["firstname"], ann["city"], ann[AUD_1]) == ("Ann", "Leeds", "exited")
    assert [r["inputs"] for r in upserts(portal_pipeline)] == [1]
    assert portal_pipeline.dead_letters() == []


def test_b3_concurrent_invocations_for_a_new_email_leave_one_contact(portal_pipeline):
    """Two messages for the same new contact, drained by two concurrent invocations (two execution
    environments): upsert by email is idempotent, so exactly one contact holds both changes."""
    portal_pipeline.ingest(json.dumps({"profiles": [p("user4@example.com", {"firstname": "Bo"})]}).encode())
    portal_pipeline.ingest(
        json.dumps({"profiles": [p("user4@example.com", aud={"aud-2": ("realized", "2025-03-04T10:00:00Z")})]}).encode()
    )
    handlers = [load_handler_module("deliver").lambda_handler for _ in range(2)]
    mappings = [EventSourceMapping(portal_pipeline.sqs, portal_pipeline.queue_url, h, batch_size=1) for h in handlers]
    threads = [threading.Thread(target=m.drain) for m in mappings]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert_all_accounted_for(portal_pipeline)
    matches = [
        c for c in portal_pipeline.emulator.snapshot()["contacts"] if c["properties"]["email"] == "user4@example.com"
    ]
    assert len(matches) == 1
    assert matches[0]["properties"]["firstname"] == "Bo"
    assert matches[0]["properties"][AUD_2] == "realized"
    assert all(r["status"] == 200 for r in upserts(portal_pipeline))


def test_b4_invalid_email_is_rejected_up_front_and_the_rest_written(portal_pipeline):
    body = run(
        portal_pipeline,
        *(
            p(f"user{i}@example.{tld}", aud={"aud-1": ("realized", "2025-03-04T10:00:00Z")})
            for i, tld in ((1, "com"), (2, "con"), (3, "org"))
        ),
    )
    assert [(r["index"], r["reason"]) for r in body["rejected"]] == [(1, "INVALID_EMAIL")]
    emails = {c["properties"]["email"] for c in portal_pipeline.emulator.snapshot()["contacts"]}
    assert {"user1@example.com", "user3@example.org"} <= emails
    assert "user2@example.con" not in emails
    assert len(upserts(portal_pipeline)) == 1  # written in one request, no retry


def test_b5_unknown_properties_are_dropped_never_renamed(portal_pipeline):
    run(
        portal_pipeline,
        p(
            "user5@example.com",
            {"favoriteColor": "blue", "loyalty_tier": "gold"},
            {"aud-1": ("realized", "2025-03-04T10:00:00Z")},
        ),
    )
    user = contact(portal_pipeline, "user5@example.com")
    assert user[AUD_1] == "realized"
    assert not user.get("favorite_color")  # never silently renamed from favoriteColor
    assert "loyalty_tier" not in user
    assert portal_pipeline.dead_letters() == []
    assert not any(prop["name"] == "loyalty_tier" for prop in portal_pipeline.emulator.snapshot()["properties"])


def test_b8_booleans_follow_the_property_type(portal_pipeline):
    run(
        portal_pipeline,
        p("user6@example.com", {"newsletter_opt_in": 1, "is_customer": "Yes", "vip": True, "nickname": True}),
    )
    user = contact(portal_pipeline, "user6@example.com")
    assert (user["newsletter_opt_in"], user["is_customer"], user["vip"], user["nickname"]) == (
        "true",
        "true",
        "true",
        "true",
    )


def test_b8_other_boolean_values_are_field_level_rejections(portal_pipeline):
    run(portal_pipeline, p("user6@example.com", {"vip": "sometimes", "firstname": "Six"}))
    user = contact(portal_pipeline, "user6@example.com")
    assert user["firstname"] == "Six"
    assert not user.get("vip")


def test_b9_dates_at_utc_midnight_datetimes_in_epoch_ms_bad_dates_never_sent(portal_pipeline):
    run(
        portal_pipeline,
        p(
            "user7@example.com",
            {
                "trial_end_date": "2024-05-01T20:36:01Z",
                "renewal_date": "2024-05-01",
                "last_seen": "2024-05-01T20:36:01.123+0000",
                "bad_date": "31/02/2024",
            },
        ),
    )
    user = contact(portal_pipeline, "user7@example.com")
    assert user["trial_end_date"] in ("1714521600000", "2024-05-01")
    assert user["renewal_date"] in ("1714521600000", "2024-05-01")
    assert user["last_seen"] in ("1714595761123", "2024-05-01T20:36:01.123Z")
    assert not user.get("bad_date")
    assert all(r["status"] == 200 for r in upserts(portal_pipeline))


def test_b10_numbers_are_plain_decimals_and_bad_ones_rejected(portal_pipeline):
    run(
        portal_pipeline,
        p("user8@example.com", {"lifetime_value": 1.4210854715202004e-14, "order_count": "1,204", "score": "NaN"}),
    )
    user = contact(portal_pipeline, "user8@example.com")
    assert user["lifetime_value"] == "0.000000000000014210854715202004"
    assert not user.get("order_count")
    assert not user.get("score")


def test_b10_configured_precision_and_separator(pipeline_env, monkeypatch):
    monkeypatch.setenv("NUMBER_DECIMAL_PLACES", "0")
    monkeypatch.setenv("NUMBER_THOUSANDS_SEPARATOR", ",")
    with LocalPipeline(portal=load_portal(EVENTS / "portals" / "bug-cases.json")) as running:
        run(running, p("user8@example.com", {"lifetime_value": 1.4210854715202004e-14, "order_count": "1,204"}))
        user = contact(running, "user8@example.com")
    assert (user["lifetime_value"], user["order_count"]) == ("0", "1204")


def test_b11_strings_are_never_typed_by_their_content(portal_pipeline):
    run(
        portal_pipeline,
        p("user9@example.com", {"phone": "+14155550100", "zip": "02134", "customer_code": "00123", "middle_name": ""}),
    )
    user = contact(portal_pipeline, "user9@example.com")
    assert (user["phone"], user["zip"], user["customer_code"]) == ("+14155550100", "02134", "00123")
    assert not user.get("middle_name")


def test_b12_clearing_policy(portal_pipeline):
    raw = {"firstname": {"value": ""}, "lastname": {"value": None}, "city": {}}
    run(portal_pipeline, p("user10@example.com", aud={"aud-1": ("exited", "2025-03-04T10:00:00Z")}), raw_attributes=raw)
    user = contact(portal_pipeline, "user10@example.com")
    assert not user.get("firstname")  # "" cleared it
    assert user["lastname"] == "Keep"  # null: untouched
    assert user["city"] == "Kept City"  # {}: untouched
    assert user["country"] == "Kept Country"  # not mapped: untouched
    assert user[AUD_1] == "exited"  # written, not cleared


def test_b12_mirror_mode_clears_on_null(pipeline_env, monkeypatch):
    monkeypatch.setenv("NULL_CLEARS", "true")
    with LocalPipeline(portal=load_portal(EVENTS / "portals" / "bug-cases.json")) as running:
        run(running, p("user10@example.com"), raw_attributes={"lastname": {"value": None}, "city": {}})
        user = contact(running, "user10@example.com")
    assert not user.get("lastname")
    assert user["city"] == "Kept City"


def test_b16_existing_contacts_are_written_by_upsert_never_batch_update(portal_pipeline):
    run(portal_pipeline, p("user14@example.com", {"lastname": "Ng"}))
    user = contact(portal_pipeline, "user14@example.com")
    assert (user["firstname"], user["lastname"]) == ("Existing", "Ng")
    paths = {r["path"] for r in portal_pipeline.emulator.snapshot()["requests"]}
    assert not any(path.endswith("/batch/update") for path in paths)
    assert (
        len(
            [
                c
                for c in portal_pipeline.emulator.snapshot()["contacts"]
                if c["properties"]["email"] == "user14@example.com"
            ]
        )
        == 1
    )


def test_strict_mode_dead_letters_the_profile_instead_of_dropping_a_field(pipeline_env, monkeypatch):
    monkeypatch.setenv("STRICT_PROPERTIES", "true")
    with LocalPipeline(portal=load_portal(EVENTS / "portals" / "bug-cases.json")) as running:
        run(running, p("user5@example.com", {"favoriteColor": "blue"}), p("ok@example.com", {"firstname": "Ok"}))
        emails = {c["properties"]["email"] for c in running.emulator.snapshot()["contacts"]}
        letters = running.dead_letters()
    assert "ok@example.com" in emails
    assert "user5@example.com" not in emails
    assert [(x["email"], x["reason"]) for x in letters] == [("user5@example.com", "INVALID_VALUE")]
    assert "favoriteColor" in letters[0]["detail"]

"""Audience properties belong to the memberships: no attribute writes them, and no sender can use up the
portal's custom properties with them (through the real handlers against the emulator)."""

import json

import pytest

from hubspot_destination.domain.audiences import audience_property_name
from hubspot_local.pipeline import AUDIENCE_PROPERTY_GROUP, LocalPipeline
from tests.helpers import assert_all_accounted_for

AUD = audience_property_name("aud-1")
EMAIL = "user1@example.com"


def profile(attributes=None, memberships=None, email=EMAIL):
    return {
        "identityMap": {"email": [{"id": email}]},
        "attributes": {name: {"value": value} for name, value in (attributes or {}).items()},
        "segmentMembership": {
            "ups": {
                aud: {"status": status, "lastQualificationTime": when}
                for aud, (status, when) in (memberships or {}).items()
            }
        },
    }


def send(pipeline, *profiles):
    assert pipeline.ingest(json.dumps({"profiles": list(profiles)}).encode())["status"] == 202
    pipeline.drain()


def contact(pipeline, email=EMAIL) -> dict:
    [found] = [c["properties"] for c in pipeline.emulator.snapshot()["contacts"] if c["properties"]["email"] == email]
    return found


def group_properties(pipeline) -> list[dict]:
    return [p for p in pipeline.emulator.snapshot()["properties"] if p.get("groupName") == AUDIENCE_PROPERTY_GROUP]


@pytest.mark.parametrize(
    "target",
    [
        AUD,  # the audience's own property
        audience_property_name("aud-never-sent"),  # shaped as an audience property, not created yet
        "operator_made_in_group",  # any property of the audience group
    ],
)
def test_an_attribute_never_writes_an_audience_property(pipeline, target):
    send(pipeline, profile(memberships={"aud-1": ("exited", "2025-03-04T11:00:00Z")}))
    if target == "operator_made_in_group":
        pipeline.hubspot_client.create_property(
            {"name": target, "label": "x", "type": "string", "fieldType": "text", "groupName": AUDIENCE_PROPERTY_GROUP}
        )
        pipeline.deliver_module._delivery()._catalog.refresh()
    # Later profiles try to turn the status back through an attribute, alone and beside the membership.
    send(pipeline, profile(attributes={target: "realized", "city": "Leeds"}))
    send(pipeline, profile(attributes={target: "realized"}, memberships={"aud-1": ("exited", "2025-03-04T12:00:00Z")}))
    assert_all_accounted_for(pipeline)
    user = contact(pipeline)
    assert user[AUD] == "exited"
    assert user.get(target) in (None, "", "exited")
    assert user["city"] == "Leeds"  # the rest of the profile is written
    assert pipeline.dead_letters() == []


def test_in_strict_mode_an_attribute_aimed_at_an_audience_property_dead_letters_the_profile(pipeline_env, monkeypatch):
    monkeypatch.setenv("STRICT_PROPERTIES", "true")
    with LocalPipeline() as pipeline:
        send(pipeline, profile(attributes={AUD: "realized"}))
        assert_all_accounted_for(pipeline)
        [letter] = pipeline.dead_letters()
    assert letter["reason"] == "INVALID_VALUE"
    assert "AUDIENCE_PROPERTY" in letter["detail"]


def test_properties_are_created_a_few_per_invocation_and_never_beyond_the_group_limit(pipeline_env, monkeypatch):
    monkeypatch.setenv("MAX_AUDIENCE_PROPERTIES", "3")
    monkeypatch.setenv("MAX_AUDIENCE_PROPERTIES_CREATED", "2")
    many = {f"aud-{n}": ("realized", "2025-03-04T10:00:00Z") for n in range(5)}
    with LocalPipeline() as pipeline:
        send(pipeline, profile(memberships=many), profile(memberships={"aud-0": many["aud-0"]}, email="other@x.com"))
        assert_all_accounted_for(pipeline)
        created = [
            r
            for r in pipeline.emulator.snapshot()["requests"]
            if r["method"] == "POST" and r["path"] == "/crm/v3/properties/contacts"
        ]
        assert len(group_properties(pipeline)) == 3
        assert len(created) == 3  # two in the first invocation, one in the next, none beyond the limit
        user = contact(pipeline)
        written = [aud for aud in many if user.get(audience_property_name(aud)) == "realized"]
        assert len(written) == 3
        [letter] = pipeline.dead_letters()  # the contact, written without the two audiences over the limit
        assert (letter["email"], letter["reason"]) == (EMAIL, "PROPERTY_CONFLICT")
        assert "the most allowed" in letter["detail"]
        assert contact(pipeline, "other@x.com")[audience_property_name("aud-0")] == "realized"

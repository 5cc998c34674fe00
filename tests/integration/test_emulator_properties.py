"""Properties API of the HubSpot emulator (hubspot-api.md §2): defaults, create, update, groups, limits."""

from __future__ import annotations

import pytest

PROPERTIES = "/crm/v3/properties/contacts"
GROUPS = "/crm/v3/properties/contacts/groups"


def definition(name: str = "aud_123", **overrides) -> dict:
    return {
        "name": name,
        "label": "Audience 123",
        "type": "enumeration",
        "fieldType": "select",
        "groupName": "contactinformation",
        "options": [{"label": "Realized", "value": "realized"}, {"label": "Exited", "value": "exited"}],
    } | overrides


def test_default_contact_properties_have_hubspots_types(hubspot):
    reply = hubspot("GET", PROPERTIES)
    assert reply.status == 200
    props = {p["name"]: p for p in reply.body["results"]}
    expected = {
        "email": ("string", "text"),
        "firstname": ("string", "text"),
        "lastname": ("string", "text"),
        "address": ("string", "text"),
        "city": ("string", "text"),
        "country": ("string", "text"),
        "phone": ("string", "phonenumber"),
        "company": ("string", "text"),
        "date_of_birth": ("string", "text"),
        "annualrevenue": ("string", "text"),
        "lifecyclestage": ("enumeration", "radio"),
        "hs_lead_status": ("enumeration", "radio"),
        "numemployees": ("enumeration", "select"),
        "hs_object_id": ("number", "number"),
        "createdate": ("datetime", "date"),
        "lastmodifieddate": ("datetime", "date"),
    }
    assert {n: (props[n]["type"], props[n]["fieldType"]) for n in expected} == expected
    assert all(p["hubspotDefined"] for p in props.values())
    assert props["email"]["groupName"] == "contactinformation"
    assert [o["value"] for o in props["lifecyclestage"]["options"]] == [
        "subscriber",
        "lead",
        "marketingqualifiedlead",
        "salesqualifiedlead",
        "opportunity",
        "customer",
        "evangelist",
        "other",
    ]
    assert props["hs_object_id"]["calculated"] is True
    assert props["createdate"]["modificationMetadata"]["readOnlyValue"] is True


def test_get_one_property_and_404_for_a_missing_one(hubspot):
    assert hubspot("GET", f"{PROPERTIES}/email").body["type"] == "string"
    missing = hubspot("GET", f"{PROPERTIES}/no_such_property")
    assert missing.status == 404
    assert missing.body["category"] == "OBJECT_NOT_FOUND"


def test_create_property_answers_201_with_the_property_object(hubspot, emulator):
    reply = hubspot("POST", PROPERTIES, definition())
    assert reply.status == 201
    prop = reply.body
    assert prop["name"] == "aud_123"
    assert prop["hubspotDefined"] is False
    assert prop["options"][0] == {
        "label": "Realized",
        "value": "realized",
        "displayOrder": 0,
        "hidden": False,
        "description": "",
    }
    assert {"createdAt", "updatedAt", "modificationMetadata", "description"} <= prop.keys()
    assert [p["name"] for p in emulator.snapshot()["properties"]] == ["aud_123"]
    assert hubspot("GET", f"{PROPERTIES}/aud_123").body == prop


@pytest.mark.parametrize("field", ["name", "label", "type", "fieldType", "groupName"])
def test_create_property_requires_its_fields(hubspot, field):
    body = definition()
    del body[field]
    assert hubspot("POST", PROPERTIES, body).status == 400


@pytest.mark.parametrize("name", ["Aud_1", "1aud", "aud-1", "_aud", "a" * 101])
def test_create_property_rejects_invalid_internal_names(hubspot, name):
    reply = hubspot("POST", PROPERTIES, definition(name))
    assert reply.status == 400
    assert reply.body["category"] == "VALIDATION_ERROR"


def test_create_property_accepts_a_100_character_name(hubspot):
    assert hubspot("POST", PROPERTIES, definition("a" * 100)).status == 201


def test_create_existing_property_is_a_409(hubspot):
    assert hubspot("POST", PROPERTIES, definition()).status == 201
    again = hubspot("POST", PROPERTIES, definition())
    assert again.status == 409
    assert again.body["category"] == "OBJECT_ALREADY_EXISTS"
    assert hubspot("POST", PROPERTIES, definition("email", type="string", fieldType="text")).status == 409


@pytest.mark.parametrize(
    ("type_", "field_type", "status"),
    [
        ("string", "text", 201),
        ("string", "textarea", 201),
        ("number", "number", 201),
        ("bool", "booleancheckbox", 201),
        ("date", "date", 201),
        ("datetime", "date", 201),
        ("string", "select", 400),
        ("number", "text", 400),
        ("bool", "radio", 400),
        ("date", "text", 400),
        ("object_coordinates", "text", 400),
        ("string", "dropdown", 400),
    ],
)
def test_create_property_accepts_only_valid_type_field_type_pairs(hubspot, type_, field_type, status):
    body = definition(type=type_, fieldType=field_type, options=[])
    assert hubspot("POST", PROPERTIES, body).status == status


def test_create_enumeration_needs_options(hubspot):
    assert hubspot("POST", PROPERTIES, definition(options=[])).status == 400
    repeated = [{"label": "A", "value": "a"}, {"label": "B", "value": "a"}]
    assert hubspot("POST", PROPERTIES, definition(options=repeated)).status == 400


def test_create_property_needs_an_existing_group(hubspot):
    assert hubspot("POST", PROPERTIES, definition(groupName="no_such_group")).status == 400


def test_at_most_ten_unique_value_properties(hubspot):
    for i in range(10):
        body = definition(f"key_{i}", type="string", fieldType="text", options=[], hasUniqueValue=True)
        assert hubspot("POST", PROPERTIES, body).status == 201
    extra = definition("key_10", type="string", fieldType="text", options=[], hasUniqueValue=True)
    assert hubspot("POST", PROPERTIES, extra).status == 400


def test_custom_property_limit_per_portal(start_emulator):
    props = [{"name": f"p_{i}", "type": "string", "fieldType": "text"} for i in range(1000)]
    _, hubspot = start_emulator(portal={"properties": props})
    assert hubspot("POST", PROPERTIES, definition()).status == 400
    limits = hubspot("GET", "/crm/v3/limits/custom-properties").body
    assert limits["byObjectType"][0]["usage"] == limits["byObjectType"][0]["limit"] == 1000


def test_patch_options_replaces_the_whole_list(hubspot):
    hubspot("POST", PROPERTIES, definition())
    new_options = [{"label": "Existing", "value": "existing"}]
    reply = hubspot("PATCH", f"{PROPERTIES}/aud_123", {"options": new_options, "label": "Renamed"})
    assert reply.status == 200
    assert [o["value"] for o in reply.body["options"]] == ["existing"]
    assert reply.body["label"] == "Renamed"
    assert hubspot("GET", f"{PROPERTIES}/aud_123").body["options"] == reply.body["options"]


def test_patch_validates_and_404s(hubspot):
    hubspot("POST", PROPERTIES, definition())
    assert hubspot("PATCH", f"{PROPERTIES}/aud_123", {"fieldType": "text"}).status == 400
    assert hubspot("PATCH", f"{PROPERTIES}/nope", {"label": "x"}).status == 404
    assert hubspot("PATCH", f"{PROPERTIES}/email", {"label": "x"}).status == 400


def test_batch_create_properties_201_and_207(hubspot):
    ok = hubspot("POST", f"{PROPERTIES}/batch/create", {"inputs": [definition("a_1"), definition("a_2")]})
    assert ok.status == 201
    assert {p["name"] for p in ok.body["results"]} == {"a_1", "a_2"}
    mixed = hubspot("POST", f"{PROPERTIES}/batch/create", {"inputs": [definition("a_1"), definition("a_3")]})
    assert mixed.status == 207
    assert mixed.body["numErrors"] == 1
    assert mixed.body["errors"][0]["category"] == "OBJECT_ALREADY_EXISTS"
    assert [p["name"] for p in mixed.body["results"]] == ["a_3"]


def test_groups_list_create_and_409(hubspot, emulator):
    names = {g["name"] for g in hubspot("GET", GROUPS).body["results"]}
    assert "contactinformation" in names
    created = hubspot("POST", GROUPS, {"name": "audiences", "label": "Audiences"})
    assert created.status == 201
    assert created.body == {"name": "audiences", "label": "Audiences", "displayOrder": -1, "archived": False}
    assert hubspot("POST", GROUPS, {"name": "audiences", "label": "Again"}).status == 409
    assert hubspot("POST", GROUPS, {"name": "no_label"}).status == 400
    assert hubspot("GET", f"{GROUPS}/audiences").body["label"] == "Audiences"
    assert emulator.snapshot()["groups"] == [created.body]


def test_dated_api_paths_are_aliases(hubspot):
    assert hubspot("GET", "/crm/properties/2025-09/contacts/email").status == 200
    body = {"inputs": [{"idProperty": "email", "id": "ada@example.com", "properties": {"email": "ada@example.com"}}]}
    assert hubspot("POST", "/crm/objects/2025-09/contacts/batch/upsert", body).status == 200

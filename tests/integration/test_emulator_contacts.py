"""Contact endpoints of the HubSpot emulator: batch rules, email handling, read/update/create semantics.

Each test checks one rule of hubspot-api.md §1 over real HTTP (rule table: docs/emulator.md).
"""

from __future__ import annotations

import json
import re
import uuid

UPSERT = "/crm/v3/objects/contacts/batch/upsert"
UPDATE = "/crm/v3/objects/contacts/batch/update"
READ = "/crm/v3/objects/contacts/batch/read"
CONTACTS = "/crm/v3/objects/contacts"
PORTAL_ID = 12345678
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def by_email(email: str, trace: str | None = None, **props: str) -> dict:
    item = {"idProperty": "email", "id": email, "properties": {"email": email, **props}}
    if trace is not None:
        item["objectWriteTraceId"] = trace
    return item


def upsert(hubspot, *inputs: dict):
    return hubspot("POST", UPSERT, {"inputs": list(inputs)})


def contacts_of(emulator) -> dict[str, dict]:
    return {c["properties"].get("email"): c for c in emulator.snapshot()["contacts"]}


# ---- batch/upsert ----


def test_upsert_creates_and_answers_hubspot_result_shape(hubspot):
    reply = upsert(hubspot, by_email("ada@example.com", firstname="Ada"))
    assert reply.status == 200
    assert reply.body["status"] == "COMPLETE"
    assert {"startedAt", "completedAt"} <= reply.body.keys()
    [result] = reply.body["results"]
    assert result["id"].isdigit()
    assert result["archived"] is False
    assert {"createdAt", "updatedAt"} <= result.keys()
    props = result["properties"]
    assert props["email"] == "ada@example.com"
    assert props["firstname"] == "Ada"
    assert props["hs_object_id"] == result["id"]
    assert {"createdate", "lastmodifieddate"} <= props.keys()


def test_upsert_new_is_true_on_create_and_false_on_update(hubspot):
    first = upsert(hubspot, by_email("ada@example.com", firstname="Ada"))
    second = upsert(hubspot, by_email("ada@example.com", firstname="Ada B"))
    assert first.body["results"][0]["new"] is True
    assert second.body["results"][0]["new"] is False
    assert second.body["results"][0]["id"] == first.body["results"][0]["id"]


def test_upsert_results_are_not_in_input_order(hubspot):
    emails = [f"p{i}@example.com" for i in range(5)]
    reply = upsert(hubspot, *(by_email(e) for e in emails))
    answered = [r["properties"]["email"] for r in reply.body["results"]]
    assert sorted(answered) == sorted(emails)
    assert answered != emails


def test_upsert_over_100_inputs_is_rejected_with_hubspots_message(hubspot, emulator):
    reply = upsert(hubspot, *(by_email(f"p{i}@example.com") for i in range(101)))
    assert reply.status == 400
    assert reply.body["message"] == (
        "The maximum number of inputs supported in a batch is 100. Please reduce the number of items and try again"
    )
    assert reply.body["category"] == "VALIDATION_ERROR"
    assert emulator.snapshot()["contacts"] == []
    assert upsert(hubspot, *(by_email(f"p{i}@example.com") for i in range(100))).status == 200


def test_upsert_duplicate_emails_differing_in_case_fail_the_whole_request(hubspot, emulator):
    reply = upsert(
        hubspot,
        by_email("ada@example.com", trace="t1"),
        by_email("ADA@example.com", trace="t2"),
        by_email("bob@example.com", trace="t3"),
    )
    assert reply.status == 400
    assert reply.body["message"] == "Duplicate IDs found in batch input: [ada@example.com]. IDs must be unique"
    assert reply.body["context"] == {"ids": ["ada@example.com"]}
    assert reply.body["category"] == "VALIDATION_ERROR"
    assert emulator.snapshot()["contacts"] == []


def test_upsert_without_trace_ids_one_invalid_input_writes_nothing(hubspot, emulator):
    reply = upsert(hubspot, by_email("ada@example.com"), by_email("bob@example.com", not_a_property="x"))
    assert reply.status == 400
    assert emulator.snapshot()["contacts"] == []


def test_upsert_with_unique_trace_ids_writes_the_valid_inputs_and_answers_207(hubspot, emulator):
    reply = upsert(
        hubspot,
        by_email("ada@example.com", trace="trace-ada"),
        by_email("bob@example.com", trace="trace-bob", lifecyclestage="Customer"),
    )
    assert reply.status == 207
    assert reply.body["numErrors"] == 1
    [error] = reply.body["errors"]
    assert error["status"] == "error"
    assert error["category"] == "VALIDATION_ERROR"
    assert error["context"] == {"objectWriteTraceId": ["trace-bob"]}
    assert error["message"].startswith("Property values were not valid: ")
    [result] = reply.body["results"]
    assert result["objectWriteTraceId"] == "trace-ada"
    assert set(contacts_of(emulator)) == {"ada@example.com"}


def test_upsert_with_repeated_trace_ids_is_all_or_nothing(hubspot, emulator):
    reply = upsert(
        hubspot,
        by_email("ada@example.com", trace="same"),
        by_email("bob@example.com", trace="same", lifecyclestage="Customer"),
    )
    assert reply.status == 400
    assert emulator.snapshot()["contacts"] == []


def test_upsert_stores_emails_lower_cased_and_matches_case_insensitively(hubspot, emulator):
    created = upsert(hubspot, by_email("Ada.Lovelace@Example.COM", firstname="Ada"))
    assert created.body["results"][0]["properties"]["email"] == "ada.lovelace@example.com"
    updated = upsert(hubspot, by_email("ADA.LOVELACE@example.com", lastname="Lovelace"))
    assert updated.body["results"][0]["new"] is False
    [contact] = emulator.snapshot()["contacts"]
    assert contact["properties"]["email"] == "ada.lovelace@example.com"


def test_upsert_copies_the_email_id_into_a_new_contact(hubspot, emulator):
    reply = upsert(hubspot, {"idProperty": "email", "id": "ada@example.com", "properties": {"firstname": "Ada"}})
    assert reply.status == 200
    assert set(contacts_of(emulator)) == {"ada@example.com"}


def test_upsert_matches_secondary_emails(start_emulator):
    portal = {"contacts": [{"properties": {"email": "main@example.com", "hs_additional_emails": "old@example.com"}}]}
    emulator, hubspot = start_emulator(portal=portal)
    reply = upsert(hubspot, {"idProperty": "email", "id": "OLD@example.com", "properties": {"firstname": "Ada"}})
    assert reply.body["results"][0]["new"] is False
    [contact] = emulator.snapshot()["contacts"]
    assert contact["properties"]["firstname"] == "Ada"
    assert contact["properties"]["email"] == "main@example.com"


def test_upsert_by_non_unique_property_is_rejected(hubspot):
    reply = upsert(hubspot, {"idProperty": "firstname", "id": "Ada", "properties": {"lastname": "L"}})
    assert reply.status == 400
    assert reply.body["message"] == (
        f"Unable to perform update/upsert by non-unique 0-1 property firstname in portal ID {PORTAL_ID}"
    )
    assert reply.body["category"] == "VALIDATION_ERROR"


def test_upsert_by_custom_unique_property(hubspot, emulator):
    created = hubspot(
        "POST",
        "/crm/v3/properties/contacts",
        {"name": "crm_key", "label": "Key", "type": "string", "fieldType": "text", "groupName": "contactinformation"}
        | {"hasUniqueValue": True},
    )
    assert created.status == 201
    first = upsert(hubspot, {"idProperty": "crm_key", "id": "K-1", "properties": {"firstname": "Ada"}})
    second = upsert(hubspot, {"idProperty": "crm_key", "id": "K-1", "properties": {"lastname": "L"}})
    assert (first.status, second.status) == (200, 200)
    assert second.body["results"][0]["new"] is False
    [contact] = emulator.snapshot()["contacts"]
    assert contact["properties"]["crm_key"] == "K-1"


def test_upsert_taking_another_contacts_email_is_rejected(hubspot, emulator):
    upsert(hubspot, by_email("ada@example.com"), by_email("bob@example.com"))
    reply = upsert(
        hubspot, {"idProperty": "email", "id": "bob@example.com", "properties": {"email": "ada@example.com"}}
    )
    assert reply.status == 400
    assert "CONFLICTING_UNIQUE_VALUE" in reply.body["message"]
    assert set(contacts_of(emulator)) == {"ada@example.com", "bob@example.com"}


def test_property_errors_use_hubspots_error_body(hubspot):
    reply = upsert(hubspot, by_email("ada@example.com", plan_tier="gold", lifecyclestage="Customer"))
    assert reply.status == 400
    body = reply.body
    assert list(body) == ["status", "message", "correlationId", "errors", "category"]
    assert body["status"] == "error"
    assert body["category"] == "VALIDATION_ERROR"
    assert UUID_RE.match(body["correlationId"])
    prefix = "Property values were not valid: "
    assert body["message"].startswith(prefix)
    items = json.loads(body["message"][len(prefix) :])
    assert items[0] == {
        "isValid": False,
        "message": 'Property "plan_tier" does not exist',
        "error": "PROPERTY_DOESNT_EXIST",
        "name": "plan_tier",
        "localizedErrorMessage": 'Property "plan_tier" does not exist',
        "portalId": PORTAL_ID,
    }
    assert items[1]["error"] == "INVALID_OPTION"
    assert body["errors"][0] == {
        "message": 'Property "plan_tier" does not exist',
        "code": "PROPERTY_DOESNT_EXIST",
        "context": {"propertyName": ["plan_tier"]},
    }


def test_mixed_case_property_name_is_an_invalid_input_json_error(hubspot):
    reply = upsert(hubspot, by_email("ada@example.com", firstName="Ada"))
    assert reply.status == 400
    assert set(reply.body) == {"status", "message", "correlationId"}
    assert re.match(r"^Invalid input JSON on line 1, column \d+: ", reply.body["message"])
    assert reply.body["message"].endswith(
        "Names for properties should be lowercase and have less than 100 characters. Invalid names: [firstName]"
    )


def test_empty_string_clears_a_value(hubspot, emulator):
    upsert(hubspot, by_email("ada@example.com", firstname="Ada", city="London"))
    upsert(hubspot, by_email("ada@example.com", city=""))
    [contact] = emulator.snapshot()["contacts"]
    assert "city" not in contact["properties"]
    assert contact["properties"]["firstname"] == "Ada"


def test_snapshot_records_each_propertys_update_time(hubspot, emulator):
    upsert(hubspot, by_email("ada@example.com", firstname="Ada"))
    [before] = emulator.snapshot()["contacts"]
    upsert(hubspot, by_email("ada@example.com", lastname="Lovelace"))
    [after] = emulator.snapshot()["contacts"]
    times = after["propertyUpdatedAt"]
    assert times["firstname"] == before["propertyUpdatedAt"]["firstname"]
    assert times["lastname"] >= times["firstname"]
    assert set(after["properties"]) <= set(times)


# ---- batch/read ----


def test_batch_read_by_email_returns_requested_properties_with_values_only(hubspot):
    upsert(hubspot, by_email("ada@example.com", firstname="Ada"))
    reply = hubspot(
        "POST",
        READ,
        {"idProperty": "email", "inputs": [{"id": "ADA@example.com"}], "properties": ["firstname", "city"]},
    )
    assert reply.status == 200
    [result] = reply.body["results"]
    assert result["properties"]["firstname"] == "Ada"
    assert "city" not in result["properties"]
    assert "email" not in result["properties"]


def test_batch_read_missing_ids_are_one_object_not_found_error_in_a_207(hubspot):
    created = upsert(hubspot, by_email("ada@example.com")).body["results"][0]["id"]
    reply = hubspot("POST", READ, {"inputs": [{"id": created}, {"id": "999999"}, {"id": "bob@example.com"}]})
    assert reply.status == 207
    assert [r["id"] for r in reply.body["results"]] == [created]
    assert reply.body["numErrors"] == 1
    [error] = reply.body["errors"]
    assert error["category"] == "OBJECT_NOT_FOUND"
    assert error["message"] == (
        "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid."
    )
    assert error["context"] == {"ids": ["999999", "bob@example.com"]}


def test_batch_read_without_properties_returns_the_default_set(hubspot):
    upsert(hubspot, by_email("ada@example.com", firstname="Ada", city="London"))
    reply = hubspot("POST", READ, {"idProperty": "email", "inputs": [{"id": "ada@example.com"}]})
    props = reply.body["results"][0]["properties"]
    assert props.keys() == {"email", "firstname", "hs_object_id", "createdate", "lastmodifieddate"}


# ---- batch/update ----


def test_batch_update_by_record_id_updates_and_reports_unknown_ids_in_a_207(hubspot, emulator):
    created = upsert(hubspot, by_email("ada@example.com")).body["results"][0]["id"]
    reply = hubspot(
        "POST",
        UPDATE,
        {
            "inputs": [
                {"id": created, "properties": {"firstname": "Ada"}},
                {"id": "ada@example.com", "properties": {"firstname": "Nobody"}},
            ]
        },
    )
    assert reply.status == 207
    assert reply.body["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    assert reply.body["errors"][0]["context"] == {"ids": ["ada@example.com"]}
    assert "new" not in reply.body["results"][0]
    assert contacts_of(emulator)["ada@example.com"]["properties"]["firstname"] == "Ada"


def test_batch_update_by_email_is_the_non_unique_property_error(hubspot):
    upsert(hubspot, by_email("ada@example.com"))
    reply = hubspot(
        "POST",
        UPDATE,
        {"inputs": [{"idProperty": "email", "id": "ada@example.com", "properties": {"firstname": "Ada"}}]},
    )
    assert reply.status == 400
    assert reply.body["message"] == (
        f"Unable to perform update/upsert by non-unique 0-1 property email in portal ID {PORTAL_ID}"
    )


def test_batch_update_duplicate_record_ids_fail_the_request(hubspot):
    created = upsert(hubspot, by_email("ada@example.com")).body["results"][0]["id"]
    same = {"id": created, "properties": {"firstname": "Ada"}}
    reply = hubspot("POST", UPDATE, {"inputs": [same, same]})
    assert reply.status == 400
    assert reply.body["message"] == f"Duplicate IDs found in batch input: [{created}]. IDs must be unique"
    assert reply.body["context"] == {"ids": [created]}


# ---- single create and read ----


def test_create_with_an_existing_email_is_a_409_naming_the_existing_id(hubspot):
    created = upsert(hubspot, by_email("ada@example.com")).body["results"][0]["id"]
    reply = hubspot("POST", CONTACTS, {"properties": {"email": "Ada@Example.com"}})
    assert reply.status == 409
    assert reply.body["message"] == f"Contact already exists. Existing ID: {created}"
    assert reply.body["category"] == "CONFLICT"
    assert reply.body["error"] == "CONTACT_EXISTS"


def test_create_answers_201_with_the_contact(hubspot):
    reply = hubspot("POST", CONTACTS, {"properties": {"email": "ada@example.com", "firstname": "Ada"}})
    assert reply.status == 201
    assert reply.body["id"].isdigit()
    assert reply.body["properties"]["firstname"] == "Ada"


def test_get_contact_by_id_by_email_and_with_property_list(hubspot):
    created = upsert(hubspot, by_email("ada@example.com", firstname="Ada", city="London")).body["results"][0]["id"]
    by_id = hubspot("GET", f"{CONTACTS}/{created}")
    assert by_id.status == 200
    assert by_id.body["properties"]["firstname"] == "Ada"
    chosen = hubspot("GET", f"{CONTACTS}/ADA@example.com?idProperty=email&properties=city")
    assert chosen.status == 200
    assert chosen.body["id"] == created
    assert chosen.body["properties"]["city"] == "London"
    assert "firstname" not in chosen.body["properties"]


def test_get_unknown_contact_is_a_json_404(hubspot):
    reply = hubspot("GET", f"{CONTACTS}/{uuid.uuid4().int % 10**9}")
    assert reply.status == 404
    assert reply.body["category"] == "OBJECT_NOT_FOUND"


# ---- search ----


def test_search_eq_on_email_matches_secondary_emails(start_emulator):
    portal = {
        "contacts": [
            {"properties": {"email": "main@example.com", "hs_additional_emails": "old@example.com;x@example.com"}},
            {"properties": {"email": "other@example.com"}},
        ]
    }
    _, hubspot = start_emulator(portal=portal)
    body = {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": "OLD@example.com"}]}]}
    reply = hubspot("POST", f"{CONTACTS}/search", body)
    assert reply.status == 200
    assert reply.body["total"] == 1
    assert reply.body["results"][0]["properties"]["email"] == "main@example.com"


def test_search_pages_with_after(hubspot):
    upsert(hubspot, *(by_email(f"p{i}@example.com") for i in range(5)))
    first = hubspot("POST", f"{CONTACTS}/search", {"limit": 2})
    assert first.body["total"] == 5
    assert len(first.body["results"]) == 2
    after = first.body["paging"]["next"]["after"]
    last = hubspot("POST", f"{CONTACTS}/search", {"limit": 2, "after": "4"})
    assert "paging" not in last.body
    assert after == "2"

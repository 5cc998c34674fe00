"""Authentication, malformed requests, admin endpoints, pre-loading and lifecycle of the HubSpot emulator."""

from __future__ import annotations

import json
import re
import socket

import pytest
import urllib3

from hubspot_local.emulator import PRODUCT_SCOPES, HubSpotEmulator, load_portal

PROPERTIES = "/crm/v3/properties/contacts"
UPSERT = "/crm/v3/objects/contacts/batch/upsert"
AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more "
    "details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
ONE_INPUT = {"inputs": [{"idProperty": "email", "id": "ada@example.com", "properties": {"email": "ada@example.com"}}]}


def test_product_scopes_are_the_four_the_product_needs():
    assert (
        frozenset(
            {
                "crm.objects.contacts.read",
                "crm.objects.contacts.write",
                "crm.schemas.contacts.read",
                "crm.schemas.contacts.write",
            }
        )
        == PRODUCT_SCOPES
    )


# ---- authentication (hubspot-api.md §4) ----


@pytest.mark.parametrize("token", [None, "garbage", ""])
def test_missing_or_unknown_token_is_401_invalid_authentication(hubspot, emulator, token):
    reply = hubspot("GET", PROPERTIES, token=token)
    assert reply.status == 401
    assert set(reply.body) == {"status", "message", "correlationId", "category"}
    assert reply.body["message"] == AUTH_MESSAGE
    assert reply.body["category"] == "INVALID_AUTHENTICATION"
    assert "X-HubSpot-RateLimit-Remaining" not in reply.headers


def test_token_without_schema_write_scope_cannot_create_properties(start_emulator):
    _, hubspot = start_emulator(tokens={"writer": frozenset({"crm.objects.contacts.write"})})
    body = {"name": "aud_1", "label": "A", "type": "string", "fieldType": "text", "groupName": "contactinformation"}
    reply = hubspot("POST", PROPERTIES, body, token="writer")
    assert reply.status == 403
    assert reply.body["category"] == "MISSING_SCOPES"
    assert reply.body["message"].startswith("This app hasn't been granted all required scopes")
    assert reply.body["errors"][0]["context"]["requiredGranularScopes"] == ["crm.schemas.contacts.write"]
    assert reply.body["links"] == {"scopes": "https://developers.hubspot.com/scopes"}
    assert hubspot("POST", UPSERT, ONE_INPUT, token="writer").status == 200


def test_contact_writes_need_the_objects_write_scope(start_emulator):
    _, hubspot = start_emulator(tokens={"reader": frozenset({"crm.objects.contacts.read"})})
    reply = hubspot("POST", UPSERT, ONE_INPUT, token="reader")
    assert reply.status == 403
    assert reply.body["errors"][0]["context"]["requiredGranularScopes"] == ["crm.objects.contacts.write"]


def test_property_reads_accept_either_read_scope(start_emulator):
    tokens = {"objects": frozenset({"crm.objects.contacts.read"}), "schemas": frozenset({"crm.schemas.contacts.read"})}
    _, hubspot = start_emulator(tokens=tokens)
    assert hubspot("GET", PROPERTIES, token="objects").status == 200
    assert hubspot("GET", PROPERTIES, token="schemas").status == 200
    read = {"inputs": [{"id": "1"}]}
    assert hubspot("POST", "/crm/v3/objects/contacts/batch/read", read, token="schemas").status == 403


# ---- malformed requests (§1.7) ----


def test_malformed_json_is_invalid_input_json_400(hubspot):
    reply = hubspot("POST", UPSERT, raw=b'{"inputs": [\n  {"id": }]}')
    assert reply.status == 400
    assert set(reply.body) == {"status", "message", "correlationId"}
    assert re.match(r"^Invalid input JSON on line 2, column 10: .+", reply.body["message"])


def test_unknown_path_is_a_json_404_and_wrong_method_a_json_405(hubspot):
    missing = hubspot("GET", "/crm/v3/objects/deals")
    assert missing.status == 404
    assert missing.body["status"] == "error"
    wrong = hubspot("DELETE", UPSERT)
    assert wrong.status == 405
    assert wrong.headers["Allow"] == "POST"
    assert wrong.body["status"] == "error"


def test_an_internal_error_is_still_a_json_500(hubspot, emulator, monkeypatch):
    def broken(*_args):
        raise RuntimeError("boom")

    monkeypatch.setattr(emulator.portal, "find", broken)
    reply = hubspot("POST", UPSERT, ONE_INPUT)
    assert reply.status == 500
    assert reply.body["status"] == "error"
    assert reply.headers["Content-Type"].startswith("application/json")


# ---- admin endpoints and state ----


def test_admin_state_is_the_snapshot_with_a_request_log(hubspot, emulator):
    hubspot("POST", UPSERT, ONE_INPUT)
    state = urllib3.request("GET", emulator.base_url + "/__emulator/state").json()
    assert state == emulator.snapshot()
    [logged] = state["requests"]
    assert logged == {
        "method": "POST",
        "path": UPSERT,
        "status": 200,
        "inputs": 1,
        "rateLimitRemaining": 189,
        "at": logged["at"],
    }
    assert 0 < logged["at"] <= emulator.clock()
    assert state["in_flight"] == {"most_requests": 1, "most_upserts": 1, "contacts_in_two_upserts": 0}
    assert state["contacts"][0]["properties"]["email"] == "ada@example.com"


def test_admin_reset_restores_the_initial_portal(start_emulator):
    portal = {"contacts": [{"properties": {"email": "kept@example.com"}}]}
    emulator, hubspot = start_emulator(portal=portal)
    hubspot("POST", UPSERT, ONE_INPUT)
    assert len(emulator.snapshot()["contacts"]) == 2
    assert urllib3.request("POST", emulator.base_url + "/__emulator/reset").status == 200
    state = emulator.snapshot()
    assert [c["properties"]["email"] for c in state["contacts"]] == ["kept@example.com"]
    assert state["requests"] == []


def test_admin_endpoints_need_no_token_and_are_not_logged(emulator):
    assert urllib3.request("GET", emulator.base_url + "/__emulator/faults").status == 200
    assert urllib3.request("GET", emulator.base_url + "/__emulator/nope").status == 404
    assert emulator.snapshot()["requests"] == []


def test_emulator_refuses_non_loopback_hosts():
    with pytest.raises(ValueError, match="loopback"):
        HubSpotEmulator(host="0.0.0.0")  # noqa: S104 - the point of the test


def test_stop_closes_the_port_and_open_connections(emulator, hubspot):
    port = int(emulator.base_url.rsplit(":", 1)[1])
    assert hubspot("GET", PROPERTIES).status == 200
    emulator.stop()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


# ---- pre-loading (--portal FILE) ----


def test_load_portal_reads_a_valid_file_and_the_emulator_serves_it(tmp_path, start_emulator):
    path = tmp_path / "portal.json"
    data = {
        "properties": [
            {
                "name": "plan_tier",
                "label": "Plan tier",
                "type": "enumeration",
                "fieldType": "select",
                "groupName": "billing",
                "options": [{"label": "Gold", "value": "gold", "displayOrder": 0, "hidden": False}],
            }
        ],
        "contacts": [{"properties": {"email": "Ada@Example.com", "plan_tier": "gold"}}],
    }
    path.write_text(json.dumps(data))
    portal = load_portal(path)
    emulator, hubspot = start_emulator(portal=portal)
    assert hubspot("GET", f"{PROPERTIES}/plan_tier").body["groupName"] == "billing"
    [contact] = emulator.snapshot()["contacts"]
    assert contact["properties"]["email"] == "ada@example.com"
    assert [p["name"] for p in emulator.snapshot()["properties"]] == ["plan_tier"]


def test_preloaded_record_ids_are_kept_and_new_ids_follow_them(start_emulator):
    portal = {
        "contacts": [
            {"id": "5000", "properties": {"email": "a@example.com"}},
            {"properties": {"email": "b@example.com", "hs_object_id": "7000"}},
        ]
    }
    _, hubspot = start_emulator(portal=portal)
    assert hubspot("GET", "/crm/v3/objects/contacts/5000").body["properties"]["email"] == "a@example.com"
    assert hubspot("GET", "/crm/v3/objects/contacts/7000").body["properties"]["hs_object_id"] == "7000"
    created = hubspot("POST", UPSERT, ONE_INPUT).body["results"][0]["id"]
    assert created == "7001"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("not json", "not valid JSON"),
        ("[]", "top level must be a JSON object"),
        ('{"contacts": {}}', "must be a list"),
        ('{"contacts": [{"email": "a@example.com"}]}', "needs a 'properties' object"),
        ('{"properties": [{"name": "x"}]}', "needs a string 'type'"),
        ('{"deals": []}', "unknown keys"),
        ('{"contacts": [{"properties": {"nope": "1"}}]}', 'Property "nope" does not exist'),
        ('{"contacts": [{"properties": {"email": "bad@x.comtttt"}}]}', "is invalid"),
        ('{"properties": [{"name": "Bad", "type": "string", "fieldType": "text"}]}', "Invalid property name"),
        ('{"contacts": [{"properties": {"email": "a@x.com"}}, {"properties": {"email": "A@x.com"}}]}', "two"),
    ],
)
def test_load_portal_rejects_bad_files_with_a_clear_value_error(tmp_path, content, problem):
    path = tmp_path / "portal.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=re.escape(problem)):
        load_portal(path)

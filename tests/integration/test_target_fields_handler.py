"""`GET /v1/target-fields` through the real ingest handler (Powertools' resolver), with moto's Secrets Manager
and the HubSpot emulator over real HTTP on loopback: what it lists, who may ask, caching, and HubSpot's faults."""

import json

import boto3
import pytest

from hubspot_destination.domain.audiences import STATUSES, audience_property_name
from hubspot_local.emulator import FaultConfig
from hubspot_local.lambda_runtime import LambdaContext, load_handler_module
from hubspot_local.pipeline import AUDIENCE_PROPERTY_GROUP, LocalPipeline, proxy_event
from tests.helpers import BAD_CREDENTIALS

ROUTE = "/v1/target-fields"
AUDIENCE_PROPERTY = audience_property_name("0b7a6c1e-3f2d-4e59-9a61-5c4d3b2a1f00")
OPTIONS = [
    {"label": "Gold", "value": "gold", "displayOrder": 0, "hidden": False},
    {"label": "Silver", "value": "silver", "displayOrder": 1, "hidden": False},
]
PORTAL = {
    "groups": [{"name": AUDIENCE_PROPERTY_GROUP, "label": "AEP audiences"}],
    "properties": [
        {"name": "plan_tier", "label": 'Plan "tier" & <level>', "type": "enumeration", "fieldType": "select",
         "groupName": "sales_properties", "options": OPTIONS},
        {"name": "loyalty_points", "label": "Loyalty points", "type": "number", "fieldType": "number"},
        {"name": "points_doubled", "label": "Points x2", "type": "number", "fieldType": "calculation_equation",
         "calculated": True},
        {"name": "erp_id", "label": "ERP id", "type": "string", "fieldType": "text",
         "modificationMetadata": {"archivable": True, "readOnlyDefinition": False, "readOnlyValue": True}},
        {"name": AUDIENCE_PROPERTY, "label": "High Value Customers", "type": "enumeration", "fieldType": "select",
         "groupName": AUDIENCE_PROPERTY_GROUP,
         "options": [{"label": s, "value": s, "displayOrder": i, "hidden": False} for i, s in enumerate(STATUSES)]},
        {"name": "legacy_segment", "label": "Legacy segment", "type": "string", "fieldType": "text",
         "groupName": AUDIENCE_PROPERTY_GROUP},
    ],
}  # fmt: skip
UNWRITABLE = {"email", "points_doubled", "erp_id", AUDIENCE_PROPERTY, "legacy_segment", "hs_additional_emails"}


@pytest.fixture
def portal(pipeline_env):
    """A pipeline whose emulated portal has custom, read-only, calculated, enumeration and audience properties."""
    with LocalPipeline(portal=PORTAL) as running:
        yield running


def get(pipeline, mutate=lambda event: None, module=None):
    """`GET /v1/target-fields`, signed over the empty body unless `mutate` changes the event."""
    event = proxy_event(b"", pipeline.signing_secret, method="GET", path=ROUTE)
    mutate(event)
    response = (module or pipeline.ingest_module).lambda_handler(event, LambdaContext("IngestFunction", 10))
    assert response["multiValueHeaders"]["Content-Type"] == ["application/json"]
    return response["statusCode"], json.loads(response["body"])


def property_reads(pipeline) -> int:
    requests = pipeline.emulator.snapshot()["requests"]
    return sum(1 for r in requests if r["method"] == "GET" and r["path"].startswith("/crm/v3/properties/contacts"))


def test_the_portals_writable_contact_properties_are_listed_with_their_definitions(portal):
    status, body = get(portal)
    assert status == 200
    fields = {field["name"]: field for field in body["fields"]}
    assert [field["name"] for field in body["fields"]] == sorted(fields)
    assert {"firstname", "lifecyclestage", "plan_tier", "loyalty_points"} <= set(fields)
    assert not UNWRITABLE & set(fields)
    definitions = {prop.name: prop for prop in portal.hubspot_client.list_properties()}
    for name, field in fields.items():
        prop = definitions[name]
        assert not prop.read_only
        assert (field["label"], field["type"], field["fieldType"], field["group"]) == (
            prop.label,
            prop.type,
            prop.fieldType,
            prop.groupName,
        )
        expected = [{"label": o.label, "value": o.value} for o in prop.options] if prop.type == "enumeration" else []
        assert field["options"] == expected
    assert fields["plan_tier"]["options"] == [{"label": o["label"], "value": o["value"]} for o in OPTIONS]
    assert fields["plan_tier"]["label"] == 'Plan "tier" & <level>'


def test_a_bearer_key_is_accepted_as_on_the_webhook(portal):
    portal.set_sender_credentials(bearer_tokens=["k-123-0123456789abcdef"], signing_secrets=[])

    def bearer(event):
        del event["headers"]["X-Signature"]
        event["headers"]["Authorization"] = "Bearer k-123-0123456789abcdef"

    assert get(portal, bearer)[0] == 200


@pytest.mark.parametrize("mutate", [change for _, change in BAD_CREDENTIALS], ids=[i for i, _ in BAD_CREDENTIALS])
def test_unauthenticated_callers_get_401_and_hubspot_is_not_called(portal, mutate):
    status, body = get(portal, lambda event: mutate(event, portal.signing_secret))
    assert (status, body["error"]) == (401, "UNAUTHORIZED")
    assert property_reads(portal) == 0


def test_the_list_is_cached_for_property_cache_seconds(portal):
    assert get(portal)[0] == 200
    assert get(portal)[0] == 200
    assert property_reads(portal) == 1


def test_without_a_cache_every_call_reads_hubspot(portal, monkeypatch):
    monkeypatch.setenv("PROPERTY_CACHE_SECONDS", "0")
    module = load_handler_module("ingest")
    assert get(portal, module=module)[0] == 200
    assert get(portal, module=module)[0] == 200
    assert property_reads(portal) == 2


@pytest.mark.parametrize(
    ("faults", "code"),
    [
        ({"error_rates": {503: 1.0}}, "HUBSPOT_UNAVAILABLE"),
        ({"error_rates": {500: 1.0}}, "HUBSPOT_UNAVAILABLE"),
        ({"reset_rate": 1.0}, "HUBSPOT_UNAVAILABLE"),
        ({"slow_rate": 1.0, "slow_seconds": 30}, "HUBSPOT_UNAVAILABLE"),  # past the 4-s read timeout
        ({"revoke_token_after": 0}, "HUBSPOT_AUTH"),
        ({"burst_429_rate": 1.0, "burst_429_length": 5}, "RATE_LIMITED"),
        ({"malformed": {"rate": 1.0, "bodies": ["results_null"]}}, "HUBSPOT_MALFORMED_ANSWER"),
        ({"malformed": {"rate": 1.0, "bodies": ["not_json"]}}, "HUBSPOT_MALFORMED_ANSWER"),
        ({"redirect": {"rate": 1.0, "to": "http://127.0.0.1:9"}}, "HUBSPOT_MALFORMED_ANSWER"),
        ({"huge_body": {"rate": 1.0, "size_bytes": 9_000_000}}, "HUBSPOT_MALFORMED_ANSWER"),
    ],
    ids=["503", "500", "reset", "timeout", "token-revoked", "429", "results-null", "not-json", "redirect", "huge"],
)
def test_hubspot_faults_are_a_json_503_with_a_code_and_are_not_cached(portal, faults, code):
    portal.emulator.set_faults(FaultConfig.model_validate(faults))
    status, body = get(portal)
    assert (status, body["error"]) == (503, code)
    assert body["detail"]
    portal.emulator.set_faults(FaultConfig())
    assert get(portal)[0] == 200


def test_a_property_list_of_the_wrong_shape_is_a_503_naming_the_problem(portal):
    wrong = json.dumps({"results": [{"name": "firstname", "type": "string"}, {"name": 7, "type": "string"}]})
    portal.emulator.set_faults(FaultConfig.model_validate({"malformed": {"rate": 1.0, "bodies": [{"text": wrong}]}}))
    status, body = get(portal)
    assert (status, body["error"]) == (503, "HUBSPOT_MALFORMED_ANSWER")
    assert "results.1.name" in body["detail"]


def test_secrets_manager_failing_for_the_token_is_a_503(portal):
    boto3.client("secretsmanager").delete_secret(
        SecretId="hubspot-destination/hubspot-token", ForceDeleteWithoutRecovery=True
    )
    status, body = get(portal)
    assert (status, body["error"]) == (503, "SERVICE_UNAVAILABLE")
    assert property_reads(portal) == 0

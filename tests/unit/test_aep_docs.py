"""The AEP Destination SDK documents in docs/aep/ (see docs/aep-destination.md).

Pebble is not rendered here: the checks are structural (valid JSON, the template mentions the parts of the
webhook's body, the configuration requires the email identity and bearer authentication). The rendered
example in the guide is checked against the webhook's own request rules.
"""

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hubspot_destination.ingest.models import ActivationRequest
from hubspot_destination.ingest.split import split_profiles

DOCS = Path(__file__).resolve().parents[2] / "docs"
SERVER = DOCS / "aep" / "destination-server.json"
CONFIGURATION = DOCS / "aep" / "destination-configuration.json"
GUIDE = DOCS / "aep-destination.md"


def _strict_object(pairs: list[tuple[str, object]]) -> dict:
    keys = [key for key, _ in pairs]
    duplicates = {key for key in keys if keys.count(key) > 1}
    if duplicates:
        raise ValueError(f"duplicate keys: {sorted(duplicates)}")
    return dict(pairs)


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_strict_object)


@pytest.fixture(scope="module")
def server() -> dict:
    return _load(SERVER)


@pytest.fixture(scope="module")
def configuration() -> dict:
    return _load(CONFIGURATION)


@pytest.mark.parametrize("path", [SERVER, CONFIGURATION], ids=lambda path: path.name)
def test_documents_are_valid_json_objects(path):
    assert isinstance(_load(path), dict)


def test_server_posts_json_to_the_api_url_placeholder(server):
    assert server["destinationServerType"] == "URL_BASED"
    assert "{{YOUR_API_URL}}" in server["urlBasedDestination"]["url"]["value"]
    template = server["httpTemplate"]
    assert template["httpMethod"] == "POST"
    assert template["contentType"] == "application/json"
    assert template["requestBody"]["templatingStrategy"] == "PEBBLE_V1"


def test_template_builds_the_webhook_body(server):
    template = server["httpTemplate"]["requestBody"]["value"]
    for part in ('"profiles"', '"identityMap"', '"email"', '"attributes"', '"segmentMembership"'):
        assert part in template
    for part in ('"status"', '"lastQualificationTime"', '"name"', "input.profiles", "namespaceSegmentNames"):
        assert part in template
    # Blocks and expressions are balanced, so AEP can parse the template at all.
    assert template.count("{%") == template.count("%}")
    expressions = re.findall(r"{{(.*?)}}", template, re.DOTALL)
    assert len(expressions) == template.count("{{")
    assert all("{" not in expression and "%" not in expression for expression in expressions)
    opened = re.findall(r"{%-?\s*(for|if)\b", template)
    closed = re.findall(r"{%-?\s*end(for|if)\b", template)
    assert sorted(opened) == sorted(closed)


def test_configuration_uses_bearer_authentication(configuration):
    assert configuration["customerAuthenticationConfigurations"] == [{"authType": "BEARER"}]
    delivery = configuration["destinationDelivery"]
    assert [entry["authenticationRule"] for entry in delivery] == ["CUSTOMER_AUTHENTICATION"]
    assert "{{YOUR_DESTINATION_SERVER_ID}}" in delivery[0]["destinationServerId"]


def test_configuration_requires_the_email_identity(configuration):
    assert list(configuration["identityNamespaces"]) == ["email"]
    email = configuration["identityNamespaces"]["email"]
    assert "Email" in email["acceptedGlobalNamespaces"]
    assert "transformation" not in email  # HubSpot needs the plain address, never a hash
    assert "requiredTransformation" not in email["acceptedGlobalNamespaces"]["Email"]
    schema = configuration["schemaConfig"]
    assert schema["identityRequired"] is True
    assert schema["segmentRequired"] is True
    assert {"destination": "identityMap.email"} in schema["requiredMappings"]


def test_target_fields_are_hubspot_internal_names(configuration):
    names = [field["name"] for field in configuration["schemaConfig"]["profileFields"]]
    assert names == ["firstname", "lastname", "address", "city", "country"]
    assert "email" not in names  # the identity keys the contact; a mapped email attribute is ignored


def test_aggregation_fits_the_request_limits(configuration):
    aggregation = configuration["aggregation"]
    assert aggregation["aggregationType"] == "BEST_EFFORT"
    assert 1 <= aggregation["bestEffortAggregation"]["maxUsersPerRequest"] <= 10_000
    assert aggregation["bestEffortAggregation"]["splitUserById"] is False


def test_the_guides_rendered_example_is_accepted_by_the_webhook():
    guide = GUIDE.read_text(encoding="utf-8")
    section = guide.split("What the template renders", 1)[1]
    body = json.loads(re.search(r"```json\n(.*?)```", section, re.DOTALL).group(1))
    request = ActivationRequest.model_validate(body)
    split = split_profiles(
        request,
        request_id="docs",
        received_at=datetime(2025, 3, 5, tzinfo=UTC),
        max_message_bytes=262_144,
        max_profiles_per_message=50,
    )
    assert split.rejected == []
    assert split.accepted == len(body["profiles"])

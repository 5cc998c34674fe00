"""The AEP Destination SDK documents in docs/aep/ (see docs/aep-destination.md).

The request template's checks are structural (valid JSON, the template mentions the parts of the webhook's
body, the configuration requires the email identity and bearer authentication); the rendered example in the
guide is checked against the webhook's own request rules. The schema server's `responseFields` template is
rendered (`render_pebble`) against answers of `GET /v1/target-fields`.
"""

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import pytest
from markupsafe import Markup, escape

from hubspot_destination.ingest.models import ActivationRequest
from hubspot_destination.ingest.split import split_profiles
from hubspot_destination.ingest.target_fields import TargetFields, writable_fields
from tests.unit.fakes import prop

DOCS = Path(__file__).resolve().parents[2] / "docs"
SERVER = DOCS / "aep" / "destination-server.json"
SCHEMA_SERVER = DOCS / "aep" / "schema-server.json"
CONFIGURATION = DOCS / "aep" / "destination-configuration.json"
STATIC_SCHEMA = DOCS / "aep" / "static-schema-config.json"
GUIDE = DOCS / "aep-destination.md"


def render_pebble(template: str, context: dict) -> str:
    """Render a template written in the part of Pebble (AEP's `PEBBLE_V1`) whose syntax and meaning Jinja2
    shares: `for` over a list, `if`, `loop.last`, `{%-` whitespace control, HTML autoescaping of `{{ }}` (Pebble's
    default), with Pebble's `is empty` test, `raw` filter and `escape(strategy='json')` added. Anything else, an
    unknown name included, fails."""
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    environment.tests["empty"] = lambda value: value is None or (hasattr(value, "__len__") and len(value) == 0)
    environment.filters["raw"] = Markup
    environment.filters["escape"] = lambda value, strategy="html": (
        Markup(json.dumps(str(value))[1:-1]) if strategy == "json" else escape(value)  # noqa: S704 - our own docs
    )
    return environment.from_string(template).render(context)


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


@pytest.fixture(scope="module")
def schema_server() -> dict:
    return _load(SCHEMA_SERVER)


@pytest.fixture(scope="module")
def schema_template(schema_server) -> str:
    [field] = schema_server["responseFields"]
    return field["value"]


@pytest.mark.parametrize("path", [SERVER, SCHEMA_SERVER, CONFIGURATION, STATIC_SCHEMA], ids=lambda path: path.name)
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


def test_target_fields_come_from_the_schema_server(configuration, schema_server):
    schema = configuration["schemaConfig"]
    assert "profileFields" not in schema  # a dynamic schema replaces the static list
    assert schema["dynamicSchemaConfig"]["dynamicEnum"] == {
        "authenticationRule": "CUSTOMER_AUTHENTICATION",  # the bearer key of the connection, as for activations
        "destinationServerId": "{{YOUR_SCHEMA_SERVER_ID}}",
        "value": schema_server["responseFields"][0]["name"],
        "responseFormat": "SCHEMA",
    }
    assert schema["profileRequired"] is True


def test_the_schema_server_gets_the_target_fields_route(schema_server):
    assert schema_server["destinationServerType"] == "URL_BASED"
    assert schema_server["urlBasedDestination"]["url"] == {
        "templatingStrategy": "NONE",
        "value": "{{YOUR_TARGET_FIELDS_URL}}",
    }
    assert schema_server["httpTemplate"] == {"httpMethod": "GET"}
    [field] = schema_server["responseFields"]
    assert field["templatingStrategy"] == "PEBBLE_V1"
    assert "response.body.fields" in field["value"]


def test_the_static_fallback_lists_hubspot_internal_names(configuration):
    static = _load(STATIC_SCHEMA)
    names = [field["name"] for field in static["profileFields"]]
    assert names == ["firstname", "lastname", "address", "city", "country"]
    assert "email" not in names  # the identity keys the contact; a mapped email attribute is ignored
    assert "dynamicSchemaConfig" not in static
    # Swapping it in changes the target fields only.
    flags = ("profileRequired", "segmentRequired", "identityRequired", "requiredMappings")
    assert {k: static[k] for k in flags} == {k: configuration["schemaConfig"][k] for k in flags}


def schema_of(template: str, answer: TargetFields) -> dict:
    """What AEP makes of an answer of `GET /v1/target-fields`: the response template rendered, as JSON."""
    return json.loads(render_pebble(template, {"response": {"body": answer.model_dump(mode="json")}}))


def test_the_schema_template_renders_every_target_field_as_a_string_property(schema_template):
    labels = ['Plan "tier"', "C:\\path", "R&D <team>", "Malmö ✓", "two\nlines", "   "]
    properties = [prop(f"field_{i}", label=label) for i, label in enumerate(labels)]
    properties.append(prop("plan", "enumeration", "select", label="Plan", options=[{"label": "Gold", "value": "g"}]))
    answer = TargetFields(fields=writable_fields(properties, "aep_audiences"))
    schema = schema_of(schema_template, answer)
    assert schema == {
        "type": "object",
        "title": "HubSpot contact properties",
        "properties": {f.name: {"title": f"{f.label} ({f.name})", "type": "string"} for f in answer.fields},
    }
    assert list(schema["properties"]) == [f.name for f in answer.fields]


def test_the_schema_template_renders_a_portal_without_target_fields(schema_template):
    assert schema_of(schema_template, TargetFields(fields=[]))["properties"] == {}


def test_the_guides_target_fields_example_renders_as_shown(schema_template):
    section = GUIDE.read_text(encoding="utf-8").split("What the schema template makes of an answer", 1)[1]
    answer, schema = (json.loads(block) for block in re.findall(r"```json\n(.*?)```", section, re.DOTALL)[:2])
    assert schema_of(schema_template, TargetFields.model_validate(answer)) == schema


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

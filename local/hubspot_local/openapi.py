"""The API's OpenAPI 3.1 document (the webhook and the target fields), generated from the same pydantic models
the ingest function uses.

`make openapi` writes it to `docs/openapi.json`; a test fails when the committed document and the models
disagree. (The route validates by hand, after authentication, so Powertools' own generator cannot see the
body; the models are the single source either way.)
"""

import json
from pathlib import Path

from pydantic.json_schema import models_json_schema

from hubspot_destination.ingest.models import ActivationAccepted, ActivationRequest, ErrorBody, Profile
from hubspot_destination.ingest.target_fields import TargetFields

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def _json(schema_ref: str, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": schema_ref}}}}


def openapi_document() -> dict:
    """The OpenAPI document of `POST /v1/activations` and `GET /v1/target-fields` (a JSON-ready dict)."""
    models = [
        (ActivationRequest, "validation"),
        (Profile, "validation"),
        (ActivationAccepted, "serialization"),
        (ErrorBody, "serialization"),
        (TargetFields, "serialization"),
    ]
    _, schemas = models_json_schema(models, ref_template="#/components/schemas/{model}")
    error = "#/components/schemas/ErrorBody"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "HubSpot audience activation destination",
            "version": "1",
            "description": (
                "Receives AEP profile exports and writes them to HubSpot contacts; lists the portal's contact "
                "properties a profile may write (see README.md)."
            ),
        },
        "paths": {
            "/v1/activations": {
                "post": {
                    "summary": "Accept a profile export",
                    "description": (
                        "Each element of `profiles` is validated on its own against `Profile`; a bad one is a "
                        "per-index rejection in the 202 answer, never a failed request."
                    ),
                    "security": [{"bearer": []}, {"signature": []}],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ActivationRequest"}}},
                    },
                    "responses": {
                        "202": _json(
                            "#/components/schemas/ActivationAccepted", "Accepted; refused profiles listed by index"
                        ),
                        "400": _json(error, "INVALID_JSON or INVALID_BODY"),
                        "401": _json(
                            error, "UNAUTHORIZED: no credentials, a wrong key or signature, a stale timestamp"
                        ),
                        "413": _json(error, "BODY_TOO_LARGE or TOO_MANY_PROFILES"),
                        "415": _json(error, "UNSUPPORTED_MEDIA_TYPE"),
                        "422": _json(error, "INVALID_REQUEST: not a profile export"),
                        "503": _json(error, "ENQUEUE_FAILED or SERVICE_UNAVAILABLE: retry the request"),
                    },
                }
            },
            "/v1/target-fields": {
                "get": {
                    "summary": "List the target fields",
                    "description": (
                        "The portal's contact properties a profile may write, sorted by name: without read-only "
                        "and calculated properties, `email` and the audience properties. Cached for "
                        "PROPERTY_CACHE_SECONDS. A signature covers the empty body."
                    ),
                    "security": [{"bearer": []}, {"signature": []}],
                    "responses": {
                        "200": _json("#/components/schemas/TargetFields", "The target fields"),
                        "400": _json(error, "INVALID_BODY"),
                        "401": _json(
                            error, "UNAUTHORIZED: no credentials, a wrong key or signature, a stale timestamp"
                        ),
                        "503": _json(
                            error,
                            "HUBSPOT_UNAVAILABLE, HUBSPOT_AUTH, RATE_LIMITED, HUBSPOT_MALFORMED_ANSWER, HUBSPOT_ERROR "
                            "or SERVICE_UNAVAILABLE: HubSpot or Secrets Manager failed; retry the request",
                        ),
                    },
                }
            },
        },
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "signature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Signature",
                    "description": 't=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>; 300 s tolerance',
                },
            },
        },
    }


def render() -> str:
    """The document as committed: indented JSON with a final newline."""
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    DOCUMENT.write_text(render(), encoding="utf-8")

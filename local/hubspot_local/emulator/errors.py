"""HubSpot's JSON error envelope (hubspot-api.md §1.8) and the error bodies built on it.

Every error answer carries ``status: "error"``, ``message`` and a UUID ``correlationId``; ``category`` is
present except on the malformed-JSON answer, which HubSpot sends without it (§1.7).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

PROPERTY_VALUES_PREFIX = "Property values were not valid: "


def correlation_id() -> str:
    """A fresh correlation id, a UUID as HubSpot sends (§1.8)."""
    return str(uuid.uuid4())


def error_body(message: str, category: str | None, **extra: Any) -> dict[str, Any]:
    """The top-level ``Error`` envelope (§1.8): status, message, correlationId, then category and extras."""
    body: dict[str, Any] = {"status": "error", "message": message, "correlationId": correlation_id()}
    body.update(extra)
    if category is not None:
        body["category"] = category
    return body


@dataclass(eq=False)
class ApiError(Exception):
    """An HTTP error answer: raised by request handlers, turned into a JSON response by the server."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, status: int, message: str, category: str | None, **extra: Any) -> ApiError:
        return cls(status, error_body(message, category, **extra))


@dataclass(frozen=True)
class PropertyError:
    """One invalid property value: an element of the ``Property values were not valid`` array (§1.7)."""

    name: str
    code: str
    message: str

    def legacy_item(self, portal_id: int) -> dict[str, Any]:
        return {
            "isValid": False,
            "message": self.message,
            "error": self.code,
            "name": self.name,
            "localizedErrorMessage": self.message,
            "portalId": portal_id,
        }

    def detail(self) -> dict[str, Any]:
        return {"message": self.message, "code": self.code, "context": {"propertyName": [self.name]}}


def property_values_message(errors: list[PropertyError], portal_id: int) -> str:
    # source: hubspot-api.md §1.7: "Property values were not valid: " + a JSON array string
    items = [e.legacy_item(portal_id) for e in errors]
    return PROPERTY_VALUES_PREFIX + json.dumps(items, separators=(",", ":"))


def property_values_error(errors: list[PropertyError], portal_id: int) -> ApiError:
    """The whole-request 400 for invalid property values, every invalid property listed (§1.7)."""
    return ApiError.of(
        400,
        property_values_message(errors, portal_id),
        "VALIDATION_ERROR",
        errors=[e.detail() for e in errors],
    )


def standard_error(
    category: str, message: str, context: dict[str, list[str]], errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A ``StandardError``: an item of a 207 answer's ``errors[]`` (§1.4, §1.8).

    The spec marks ``errors`` and ``links`` required; real answers often omit them. They are sent (empty
    unless given) so that HubSpot's generated SDKs, which enforce the spec, accept the answer.
    """
    return {
        "status": "error",
        "category": category,
        "message": message,
        "context": context,
        "errors": errors or [],
        "links": {},
    }


def invalid_json(line: int, column: int, detail: str) -> ApiError:
    # source: hubspot-api.md §1.7 "Malformed JSON body": only status, message, correlationId
    return ApiError.of(400, f"Invalid input JSON on line {line}, column {column}: {detail}", None)


def non_unique_id_property(name: str, portal_id: int) -> ApiError:
    # source: hubspot-api.md §1.2 (captured text; contacts are objectTypeId 0-1)
    return ApiError.of(
        400,
        f"Unable to perform update/upsert by non-unique 0-1 property {name} in portal ID {portal_id}",
        "VALIDATION_ERROR",
    )


def too_many_inputs() -> ApiError:
    # source: hubspot-api.md §1.4 (exact captured text)
    return ApiError.of(
        400,
        "The maximum number of inputs supported in a batch is 100. Please reduce the number of items and try again",
        "VALIDATION_ERROR",
    )


def duplicate_ids(ids: list[str]) -> ApiError:
    # source: hubspot-api.md §1.5: Java list formatting "[a, b]" and context.ids
    return ApiError.of(
        400,
        f"Duplicate IDs found in batch input: [{', '.join(ids)}]. IDs must be unique",
        "VALIDATION_ERROR",
        context={"ids": ids},
    )


def not_found_in_batch(ids: list[str]) -> dict[str, Any]:
    # source: hubspot-api.md §1.4: missing ids of batch/read and batch/update grouped into one error
    return standard_error(
        "OBJECT_NOT_FOUND",
        "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid.",
        {"ids": ids},
    )

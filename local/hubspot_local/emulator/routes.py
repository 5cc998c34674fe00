"""The HubSpot endpoints the emulator serves: paths, required scopes and handlers.

Paths are served under ``/crm/v3/...`` and aliased under the dated versions (``/crm/objects/2025-09/...``,
``/crm/properties/2025-09/...``), whose shapes are the same (hubspot-api.md, general conventions). The
object type may be written ``contacts`` or ``0-1`` (§2.1).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from . import contacts
from .errors import ApiError, standard_error
from .portal import CUSTOM_PROPERTY_LIMIT, Portal
from .request import Request
from .search import search_contacts
from .validation import iso_ms

# source: hubspot-api.md §4 "Scopes the client needs"; §2.1 property reads accept either read scope.
READ_CONTACTS = ("crm.objects.contacts.read",)
WRITE_CONTACTS = ("crm.objects.contacts.write",)
READ_SCHEMAS = ("crm.objects.contacts.read", "crm.schemas.contacts.read")
WRITE_SCHEMAS = ("crm.schemas.contacts.write",)

_OBJECTS = r"/crm/(?:v3/objects|objects/\d{4}-\d{2})/(?:contacts|0-1)"
_PROPERTIES = r"/crm/(?:v3/properties|properties/\d{4}-\d{2})/(?:contacts|0-1)"
_LIMITS = r"/crm/(?:v3/limits|limits/\d{4}-\d{2})/custom-properties"

Handler = Callable[..., contacts.Answer]


@dataclass(frozen=True)
class Route:
    """One endpoint: ``scopes`` lists the scopes any one of which allows the call (§4, 403 body)."""

    method: str
    pattern: re.Pattern[str]
    scopes: tuple[str, ...]
    handler: Handler
    search: bool = False


def _list_properties(portal: Portal, req: Request) -> contacts.Answer:
    # source: §2.1 200 {"results": [...]}, no paging; `archived=true` lists archived ones (none here)
    with portal.lock:
        archived = req.param("archived") == "true"
        return 200, {"results": [] if archived else list(portal.properties.values())}


def _get_property(portal: Portal, _req: Request, name: str) -> contacts.Answer:
    with portal.lock:
        return 200, portal.get_property(name)


def _create_property(portal: Portal, req: Request) -> contacts.Answer:
    return 201, portal.create_property(req.body)  # source: §2.1 201 Property


def _update_property(portal: Portal, req: Request, name: str) -> contacts.Answer:
    return 200, portal.update_property(name, req.body)


def _batch_create_properties(portal: Portal, req: Request) -> contacts.Answer:
    """source: §2.1 batch/create: 201 ``{status, results, startedAt, completedAt}``, 207 with errors."""
    started = iso_ms(datetime.now(UTC))
    inputs = req.body.get("inputs") if isinstance(req.body, dict) else None
    if not isinstance(inputs, list):
        raise ApiError.of(400, "'inputs' must be a list of property definitions", "VALIDATION_ERROR")
    results, errors = [], []
    for item in inputs:
        try:
            results.append(portal.create_property(item))
        except ApiError as exc:
            name = item.get("name") if isinstance(item, dict) else None
            errors.append(standard_error(exc.body["category"], exc.body["message"], {"name": [str(name)]}))
    body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": started}
    body["completedAt"] = iso_ms(datetime.now(UTC))
    if errors:
        return 207, {**body, "numErrors": len(errors), "errors": errors}
    return 201, body


def _list_groups(portal: Portal, _req: Request) -> contacts.Answer:
    with portal.lock:
        return 200, {"results": list(portal.groups.values())}


def _get_group(portal: Portal, _req: Request, name: str) -> contacts.Answer:
    with portal.lock:
        return 200, portal.get_group(name)


def _create_group(portal: Portal, req: Request) -> contacts.Answer:
    return 201, portal.create_group(req.body)  # source: §2.4 201


def _custom_property_limits(portal: Portal, _req: Request) -> contacts.Answer:
    """source: §2.5 ``GET /crm/v3/limits/custom-properties`` (contacts only)."""
    with portal.lock:
        usage = portal.custom_property_count()
    percentage = round(100 * usage / CUSTOM_PROPERTY_LIMIT, 2)
    return 200, {
        "byObjectType": [
            {
                "objectTypeId": "0-1",
                "pluralLabel": "Contacts",
                "singularLabel": "Contact",
                "limit": CUSTOM_PROPERTY_LIMIT,
                "usage": usage,
                "percentage": percentage,
            }
        ],
        "overallLimit": CUSTOM_PROPERTY_LIMIT,
        "overallUsage": usage,
        "overallPercentage": percentage,
    }


def _route(method: str, path: str, scopes: tuple[str, ...], handler: Handler, *, search: bool = False) -> Route:
    return Route(method, re.compile(f"^{path}$"), scopes, handler, search)


# Order matters: fixed segments (groups, batch) before the `{name}` catch-alls.
ROUTES: tuple[Route, ...] = (
    _route("GET", _PROPERTIES + "/groups", READ_SCHEMAS, _list_groups),
    _route("POST", _PROPERTIES + "/groups", WRITE_SCHEMAS, _create_group),
    _route("GET", _PROPERTIES + r"/groups/(?P<name>[^/]+)", READ_SCHEMAS, _get_group),
    _route("POST", _PROPERTIES + "/batch/create", WRITE_SCHEMAS, _batch_create_properties),
    _route("GET", _PROPERTIES, READ_SCHEMAS, _list_properties),
    _route("POST", _PROPERTIES, WRITE_SCHEMAS, _create_property),
    _route("GET", _PROPERTIES + r"/(?P<name>[^/]+)", READ_SCHEMAS, _get_property),
    _route("PATCH", _PROPERTIES + r"/(?P<name>[^/]+)", WRITE_SCHEMAS, _update_property),
    _route("POST", _OBJECTS + "/batch/upsert", WRITE_CONTACTS, contacts.batch_upsert),
    _route("POST", _OBJECTS + "/batch/update", WRITE_CONTACTS, contacts.batch_update),
    _route("POST", _OBJECTS + "/batch/read", READ_CONTACTS, contacts.batch_read),
    _route("POST", _OBJECTS + "/search", READ_CONTACTS, search_contacts, search=True),
    _route("POST", _OBJECTS, WRITE_CONTACTS, contacts.create_contact),
    _route("GET", _OBJECTS + r"/(?P<contact_id>[^/]+)", READ_CONTACTS, contacts.read_contact),
    _route("GET", _LIMITS, READ_SCHEMAS, _custom_property_limits),
)


def match(method: str, path: str) -> tuple[Route, dict[str, str]]:
    """The route for ``method`` and ``path``; a JSON 404 for an unknown path, 405 for a wrong method."""
    allowed = []
    for route in ROUTES:
        found = route.pattern.match(path)
        if found is None:
            continue
        if route.method == method:
            return route, {k: unquote(v) for k, v in found.groupdict().items()}
        allowed.append(route.method)
    if allowed:
        error = ApiError.of(405, f"Method {method} is not allowed on {path}", "VALIDATION_ERROR")
        error.headers["Allow"] = ", ".join(sorted(set(allowed)))
        raise error
    # UNCONFIRMED body: HubSpot's edge answers unknown paths with a 404; the emulator always sends JSON.
    raise ApiError.of(404, f"No HubSpot endpoint at {method} {path} in this emulator", "OBJECT_NOT_FOUND")

"""Contact endpoints: batch upsert, batch read, batch update, single create and single read.

Semantics follow hubspot-api.md §1.2 to §1.7; each rule carries its source next to it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .errors import (
    ApiError,
    PropertyError,
    duplicate_ids,
    invalid_json,
    non_unique_id_property,
    not_found_in_batch,
    property_values_error,
    property_values_message,
    standard_error,
    too_many_inputs,
)
from .portal import SYSTEM_PROPERTIES, Contact, Portal
from .request import Request
from .validation import MAX_NAME_LENGTH, iso_ms, normalize_email

MAX_BATCH_INPUTS = 100  # source: hubspot-api.md §1.4
RECORD_ID = "hs_object_id"

Answer = tuple[int, dict[str, Any]]


def _bad_shape(message: str) -> ApiError:
    # Bodies that cannot be mapped onto HubSpot's input classes; the exact Jackson text is not reproduced.
    return ApiError.of(400, message, "VALIDATION_ERROR")


def _require_object(req: Request) -> dict[str, Any]:
    if req.body is None:
        raise invalid_json(1, 1, "No content to map due to end-of-input")
    if not isinstance(req.body, dict):
        raise _bad_shape("The request body must be a JSON object")
    return req.body


def _batch_inputs(req: Request) -> list[dict[str, Any]]:
    inputs = _require_object(req).get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        raise _bad_shape("'inputs' must be a list of objects")
    if len(inputs) > MAX_BATCH_INPUTS:
        raise too_many_inputs()  # source: §1.4, exact text
    return inputs


def _input_id(item: dict[str, Any]) -> str:
    value = item.get("id")
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise _bad_shape("Every input needs an 'id'")
    return str(value)


def _property_values(item: dict[str, Any], req: Request) -> dict[str, str]:
    """An input's ``properties`` as strings, HubSpot's value type (reference, general conventions).

    JSON numbers and booleans are turned into their text, as HubSpot's JSON mapper does; ``null`` is
    taken as ``""`` (clear). Both are UNCONFIRMED; clients should send strings.
    """
    raw = item.get("properties")
    if not isinstance(raw, dict):
        raise _bad_shape("Every input needs a 'properties' object")
    bad_names = [n for n in raw if n != n.lower() or len(n) > MAX_NAME_LENGTH]
    if bad_names:
        # source: §1.7 "Mixed-case or too-long property name in a write" (captured text, no category)
        line, column = req.position_of(f'"{bad_names[0]}"')
        raise invalid_json(
            line,
            column,
            "Cannot construct instance of SimplePublicObjectInput, problem: Names for properties should be "
            f"lowercase and have less than {MAX_NAME_LENGTH} characters. Invalid names: [{', '.join(bad_names)}]",
        )
    values = {}
    for name, value in raw.items():
        if isinstance(value, dict | list):
            raise _bad_shape(f"The value of property {name} must be a string")
        if isinstance(value, bool):
            value = "true" if value else "false"
        values[name] = "" if value is None else str(value)
    return values


def _reject_duplicates(keys: list[str]) -> None:
    """source: §1.5: a repeated id fails the whole request with 400, even with trace ids."""
    seen: set[str] = set()
    repeated: dict[str, None] = {}
    for key in keys:
        if key in seen:
            repeated[key] = None
        seen.add(key)
    if repeated:
        raise duplicate_ids(list(repeated))


def _partial_mode(inputs: list[dict[str, Any]]) -> bool:
    """source: §1.4: per-input success (207) only when every input carries a unique objectWriteTraceId.

    Inputs with missing or repeated trace ids are handled all-or-nothing (UNCONFIRMED; the safe reading).
    """
    traces = [i.get("objectWriteTraceId") for i in inputs]
    return all(isinstance(t, str) and t for t in traces) and len(set(traces)) == len(traces)


def _validation_failure(errors: list[PropertyError], trace_id: str, portal_id: int) -> dict[str, Any]:
    # source: §1.4 documented 207 item: VALIDATION_ERROR with context.objectWriteTraceId
    return standard_error(
        "VALIDATION_ERROR",
        property_values_message(errors, portal_id),
        {"objectWriteTraceId": [trace_id]},
        errors=[e.detail() for e in errors],
    )


def _written(contact: Contact, sent: dict[str, str], trace_id: str | None) -> dict[str, Any]:
    """A write result: the properties sent (as stored) plus system fields (§1.2, UNCONFIRMED in detail)."""
    result = contact.view([])
    result["properties"] = {
        **{name: contact.properties.get(name, "") for name in sent},
        **{name: contact.properties[name] for name in SYSTEM_PROPERTIES},
    }
    if trace_id is not None:
        result["objectWriteTraceId"] = trace_id
    return result


def _answer(ok_status: int, results: list[dict[str, Any]], errors: list[dict[str, Any]], started: str) -> Answer:
    """A batch answer; 207 with numErrors/errors when anything failed (§1.2, §1.4).

    source: §1.2 the order of results is not guaranteed; the emulator answers in reverse input order so
    that clients matching by position fail in tests.
    """
    body: dict[str, Any] = {
        "status": "COMPLETE",
        "results": results[::-1],
        "startedAt": started,
        "completedAt": iso_ms(datetime.now(UTC)),
    }
    if not errors:
        return ok_status, body
    body["numErrors"] = len(errors)
    body["errors"] = errors
    return 207, body


def _apply(
    portal: Portal,
    planned: list[tuple[dict[str, Any], Contact | None, dict[str, str], list[PropertyError]]],
    partial: bool,
    *,
    upsert: bool,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Write the valid inputs. Without partial mode one invalid input fails the request (§1.4)."""
    if not partial and any(errors for *_, errors in planned):
        raise property_values_error([e for *_, errors in planned for e in errors], portal.portal_id)
    results, failures = [], []
    for item, contact, values, errors in planned:
        trace_id = item.get("objectWriteTraceId")
        if errors:
            failures.append(_validation_failure(errors, trace_id, portal.portal_id))
            continue
        written = portal.write(contact, values)
        result = _written(written, values, trace_id)
        if upsert:
            result["new"] = contact is None  # source: §1.2 `new` true on create, false on update
        results.append(result)
    return results, failures


def batch_upsert(portal: Portal, req: Request) -> Answer:
    """``POST /crm/v3/objects/contacts/batch/upsert`` (§1.2)."""
    started = iso_ms(datetime.now(UTC))
    inputs = _batch_inputs(req)
    keyed = []
    for item in inputs:
        # source: §1.2 idProperty goes on each input; newer docs also allow it as a query parameter.
        # Without one, the id is a record id (hs_object_id), which cannot key an upsert (UNCONFIRMED).
        id_property = item.get("idProperty") or req.param("idProperty") or RECORD_ID
        if not portal.is_unique(id_property):
            raise non_unique_id_property(id_property, portal.portal_id)  # source: §1.2
        raw_id = _input_id(item)
        # source: §1.5/§1.6 emails compared lower-cased (case-insensitive duplicates are UNCONFIRMED)
        keyed.append((id_property, raw_id, normalize_email(raw_id) if id_property == "email" else raw_id))
    values_list = [_property_values(item, req) for item in inputs]
    _reject_duplicates([key for *_, key in keyed])
    partial = _partial_mode(inputs)
    with portal.lock:
        planned = []
        claimed: dict[tuple[str, str], int] = {}
        for index, (item, (id_property, raw_id, key), values) in enumerate(
            zip(inputs, keyed, values_list, strict=True)
        ):
            contact = portal.find(id_property, key)
            if contact is None:
                # UNCONFIRMED (§1.2) whether the id is copied into a new record; the emulator copies it.
                values.setdefault(id_property, raw_id)
            stored, errors = portal.check_values(values, contact)
            errors += portal.unique_conflicts(stored, contact.id if contact else -1 - index, claimed)
            planned.append((item, contact, stored, errors))
        results, failures = _apply(portal, planned, partial, upsert=True)
    return _answer(200, results, failures, started)


def batch_update(portal: Portal, req: Request) -> Answer:
    """``POST /crm/v3/objects/contacts/batch/update`` (§1.3): record ids, or a custom unique property."""
    started = iso_ms(datetime.now(UTC))
    inputs = _batch_inputs(req)
    keyed = []
    for item in inputs:
        id_property = item.get("idProperty") or RECORD_ID
        # source: §1.3 idProperty only for custom unique properties; "email" gives the non-unique 400.
        if id_property == "email" or (id_property != RECORD_ID and not portal.is_unique(id_property)):
            raise non_unique_id_property(id_property, portal.portal_id)
        keyed.append((id_property, _input_id(item)))
    values_list = [_property_values(item, req) for item in inputs]
    _reject_duplicates([key for _, key in keyed])
    partial = _partial_mode(inputs)
    with portal.lock:
        planned, missing = [], []
        claimed: dict[tuple[str, str], int] = {}
        for item, (id_property, key), values in zip(inputs, keyed, values_list, strict=True):
            contact = portal.find(id_property, key)
            if contact is None:
                missing.append(key)  # source: §1.3 an unknown (or non-numeric) id is OBJECT_NOT_FOUND in a 207
                continue
            stored, errors = portal.check_values(values, contact)
            errors += portal.unique_conflicts(stored, contact.id, claimed)
            planned.append((item, contact, stored, errors))
        results, failures = _apply(portal, planned, partial, upsert=False)
    if missing:
        failures.append(not_found_in_batch(missing))
    return _answer(200, results, failures, started)


def batch_read(portal: Portal, req: Request) -> Answer:
    """``POST /crm/v3/objects/contacts/batch/read`` (§1.3): record ids, or ``idProperty`` email/unique."""
    started = iso_ms(datetime.now(UTC))
    inputs = _batch_inputs(req)
    id_property = req.body.get("idProperty") or RECORD_ID
    if id_property != RECORD_ID and not portal.is_unique(id_property):
        raise non_unique_id_property(id_property, portal.portal_id)
    names = req.body.get("properties") or None
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise _bad_shape("'properties' must be a list of property names")
    results, missing, seen = [], [], set()
    with portal.lock:
        for item in inputs:
            key = _input_id(item)
            contact = portal.find(id_property, key)
            if contact is None:
                missing.append(key)
            elif contact.id not in seen:
                seen.add(contact.id)
                results.append(contact.view(names))
    # source: §1.4 missing ids grouped into one OBJECT_NOT_FOUND error in a 207
    return _answer(200, results, [not_found_in_batch(missing)] if missing else [], started)


def create_contact(portal: Portal, req: Request) -> Answer:
    """``POST /crm/v3/objects/contacts`` (§1.1): 201, or 409 when the email exists (§1.7)."""
    values = _property_values(_require_object(req), req)
    with portal.lock:
        existing = portal.find("email", values["email"]) if values.get("email") else None
        if existing is not None:
            # source: §1.7 "Create with an existing email": 409, "Contact already exists. Existing ID: N",
            # category CONFLICT with "error": "CONTACT_EXISTS"; the errors[] item is the newer form.
            raise ApiError.of(
                409,
                f"Contact already exists. Existing ID: {existing.id}",
                "CONFLICT",
                error="CONTACT_EXISTS",
                errors=[
                    {
                        "message": f"A contact with email {values['email']} already exists. Existing ID: {existing.id}",
                        "in": "email",
                    }
                ],
            )
        stored, errors = portal.check_values(values, None)
        errors += portal.unique_conflicts(stored, -1, {})
        if errors:
            raise property_values_error(errors, portal.portal_id)
        contact = portal.write(None, stored)
        return 201, contact.view(list(contact.properties))


def read_contact(portal: Portal, req: Request, contact_id: str) -> Answer:
    """``GET /crm/v3/objects/contacts/{id}`` with optional ``idProperty`` and ``properties`` (§1.1)."""
    id_property = req.param("idProperty") or RECORD_ID
    if id_property != RECORD_ID and not portal.is_unique(id_property):
        raise non_unique_id_property(id_property, portal.portal_id)
    with portal.lock:
        contact = portal.find(id_property, contact_id)
        if contact is None:
            # UNCONFIRMED body; category OBJECT_NOT_FOUND (§1.8).
            raise ApiError.of(
                404, f"Object not found. objectId: {contact_id}", "OBJECT_NOT_FOUND", context={"id": [contact_id]}
            )
        return 200, contact.view(req.params("properties") or None)

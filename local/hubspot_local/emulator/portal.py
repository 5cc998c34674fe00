"""One HubSpot portal's state: contact property definitions, property groups and contacts.

The Properties API rules live here (hubspot-api.md §2), together with the contact primitives the contact
endpoints build on (lookup by a unique property, value checks, writes). Every method is called with
``Portal.lock`` held by the caller or takes it itself; the server serves requests on several threads.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .defaults import DEFAULT_GROUPS, default_properties
from .errors import ApiError, PropertyError
from .validation import (
    MAX_UNIQUE_PROPERTIES,
    check_definition,
    check_property_name,
    coerce_value,
    iso_ms,
    normalize_email,
    normalize_options,
    read_only_error,
)

# UNCONFIRMED (hubspot-api.md §2.5): the commonly cited limit of 1,000 custom properties per object.
CUSTOM_PROPERTY_LIMIT = 1000
FIRST_RECORD_ID = 1001
SYSTEM_PROPERTIES = ("hs_object_id", "createdate", "lastmodifieddate")
# source: §1.3 batch/read "With none requested, contacts return the defaults firstname, lastname and email"
DEFAULT_READ_PROPERTIES = ("firstname", "lastname", "email")
# Fields a Properties API create or update may set (§2.3); anything else in the body is ignored.
_WRITABLE_FIELDS = (
    "label",
    "type",
    "fieldType",
    "groupName",
    "description",
    "options",
    "displayOrder",
    "hidden",
    "formField",
    "calculationFormula",
    "referencedObjectType",
    "dataSensitivity",
    "numberDisplayHint",
    "textDisplayHint",
    "dateDisplayHint",
    "currencyPropertyName",
    "showCurrencySymbol",
)
_REQUIRED_CREATE_FIELDS = ("name", "label", "type", "fieldType", "groupName")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Contact:
    """A contact record: all its property values plus the time each property was last written."""

    id: int
    created_at: datetime
    updated_at: datetime
    properties: dict[str, str] = field(default_factory=dict)
    property_updated_at: dict[str, str] = field(default_factory=dict)

    def view(self, names: Iterable[str] | None) -> dict[str, Any]:
        """The ``SimplePublicObject`` answer: requested properties that have a value, plus system fields.

        source: hubspot-api.md §1.3 (a requested property without a value is left out; no list asked for
        means firstname, lastname, email). System fields are always included (UNCONFIRMED in detail).
        """
        wanted = [*(DEFAULT_READ_PROPERTIES if names is None else names), *SYSTEM_PROPERTIES]
        props = {n: self.properties[n] for n in wanted if n in self.properties}
        return {
            "id": str(self.id),
            "properties": props,
            "createdAt": iso_ms(self.created_at),
            "updatedAt": iso_ms(self.updated_at),
            "archived": False,
        }

    def emails(self) -> list[str]:
        """Primary and secondary (``hs_additional_emails``, ``;``-separated) addresses, lower-cased."""
        found = [self.properties.get("email", "")]
        found += self.properties.get("hs_additional_emails", "").split(";")
        return [normalize_email(e.strip()) for e in found if e.strip()]


class Portal:
    """A HubSpot portal: properties and groups (Properties API, §2) and contacts (§1)."""

    def __init__(self, portal_id: int) -> None:
        self.portal_id = portal_id
        self.lock = threading.RLock()
        self.groups: dict[str, dict[str, Any]] = {g["name"]: dict(g) for g in DEFAULT_GROUPS}
        self.properties: dict[str, dict[str, Any]] = {p["name"]: p for p in default_properties()}
        self.contacts: dict[int, Contact] = {}
        self._next_id = FIRST_RECORD_ID
        self._by_email: dict[str, int] = {}

    # ---- pre-loading (the --portal file, README, "Local tools") ----

    def preload(self, data: dict[str, Any]) -> None:
        """Load groups, property objects and contacts; ``ValueError`` on anything HubSpot could not hold."""
        try:
            for group in data.get("groups", []):
                self.create_group(group)
            for prop in data.get("properties", []):
                self._preload_property(prop)
            for item in data.get("contacts", []):
                self._preload_contact(item)
        except ApiError as exc:
            raise ValueError(f"invalid portal data: {exc.body['message']}") from exc

    def _preload_property(self, raw: dict[str, Any]) -> None:
        raw = {"label": raw["name"], "groupName": "contactinformation", **raw}
        name = raw["name"]
        group = raw.get("groupName")
        if isinstance(group, str) and group not in self.groups:
            # Exports of real properties name groups the file may not list: create them.
            self.create_group({"name": group, "label": group})
        if raw.get("hubspotDefined") or name in self.properties:
            # A HubSpot-defined property (or a redefinition) replaces the built-in definition.
            prop = {**self.properties.get(name, self._new_property(raw, _now())), **copy.deepcopy(raw)}
            prop["options"] = normalize_options(prop.get("options", []))
            check_definition(prop, set(self.groups))
            self.properties[name] = prop
        else:
            self.create_property(
                {k: v for k, v in raw.items() if k in (*_REQUIRED_CREATE_FIELDS, *_WRITABLE_FIELDS)}
                | {"hasUniqueValue": raw.get("hasUniqueValue", False)}
            )
            kept = ("calculated", "modificationMetadata", "createdAt", "updatedAt")
            self.properties[name].update({k: copy.deepcopy(raw[k]) for k in kept if k in raw})

    def _preload_contact(self, item: dict[str, Any]) -> None:
        values = {k: "" if v is None else str(v) for k, v in item["properties"].items()}
        record_id = item.get("id", values.pop("hs_object_id", None))  # the record id is set by write()
        if record_id is not None and (not str(record_id).isdigit() or int(record_id) in self.contacts):
            raise ValueError(f"invalid portal data: contact id {record_id!r} is not a new numeric id")
        normalized, errors = self.check_values(values, None, enforce_read_only=False)
        if errors:
            raise ValueError(f"invalid portal data: contact {values.get('email', record_id)}: {errors[0].message}")
        for address in Contact(0, _now(), _now(), normalized).emails():
            if address in self._by_email:
                raise ValueError(f"invalid portal data: email {address} is on two contacts")
        if record_id is not None:
            self._next_id = max(self._next_id, int(record_id) + 1)
        contact = self.write(None, normalized, record_id=None if record_id is None else int(record_id))
        if "createdate" in normalized:
            contact.created_at = datetime.fromisoformat(normalized["createdate"])

    # ---- inspection ----

    def snapshot(self) -> dict[str, Any]:
        """Contacts (all properties, per-property update times), custom properties, custom groups."""
        default_groups = {g["name"] for g in DEFAULT_GROUPS}
        with self.lock:
            return {
                "contacts": [
                    {
                        "id": str(c.id),
                        "properties": dict(c.properties),
                        "createdAt": iso_ms(c.created_at),
                        "updatedAt": iso_ms(c.updated_at),
                        "propertyUpdatedAt": dict(c.property_updated_at),
                    }
                    for c in sorted(self.contacts.values(), key=lambda c: c.id)
                ],
                "properties": [copy.deepcopy(p) for p in self.properties.values() if not p.get("hubspotDefined")],
                "groups": [dict(g) for n, g in self.groups.items() if n not in default_groups],
            }

    def custom_property_count(self) -> int:
        return sum(1 for p in self.properties.values() if not p.get("hubspotDefined"))

    # ---- Properties API (§2) ----

    def get_property(self, name: str) -> dict[str, Any]:
        prop = self.properties.get(name)
        if prop is None:
            # UNCONFIRMED wording; category OBJECT_NOT_FOUND (§1.8).
            raise ApiError.of(404, f"Property {name} does not exist", "OBJECT_NOT_FOUND")
        return prop

    def _new_property(self, body: dict[str, Any], now: datetime) -> dict[str, Any]:
        prop: dict[str, Any] = {
            "name": body["name"],
            "description": "",
            "options": [],
            "displayOrder": -1,
            "hidden": False,
            "formField": False,
            "hasUniqueValue": bool(body.get("hasUniqueValue", False)),
            "calculated": False,
            "externalOptions": False,
            "hubspotDefined": False,
            "archived": False,
            "createdAt": iso_ms(now),
            "updatedAt": iso_ms(now),
            "modificationMetadata": {
                "archivable": True,
                "readOnlyDefinition": False,
                "readOnlyOptions": False,
                "readOnlyValue": False,
            },
        }
        prop.update({k: copy.deepcopy(body[k]) for k in _WRITABLE_FIELDS if k in body})
        prop["options"] = normalize_options(prop["options"])
        return prop

    def create_property(self, body: Any) -> dict[str, Any]:
        """``POST /crm/v3/properties/contacts`` (§2.3): 201 with the property, 400 or 409 otherwise."""
        if not isinstance(body, dict):
            raise ApiError.of(400, "A property definition must be a JSON object", "VALIDATION_ERROR")
        missing = [f for f in _REQUIRED_CREATE_FIELDS if not isinstance(body.get(f), str) or not body.get(f)]
        if missing:
            # source: §2.3 required fields; UNCONFIRMED wording.
            raise ApiError.of(400, f"Missing required fields: {missing}", "VALIDATION_ERROR")
        check_property_name(body["name"])
        with self.lock:
            if body["name"] in self.properties:
                # source: §2.3 "Already exists" (composed 409 body, UNCONFIRMED message)
                raise ApiError.of(409, f"Property named '{body['name']}' already exists.", "OBJECT_ALREADY_EXISTS")
            prop = self._new_property(body, _now())
            check_definition(prop, set(self.groups))
            if prop["hasUniqueValue"] and self._unique_count() >= MAX_UNIQUE_PROPERTIES:
                # source: §2.3 "at most 10 per object"; UNCONFIRMED wording.
                raise ApiError.of(
                    400, f"At most {MAX_UNIQUE_PROPERTIES} unique value properties per object", "VALIDATION_ERROR"
                )
            if self.custom_property_count() >= CUSTOM_PROPERTY_LIMIT:
                # source: §2.5 (limit UNCONFIRMED; wording UNCONFIRMED)
                raise ApiError.of(
                    400,
                    f"You have reached the limit of {CUSTOM_PROPERTY_LIMIT} custom properties for contacts",
                    "VALIDATION_ERROR",
                )
            self.properties[prop["name"]] = prop
            return prop

    def _unique_count(self) -> int:
        return sum(1 for p in self.properties.values() if p.get("hasUniqueValue"))

    def update_property(self, name: str, body: Any) -> dict[str, Any]:
        """``PATCH /crm/v3/properties/contacts/{name}`` (§2.1): fields replaced, ``options`` as a whole list.

        Replacing the whole option list is UNCONFIRMED (§2.3) and is what the emulator does.
        """
        if not isinstance(body, dict):
            raise ApiError.of(400, "A property update must be a JSON object", "VALIDATION_ERROR")
        with self.lock:
            prop = self.get_property(name)
            if prop["modificationMetadata"].get("readOnlyDefinition"):
                raise ApiError.of(400, f"Property {name} has a read-only definition", "VALIDATION_ERROR")
            if "hasUniqueValue" in body and bool(body["hasUniqueValue"]) != prop["hasUniqueValue"]:
                # source: §2.3 hasUniqueValue "cannot be changed later"
                raise ApiError.of(400, "hasUniqueValue cannot be changed", "VALIDATION_ERROR")
            updated = {**prop, **{k: copy.deepcopy(body[k]) for k in _WRITABLE_FIELDS if k in body}}
            updated["options"] = normalize_options(updated["options"])
            check_definition(updated, set(self.groups))
            updated["updatedAt"] = iso_ms(_now())
            self.properties[name] = updated
            return updated

    def create_group(self, body: Any) -> dict[str, Any]:
        """``POST /crm/v3/properties/contacts/groups`` (§2.4): 201, or 409 when the name exists."""
        if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in ("name", "label")):
            # source: §2.4 "Create requires name and label"
            raise ApiError.of(400, "A property group needs a string name and label", "VALIDATION_ERROR")
        check_property_name(body["name"])
        with self.lock:
            if body["name"] in self.groups:
                # source: §2.4 conflict UNCONFIRMED ("likely 409, like properties")
                raise ApiError.of(
                    409, f"Property group named '{body['name']}' already exists.", "OBJECT_ALREADY_EXISTS"
                )
            order = body.get("displayOrder", -1)
            group = {"name": body["name"], "label": body["label"], "displayOrder": order, "archived": False}
            self.groups[group["name"]] = group
            return group

    def get_group(self, name: str) -> dict[str, Any]:
        group = self.groups.get(name)
        if group is None:
            raise ApiError.of(404, f"Property group {name} does not exist", "OBJECT_NOT_FOUND")
        return group

    # ---- contacts (§1) ----

    def is_unique(self, name: str) -> bool:
        """Whether ``name`` may be an ``idProperty`` for upsert/update/read: email or hasUniqueValue (§1.2)."""
        prop = self.properties.get(name)
        return name == "email" or bool(prop and prop.get("hasUniqueValue"))

    def find(self, id_property: str, value: str) -> Contact | None:
        """The contact whose ``id_property`` equals ``value``.

        ``hs_object_id`` means record ids (numeric strings). Emails are matched lower-cased, against the
        primary address and ``hs_additional_emails`` (§1.6).
        """
        if id_property == "hs_object_id":
            return self.contacts.get(int(value)) if value.isdigit() else None
        if id_property == "email":
            owner = self._by_email.get(normalize_email(value))
            return None if owner is None else self.contacts[owner]
        return next((c for c in self.contacts.values() if c.properties.get(id_property) == value), None)

    def check_values(
        self, values: dict[str, str], contact: Contact | None, *, enforce_read_only: bool = True
    ) -> tuple[dict[str, str], list[PropertyError]]:
        """Validate every value (§1.7, §6.4), returning the values to store and every error found."""
        stored: dict[str, str] = {}
        errors: list[PropertyError] = []
        for name, value in values.items():
            prop = self.properties.get(name)
            if prop is None:
                # source: §1.7 PROPERTY_DOESNT_EXIST, exact text
                errors.append(PropertyError(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
                continue
            if enforce_read_only and (problem := read_only_error(prop)):
                errors.append(problem)
                continue
            existing = contact.properties.get(name) if contact else None
            stored[name], problem = coerce_value(prop, value, existing)
            if problem:
                errors.append(problem)
        return stored, errors

    def unique_conflicts(
        self, values: dict[str, str], own_id: int, claimed: dict[tuple[str, str], int]
    ) -> list[PropertyError]:
        """Unique values (email, hasUniqueValue properties) already held by another contact.

        ``own_id`` is the written contact's id (a distinct negative number for a contact to be created).
        ``claimed`` collects the values earlier inputs of the same batch take, keyed by (property, value),
        so that two inputs cannot take the same value either. Code and wording are UNCONFIRMED.
        """
        errors = []
        for name, value in values.items():
            if not value or not self.is_unique(name):
                continue
            holder = self.find(name, value)
            key = (name, normalize_email(value) if name == "email" else value)
            holder_id = holder.id if holder else claimed.get(key, own_id)
            if holder_id != own_id:
                message = f"{value} is already the value of {name} on contact {holder_id}"
                errors.append(PropertyError(name, "CONFLICTING_UNIQUE_VALUE", message))
            claimed[key] = own_id
        return errors

    def write(self, contact: Contact | None, values: dict[str, str], *, record_id: int | None = None) -> Contact:
        """Create (``contact`` None) or update a contact with checked values; ``""`` clears (§2.6)."""
        now = _now()
        stamp = iso_ms(now)
        if contact is None:
            if record_id is None:
                record_id = self._next_id
                self._next_id += 1
            contact = Contact(record_id, now, now)
            self.contacts[record_id] = contact
            values = {"hs_object_id": str(record_id), "createdate": stamp, **values}
        for address in contact.emails():
            self._by_email.pop(address, None)
        for name, value in {**values, "lastmodifieddate": stamp}.items():
            if value == "":
                contact.properties.pop(name, None)
            else:
                contact.properties[name] = value
            contact.property_updated_at[name] = stamp
        email = contact.properties.get("email")
        if email and "email" in values:
            # hs_email_domain is calculated by HubSpot from the email.
            contact.properties["hs_email_domain"] = email.rsplit("@", 1)[-1]
            contact.property_updated_at["hs_email_domain"] = stamp
        for address in contact.emails():
            self._by_email[address] = contact.id
        contact.updated_at = now
        return contact


def load_portal(path: str | Path) -> dict[str, Any]:
    """Read and validate a ``--portal`` file (README, "Local tools"), returning the portal dict.

    Shape: ``{"properties": [property objects as the Properties API returns them], "contacts":
    [{"properties": {"email": ..., ...}, "id"?: "<numeric>"}], "groups"?: [{"name", "label"}]}``. The
    content is also checked against HubSpot's rules (property types, values, unique emails) by loading it
    into a scratch portal. Raises ``ValueError`` with a readable reason.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the portal file: {exc}") from exc
    return parse_portal(text, str(path))


def parse_portal(text: str | bytes, where: str) -> dict[str, Any]:
    """Validate the contents of a ``--portal`` file as ``load_portal`` does; ``where`` names it in errors
    (``ValueError``)."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{where}: not valid JSON: {exc}") from exc
    check_portal_shape(data, where)
    Portal(0).preload(data)
    return data


def check_portal_shape(data: Any, where: str = "portal") -> None:
    """Structural check of portal pre-load data; ``ValueError`` naming the first problem."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: the top level must be a JSON object")
    unknown = set(data) - {"properties", "contacts", "groups"}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; expected properties, contacts, groups")
    for key in ("properties", "contacts", "groups"):
        items = data.get(key, [])
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ValueError(f"{where}: {key!r} must be a list of JSON objects")
    for i, prop in enumerate(data.get("properties", [])):
        for required in ("name", "type", "fieldType"):
            if not isinstance(prop.get(required), str):
                raise ValueError(f"{where}: properties[{i}] needs a string {required!r}")
    for i, contact in enumerate(data.get("contacts", [])):
        props = contact.get("properties")
        if not isinstance(props, dict):
            raise ValueError(f"{where}: contacts[{i}] needs a 'properties' object")
        bad = [k for k, v in props.items() if isinstance(v, dict | list)]
        if bad:
            raise ValueError(f"{where}: contacts[{i}].properties values must be strings, not {bad}")

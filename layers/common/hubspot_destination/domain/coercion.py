"""Attribute values coerced by the live HubSpot property definition, never by how a value looks.

Every record value HubSpot takes is a string (reference hubspot-api.md §2.6,
https://developers.hubspot.com/docs/api-reference/crm-properties-v3/guide#property-type-and-fieldtype-values):

| type / fieldType            | what we send                                                                |
|-----------------------------|-----------------------------------------------------------------------------|
| `string`, `phone_number`    | the exact text (`+1415…`, `02134` kept); numbers and booleans as text       |
| `number`                    | a plain decimal (`0.000014`, never `1.4e-05`); NaN, Infinity, `1,204` refused |
| `bool`, `booleancheckbox`   | `true`/`false` from true/false, 1/0, "true"/"false", "yes"/"no"             |
| `enumeration` select/radio  | an option's internal value (an option label is mapped to its value)         |
| `enumeration` checkbox      | option values joined with `;` (from a list or a `;`-separated string)       |
| `date`                      | epoch ms of the day at 00:00 UTC; a timestamp is first converted to UTC     |
| `datetime`                  | epoch ms; ISO 8601 with any AEP offset style (`Z`, `+0000`, `+00:00`), or epoch ms |

`""` clears a value of any type. Read-only and calculated properties cannot be written.
"""

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from pydantic import AwareDatetime, TypeAdapter, ValidationError

from hubspot_destination.hubspot.models import Property

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_BASIC_DATE = re.compile(r"^\d{8}$")  # ISO 8601 basic format, YYYYMMDD
_EPOCH_MS = re.compile(r"^-?\d{12,15}$")  # epoch milliseconds between 1973 and 33658
# Numbers HubSpot can hold: no more than 30 digits before or after the decimal point.
_MAX_EXPONENT = 30
# Dates HubSpot shows sensibly; outside this range a value is almost certainly a unit mistake.
_MIN_YEAR, _MAX_YEAR = 1900, 2200
_DATETIME = TypeAdapter(AwareDatetime)


class CoercionError(ValueError):
    """A value the property cannot hold. `code` is HubSpot's error code for it (e.g. `INVALID_OPTION`)."""

    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code = code


@dataclass(frozen=True)
class NumberFormat:
    """How numbers are rendered: `decimal_places` rounds (half to even) when set; `thousands_separator`
    is stripped from text only when set (an explicit locale choice), otherwise `1,204` is refused."""

    decimal_places: int | None = None
    thousands_separator: str | None = None


def _plain_decimal(value: Any, number_format: NumberFormat) -> str:
    if isinstance(value, bool):
        raise CoercionError("INVALID_NUMBER", "a boolean is not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise CoercionError("INVALID_NUMBER", "NaN and Infinity are not numbers")
    text = repr(value) if isinstance(value, float) else str(value).strip()
    if number_format.thousands_separator:
        text = text.replace(number_format.thousands_separator, "")
    if "," in text or "_" in text:
        raise CoercionError("INVALID_NUMBER", "the number has separators; send a plain decimal")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise CoercionError("INVALID_NUMBER", "not a number") from None
    if not number.is_finite():
        raise CoercionError("INVALID_NUMBER", "NaN and Infinity are not numbers")
    if number and abs(number.adjusted()) > _MAX_EXPONENT:
        raise CoercionError("INVALID_NUMBER", f"the number is out of range (more than {_MAX_EXPONENT} digits)")
    if number_format.decimal_places is not None:
        number = number.quantize(Decimal(1).scaleb(-number_format.decimal_places), rounding=ROUND_HALF_EVEN)
    rendered = format(number, "f")
    if "." in rendered:
        rendered = rendered.rstrip("0").rstrip(".")
    return "0" if rendered in ("-0", "") else rendered


def _boolean(value: Any) -> str:
    text = str(value).strip().lower()
    if isinstance(value, bool) or text in _TRUE | _FALSE:
        return "true" if (value is True or text in _TRUE) else "false"
    raise CoercionError("INVALID_BOOLEAN", "not a boolean (true/false, 1/0, yes/no)")


def _option(value: Any, prop: Property) -> str:
    text = _boolean(value) if isinstance(value, bool) else str(value).strip()
    for option in prop.options:
        if option.value == text:
            return text
    for option in prop.options:
        if option.label.lower() == text.lower():
            return option.value
    allowed = ", ".join(option.value for option in prop.options)
    raise CoercionError("INVALID_OPTION", f"not one of the allowed options: [{allowed}]")


def _timestamp(value: Any) -> datetime:
    """A moment from epoch ms (12 to 15 digits), `YYYY-MM-DD`, `YYYYMMDD` or ISO 8601 with an offset.

    Other numbers (epoch seconds, small integers) are refused rather than guessed, as are moments
    outside the years 1900-2200.
    """
    if isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
        raise CoercionError("INVALID_DATE", "not a date")
    text = str(int(value)) if isinstance(value, int | float) else str(value).strip()
    try:
        if _EPOCH_MS.match(text):
            moment = datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        elif _DATE_ONLY.match(text) or _BASIC_DATE.match(text):
            moment = datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
        elif re.fullmatch(r"-?\d+", text):
            raise CoercionError("INVALID_DATE", "a number that is not epoch milliseconds; send ms or ISO 8601")
        else:
            moment = _DATETIME.validate_python(text).astimezone(UTC)
    except (ValidationError, ValueError, OverflowError, OSError):
        raise CoercionError("INVALID_DATE", "not an ISO 8601 date or date-time with an offset, nor epoch ms") from None
    if not _MIN_YEAR <= moment.year <= _MAX_YEAR:
        raise CoercionError("INVALID_DATE", f"the date is outside the years {_MIN_YEAR}-{_MAX_YEAR}")
    return moment


def _epoch_ms(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1000))


def coerce(value: Any, prop: Property, number_format: NumberFormat = NumberFormat()) -> str:
    """Render one attribute value for a HubSpot property, as the string HubSpot expects.

    Args:
        value: the unwrapped attribute value (str, int, float, bool, or a list for checkboxes).
        prop: the property as the Properties API lists it (`type`, `fieldType`, `options`, ...).
        number_format: rounding and separator policy for `number` properties.

    Raises:
        CoercionError: with HubSpot's error code (`READ_ONLY_VALUE`, `INVALID_OPTION`, `INVALID_NUMBER`,
            `INVALID_BOOLEAN`, `INVALID_DATE`, `INVALID_VALUE`) and a detail.
    """
    if prop.read_only:
        raise CoercionError("READ_ONLY_VALUE", f"{prop.name!r} is a read-only or calculated property")
    if value == "":
        return ""
    kind, field_type = prop.type, prop.fieldType
    if kind == "enumeration" and field_type == "checkbox":
        items = value if isinstance(value, list) else [part for part in str(value).split(";") if part.strip()]
        if not items:
            raise CoercionError("INVALID_OPTION", 'no option values; send "" to clear')
        return ";".join(_option(item, prop) for item in items)
    if isinstance(value, list):
        raise CoercionError("INVALID_VALUE", f"a list cannot be written to the {kind} property {prop.name!r}")
    if kind == "bool" or field_type == "booleancheckbox":
        return _boolean(value)
    if kind == "enumeration":
        return _option(value, prop)
    if kind == "number":
        return _plain_decimal(value, number_format)
    if kind == "date":
        moment = _timestamp(value)
        return _epoch_ms(datetime.combine(moment.date(), datetime.min.time(), tzinfo=UTC))
    if kind == "datetime":
        return _epoch_ms(_timestamp(value))
    # string, phone_number and any type HubSpot adds later: the exact text.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _plain_decimal(value, NumberFormat())
    return str(value)

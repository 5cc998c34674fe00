"""``POST /crm/v3/objects/contacts/search`` (hubspot-api.md §1.9): filters, paging and its own limits.

Filter groups are OR-ed, filters inside a group AND-ed. String comparisons ignore case. ``EQ``/``IN`` on
``email`` also match ``hs_additional_emails`` (§1.6). ``sorts`` are not applied: results come in record-id
order. Records are searchable as soon as they are written (HubSpot's indexing delay is not emulated).
"""

from __future__ import annotations

import fnmatch
import re
from datetime import UTC, datetime
from typing import Any

from .errors import ApiError
from .portal import Contact, Portal
from .request import Request

# source: §1.9 limits
MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_FILTERS = 18
MAX_LIMIT = 200
DEFAULT_LIMIT = 10
MAX_QUERY_LENGTH = 3000
MAX_RESULTS = 10_000
OPERATORS = frozenset(
    {"EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY"}
    | {"CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"}
)
# Properties the free-text `query` looks in (HubSpot's default searchable contact properties).
QUERY_PROPERTIES = ("email", "firstname", "lastname", "phone", "company")


def _bad(message: str) -> ApiError:
    # UNCONFIRMED wording; search validation failures are 400 VALIDATION_ERROR.
    return ApiError.of(400, message, "VALIDATION_ERROR")


def _values(contact: Contact, name: str) -> list[str]:
    if name == "email":
        return contact.emails()
    value = contact.properties.get(name)
    return [] if value is None else [value]


def _comparable(prop: dict[str, Any], value: str) -> float | str:
    """Numbers compare as numbers, dates and datetimes as epoch milliseconds, the rest as lower-case text."""
    try:
        if prop["type"] == "number":
            return float(value)
        if prop["type"] in ("date", "datetime"):
            if value.lstrip("-").isdigit():
                return float(value)
            moment = datetime.fromisoformat(value)
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000
    except ValueError:
        pass
    return value.lower()


def _matches(portal: Portal, contact: Contact, flt: dict[str, Any]) -> bool:
    name, operator = flt.get("propertyName"), flt.get("operator", "EQ")
    if operator not in OPERATORS:
        raise _bad(f"Unknown filter operator {operator!r}")
    prop = portal.properties.get(name) if isinstance(name, str) else None
    if prop is None:
        raise _bad(f"Unknown property {name!r} in a search filter")
    have = _values(contact, name)
    if operator in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
        return bool(have) == (operator == "HAS_PROPERTY")
    targets = [str(v) for v in flt.get("values") or [flt.get("value", "")]]
    mine = [_comparable(prop, v) for v in have]
    wanted = [_comparable(prop, v) for v in targets]
    if operator in ("EQ", "IN"):
        return any(v in wanted for v in mine)
    if operator in ("NEQ", "NOT_IN"):
        return not any(v in wanted for v in mine)
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        pattern = targets[0].lower()
        tokens = [t for v in have for t in re.split(r"[\s,;]+", v.lower())]
        hit = any(fnmatch.fnmatchcase(t, pattern) for t in tokens)
        return hit == (operator == "CONTAINS_TOKEN")
    if not mine:
        return False
    value, low = mine[0], wanted[0]
    if type(value) is not type(low):
        return False
    if operator == "BETWEEN":
        high = _comparable(prop, str(flt.get("highValue", "")))
        return type(high) is type(value) and low <= value <= high
    return {"LT": value < low, "LTE": value <= low, "GT": value > low, "GTE": value >= low}[operator]


def search_contacts(portal: Portal, req: Request) -> tuple[int, dict[str, Any]]:
    """Filter, page and answer ``{"total", "results", "paging"?}`` (§1.9)."""
    body = req.body if req.body is not None else {}
    if not isinstance(body, dict):
        raise _bad("The request body must be a JSON object")
    groups = body.get("filterGroups") or []
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise _bad("'filterGroups' must be a list of objects")
    filters = [g.get("filters") or [] for g in groups]
    if (
        len(groups) > MAX_GROUPS
        or any(len(f) > MAX_FILTERS_PER_GROUP for f in filters)
        or sum(map(len, filters)) > MAX_FILTERS
    ):
        raise _bad(
            f"At most {MAX_GROUPS} filterGroups, {MAX_FILTERS_PER_GROUP} filters per group "
            f"and {MAX_FILTERS} filters in total"
        )
    limit, after = body.get("limit", DEFAULT_LIMIT), body.get("after", 0)
    query = body.get("query") or ""
    if not isinstance(limit, int) or not 0 < limit <= MAX_LIMIT:
        raise _bad(f"limit must be between 1 and {MAX_LIMIT}")
    if not str(after).isdigit() or int(after) + limit > MAX_RESULTS:
        raise _bad(f"Paging is limited to {MAX_RESULTS} results")
    if not isinstance(query, str) or len(query) > MAX_QUERY_LENGTH:
        raise _bad(f"query must be a string of at most {MAX_QUERY_LENGTH} characters")
    start = int(after)
    with portal.lock:
        found = [
            c
            for c in sorted(portal.contacts.values(), key=lambda c: c.id)
            if (not filters or any(all(_matches(portal, c, f) for f in group) for group in filters))
            and (not query or any(query.lower() in v.lower() for n in QUERY_PROPERTIES for v in _values(c, n)))
        ]
        page = [c.view(body.get("properties") or None) for c in found[start : start + limit]]
    answer: dict[str, Any] = {"total": len(found), "results": page}
    if start + limit < len(found):
        answer["paging"] = {"next": {"after": str(start + limit)}}
    return 200, answer

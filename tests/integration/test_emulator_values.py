"""Property value rules by type (hubspot-api.md §1.6, §1.7, §2.3, §2.6), one test per rule."""

from __future__ import annotations

import json

import pytest

UPSERT = "/crm/v3/objects/contacts/batch/upsert"
PREFIX = "Property values were not valid: "


def _prop(name: str, type_: str, field_type: str, options: list[str] | None = None) -> dict:
    prop = {"name": name, "label": name, "type": type_, "fieldType": field_type, "groupName": "contactinformation"}
    if options is not None:
        prop["options"] = [{"label": o.title(), "value": o} for o in options]
    return prop


TYPED_PORTAL = {
    "properties": [
        _prop("score", "number", "number"),
        _prop("opted_in", "bool", "booleancheckbox"),
        _prop("vip", "enumeration", "booleancheckbox", ["true", "false"]),
        _prop("tier", "enumeration", "select", ["gold", "silver"]),
        _prop("topics", "enumeration", "checkbox", ["news", "sales", "events"]),
        _prop("renewal_day", "date", "date"),
        _prop("last_seen", "datetime", "date"),
    ]
}


@pytest.fixture
def typed(start_emulator):
    """An emulator whose portal has one custom property of each type, and a writer for one value."""
    emulator, hubspot = start_emulator(portal=TYPED_PORTAL)

    def write(name: str, value: str, email: str = "ada@example.com", extra: dict | None = None):
        props = {"email": email, name: value, **(extra or {})}
        body = {"inputs": [{"idProperty": "email", "id": email, "properties": props}]}
        return hubspot("POST", UPSERT, body)

    write.emulator = emulator
    return write


def stored(write, name: str):
    [contact] = write.emulator.snapshot()["contacts"]
    return contact["properties"].get(name)


def codes(reply) -> list[str]:
    assert reply.status == 400, reply.body
    assert reply.body["message"].startswith(PREFIX)
    return [item["error"] for item in json.loads(reply.body["message"][len(PREFIX) :])]


def message(reply) -> str:
    return json.loads(reply.body["message"][len(PREFIX) :])[0]["message"]


def test_string_accepts_any_text(typed):
    assert typed("firstname", "  Ada  (the first) ").status == 200
    assert stored(typed, "firstname") == "  Ada  (the first) "


@pytest.mark.parametrize("value", ["x@yahoo.comtttt", '"quoted"@example.com', "no-at-sign", "a@b@example.com"])
def test_invalid_emails_are_rejected(typed, value):
    reply = typed("firstname", "Ada", email=value)
    assert codes(reply) == ["INVALID_EMAIL"]
    assert message(reply) == f"Email address {value} is invalid"


def test_email_on_a_real_new_tld_is_accepted(typed):
    assert typed("firstname", "Ada", email="x@test.design").status == 200


def test_number_accepts_plain_decimals_only(typed):
    assert typed("score", "-12.50").status == 200
    assert stored(typed, "score") == "-12.50"
    for bad in ("1e3", "12,5", "ten", "0x1F"):
        assert codes(typed("score", bad)) == ["INVALID_FLOAT"]


def test_bool_accepts_true_and_false_only(typed):
    assert typed("opted_in", "true").status == 200
    assert codes(typed("opted_in", "yes")) == ["INVALID_OPTION"]
    assert codes(typed("opted_in", "True")) == ["INVALID_OPTION"]


def test_booleancheckbox_enumeration_accepts_its_true_false_options(typed):
    assert typed("vip", "false").status == 200
    assert codes(typed("vip", "1")) == ["INVALID_OPTION"]


def test_select_accepts_internal_option_values_not_labels(typed):
    assert typed("tier", "gold").status == 200
    reply = typed("tier", "Gold")
    assert codes(reply) == ["INVALID_OPTION"]
    assert message(reply) == "Gold was not one of the allowed options: [gold, silver]"


def test_radio_default_lifecyclestage_uses_hubspots_internal_values(typed):
    assert typed("lifecyclestage", "marketingqualifiedlead").status == 200
    assert codes(typed("lifecyclestage", "Marketing Qualified Lead")) == ["INVALID_OPTION"]


def test_checkbox_checks_each_semicolon_separated_value(typed):
    assert typed("topics", "news;sales").status == 200
    assert stored(typed, "topics") == "news;sales"
    reply = typed("topics", "news;weather")
    assert codes(reply) == ["INVALID_OPTION"]
    assert message(reply).startswith("weather was not one of the allowed options")


def test_checkbox_leading_semicolon_appends(typed):
    typed("topics", "news")
    assert typed("topics", ";events").status == 200
    assert stored(typed, "topics") == "news;events"


def test_date_accepts_iso_date_and_epoch_ms_at_utc_midnight(typed):
    assert typed("renewal_day", "2025-06-01").status == 200
    assert typed("renewal_day", "1748736000000").status == 200  # 2025-06-01T00:00:00Z
    assert stored(typed, "renewal_day") == "2025-06-01"


def test_date_rejects_epoch_ms_not_at_midnight(typed):
    reply = typed("renewal_day", "1748736001000")
    assert codes(reply) == ["INVALID_DATE"]
    assert message(reply) == "1748736001000 is at 00:00:01 UTC, not midnight!"


def test_date_rejects_other_formats(typed):
    for bad in ("2025-13-01", "01/06/2025", "2025-06-01T10:00:00Z"):
        assert codes(typed("renewal_day", bad)) == ["INVALID_DATE"]


def test_datetime_accepts_iso_8601_and_epoch_ms(typed):
    assert typed("last_seen", "2025-06-01T09:15:02+02:00").status == 200
    assert stored(typed, "last_seen") == "2025-06-01T07:15:02.000Z"
    assert typed("last_seen", "1748736000123").status == 200
    assert stored(typed, "last_seen") == "2025-06-01T00:00:00.123Z"
    assert codes(typed("last_seen", "yesterday")) == ["INVALID_DATETIME"]


def test_calculated_property_is_read_only(typed):
    reply = typed("hs_object_id", "5")
    assert codes(reply) == ["READ_ONLY_VALUE"]
    assert message(reply) == '"hs_object_id" is a calculated property; its value cannot be set.'


def test_read_only_value_property_is_rejected(typed):
    assert codes(typed("hs_additional_emails", "b@example.com")) == ["READ_ONLY_VALUE"]
    assert codes(typed("createdate", "2025-01-01T00:00:00Z")) == ["READ_ONLY_VALUE"]


def test_unknown_property_is_property_doesnt_exist(typed):
    reply = typed("plan_tier", "gold")
    assert codes(reply) == ["PROPERTY_DOESNT_EXIST"]
    assert message(reply) == 'Property "plan_tier" does not exist'


@pytest.mark.parametrize(("name", "value"), [("tier", " gold"), ("score", "5 "), ("renewal_day", " 2025-06-01")])
def test_whitespace_around_non_string_values_is_rejected(typed, name, value):
    reply = typed(name, value)
    assert codes(reply) == ["LEADING_TRAILING_WHITESPACE"]
    assert message(reply) == f'"{value}" includes leading or trailing whitespace.'


def test_every_invalid_property_is_listed(typed):
    reply = typed("tier", "bronze", extra={"score": "x", "nope": "1"})
    assert sorted(codes(reply)) == ["INVALID_FLOAT", "INVALID_OPTION", "PROPERTY_DOESNT_EXIST"]
    assert len(reply.body["errors"]) == 3

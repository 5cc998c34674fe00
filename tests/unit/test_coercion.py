import pytest

from hubspot_destination.domain.coercion import CoercionError, coerce
from hubspot_destination.hubspot.models import Property


def prop(kind, field_type="text", options=(), **extra):
    return Property.model_validate(
        {
            "name": "p",
            "type": kind,
            "fieldType": field_type,
            "options": [{"label": label, "value": value} for label, value in options],
            **extra,
        }
    )


TEXT = prop("string")
NUMBER = prop("number", "number")
CHECKBOX_BOOL = prop("enumeration", "booleancheckbox", [("Yes", "true"), ("No", "false")])
SELECT = prop("enumeration", "select", [("Gold", "gold"), ("Silver", "silver")])
MULTI = prop("enumeration", "checkbox", [("Red", "red"), ("Blue", "blue")])
DATE = prop("date", "date")
DATETIME = prop("datetime", "date")


@pytest.mark.parametrize("value", ["+14155550100", "02134", "00123"])
def test_strings_are_sent_exactly(value):  # B11
    assert coerce(value, TEXT) == value


def test_boolean_to_text_property_is_the_word():  # B8 nickname
    assert coerce(True, TEXT) == "true"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, "true"), (0, "false"), ("Yes", "true"), ("no", "false"), (True, "true"), ("FALSE", "false")],
)
def test_checkbox_booleans(value, expected):  # B8
    assert coerce(value, CHECKBOX_BOOL) == expected


def test_other_boolean_values_are_refused():
    with pytest.raises(CoercionError) as error:
        coerce("maybe", CHECKBOX_BOOL)
    assert error.value.code == "INVALID_BOOLEAN"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.4210854715202004e-14, "0.000000000000014210854715202004"),
        (17, "17"),
        ("12.50", "12.5"),
        (1e21, "1000000000000000000000"),
    ],
)
def test_numbers_are_plain_decimals(value, expected):  # B10
    assert coerce(value, NUMBER) == expected


@pytest.mark.parametrize("value", ["1,204", "NaN", float("inf"), "Infinity", "abc", True])
def test_bad_numbers_are_refused(value):  # B10
    with pytest.raises(CoercionError):
        coerce(value, NUMBER)


def test_select_takes_option_values_and_maps_labels():
    assert coerce("gold", SELECT) == "gold"
    assert coerce("Silver", SELECT) == "silver"
    with pytest.raises(CoercionError) as error:
        coerce("bronze", SELECT)
    assert error.value.code == "INVALID_OPTION"


@pytest.mark.parametrize("value", [[], ";", "  "])
def test_empty_multi_checkbox_values_do_not_clear(value):  # only "" clears
    with pytest.raises(CoercionError):
        coerce(value, MULTI)


def test_multi_checkbox_is_joined_with_semicolons():
    assert coerce(["red", "Blue"], MULTI) == "red;blue"
    assert coerce("red;blue", MULTI) == "red;blue"


def test_date_is_utc_midnight_epoch_ms():  # B9
    assert coerce("2024-05-01", DATE) == "1714521600000"
    assert coerce("20240501", DATE) == "1714521600000"  # ISO 8601 basic format
    assert coerce(1714595761123, DATE) == "1714521600000"  # epoch ms
    assert coerce("2024-05-01T20:36:01Z", DATE) == "1714521600000"
    # A timestamp is converted to UTC first: 23:30 at -02:00 is the next day in UTC.
    assert coerce("2024-05-01T23:30:00-02:00", DATE) == "1714608000000"


def test_datetime_accepts_aep_offset_styles():  # B9
    assert coerce("2024-05-01T20:36:01.123+0000", DATETIME) == "1714595761123"
    assert coerce("2024-05-01T20:36:01.123Z", DATETIME) == "1714595761123"


@pytest.mark.parametrize(
    "value", ["31/02/2024", "2024-02-31", "yesterday", "999999999999999", 1e20, "0001-01-01T00:00:00+01:00", 1735689600]
)
def test_unparseable_dates_are_refused_never_nan(value):  # B9
    with pytest.raises(CoercionError) as error:
        coerce(value, DATE)
    assert error.value.code == "INVALID_DATE"


def test_empty_string_clears_any_type():  # B12
    for definition in (TEXT, NUMBER, SELECT, DATE):
        assert coerce("", definition) == ""


def test_read_only_properties_are_refused():
    with pytest.raises(CoercionError) as error:
        coerce("1", prop("number", "number", calculated=True))
    assert error.value.code == "READ_ONLY_VALUE"
    with pytest.raises(CoercionError):
        coerce("x", prop("string", modificationMetadata={"readOnlyValue": True}))

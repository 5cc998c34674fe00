import re

from hypothesis import given
from hypothesis import strategies as st

from hubspot_destination.domain.audiences import audience_property_name
from hubspot_destination.hubspot.properties import audience_property_definition

HUBSPOT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@given(st.text(min_size=1, max_size=300))
def test_names_are_valid_hubspot_internal_names(audience_id):
    name = audience_property_name(audience_id)
    assert HUBSPOT_NAME.match(name)
    assert len(name) <= 100


def test_name_is_deterministic_and_readable():
    name = audience_property_name("0b7a6c1e-3f2d-4e59-9a61-5c4d3b2a1f00")
    assert name == audience_property_name("0b7a6c1e-3f2d-4e59-9a61-5c4d3b2a1f00")
    assert name.startswith("aep_0b7a6c1e_3f2d_4e59_9a61_5c4d3b2a1f00_")


def test_ids_that_slug_alike_get_different_names():
    assert audience_property_name("A-1") != audience_property_name("a_1")
    assert audience_property_name("x" * 200) != audience_property_name("x" * 201)


def test_definition_is_a_select_with_the_three_statuses_labelled_by_audience_name():
    definition = audience_property_definition("aud-1", "High Value", "aep_audiences")
    assert definition["label"] == "High Value"
    assert definition["groupName"] == "aep_audiences"
    assert (definition["type"], definition["fieldType"]) == ("enumeration", "select")
    assert [option["value"] for option in definition["options"]] == ["realized", "existing", "exited"]


def test_rename_changes_the_label_not_the_name():
    before = audience_property_definition("aud-1", "Old name", "g")
    after = audience_property_definition("aud-1", "New name", "g")
    assert before["name"] == after["name"]
    assert before["label"] != after["label"]

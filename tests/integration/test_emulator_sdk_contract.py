"""Contract test: HubSpot's official Python SDK (generated from HubSpot's OpenAPI specs) accepts the
emulator's answers (hubspot-api.md "Checking an emulator against HubSpot's contract").

The SDK validates required fields and types of every answer, so a shape the real API would never send
fails here. ``hubspot-api-client`` is a dev dependency (pyproject.toml), used by tests only.
"""

from __future__ import annotations

import hubspot as hubspot_sdk
import pytest
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectId,
)
from hubspot.crm.properties import OptionInput, PropertyCreate, PropertyGroupCreate


@pytest.fixture
def sdk(emulator):
    return hubspot_sdk.HubSpot(access_token="local-dev-token", host=emulator.base_url)


def upsert_input(email: str, trace: str, **props: str) -> SimplePublicObjectBatchInputUpsert:
    return SimplePublicObjectBatchInputUpsert(
        id=email, id_property="email", properties={"email": email, **props}, object_write_trace_id=trace
    )


def test_sdk_accepts_properties_and_groups_answers(sdk):
    assert any(p.name == "email" for p in sdk.crm.properties.core_api.get_all("contacts").results)
    group = sdk.crm.properties.groups_api.create("contacts", PropertyGroupCreate(name="audiences", label="Audiences"))
    assert group.name == "audiences"
    assert any(g.name == "audiences" for g in sdk.crm.properties.groups_api.get_all("contacts").results)
    created = sdk.crm.properties.core_api.create(
        "contacts",
        PropertyCreate(
            name="aud_1",
            label="Audience 1",
            type="enumeration",
            field_type="select",
            group_name="audiences",
            options=[OptionInput(label="Realized", value="realized", display_order=0, hidden=False)],
        ),
    )
    assert created.options[0].value == "realized"
    assert sdk.crm.properties.core_api.get_by_name("contacts", "aud_1").name == "aud_1"


def test_sdk_accepts_upsert_read_search_and_207_answers(sdk):
    batch = sdk.crm.contacts.batch_api
    answer = batch.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[upsert_input("ada@example.com", "t1", firstname="Ada"), upsert_input("bob@example.com", "t2")]
        )
    )
    assert {r.new for r in answer.results} == {True}
    partial = batch.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[upsert_input("cy@example.com", "t3"), upsert_input("di@example.com", "t4", nope="x")]
        )
    )
    assert partial.num_errors == 1
    assert partial.errors[0].context == {"objectWriteTraceId": ["t4"]}
    read = batch.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id="ada@example.com"), SimplePublicObjectId(id="zed@example.com")],
            properties=["firstname"],
            properties_with_history=[],
            id_property="email",
        )
    )
    assert read.results[0].properties["firstname"] == "Ada"
    assert read.errors[0].category == "OBJECT_NOT_FOUND"
    one = sdk.crm.contacts.basic_api.get_by_id("ada@example.com", id_property="email", properties=["firstname"])
    assert one.properties["firstname"] == "Ada"
    found = sdk.crm.contacts.search_api.do_search(PublicObjectSearchRequest(limit=1))
    assert found.total == 3
    assert found.paging.next.after == "1"

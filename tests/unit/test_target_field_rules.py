"""Target fields: which contact properties a profile may write, and how the use case answers and refuses."""

import time
from datetime import UTC, datetime

import pytest

from hubspot_destination.domain.audiences import audience_property_name
from hubspot_destination.domain.deadline import Deadline
from hubspot_destination.hubspot.errors import (
    HubSpotAuthError,
    HubSpotError,
    HubSpotMalformedAnswer,
    HubSpotNoTimeLeft,
    HubSpotRateLimited,
    HubSpotRequestError,
    HubSpotTransientError,
)
from hubspot_destination.ingest.accept import RequestRefused, WebhookRequest
from hubspot_destination.ingest.signature import SenderCredentials, sign
from hubspot_destination.ingest.target_fields import MAX_ESCAPED_BODY_BYTES, target_fields, writable_fields
from hubspot_destination.settings import IngestSettings
from tests.unit.fakes import FakeCatalog, prop

GROUP = "aep_audiences"
KEY, SECRET = "bearer-key-0123456789", "signing-secret-0123456789"
CREDENTIALS = SenderCredentials(bearerTokens=[KEY], signingSecrets=[SECRET])
SETTINGS = IngestSettings(QUEUE_URL="q", WEBHOOK_SECRET_ID="w", HUBSPOT_TOKEN_SECRET_ID="t")
OPTIONS = [{"label": "Gold", "value": "gold", "displayOrder": 0}, {"label": "Silver", "value": "silver"}]


def names(*properties, group=GROUP):
    return [field.name for field in writable_fields(properties, group)]


@pytest.mark.parametrize(
    "unwritable",
    [
        prop("hs_calculated", "number", "calculation_equation", calculated=True),
        prop("custom_read_only", modificationMetadata={"readOnlyValue": True}),
        prop("email"),
        prop(audience_property_name("seg-1"), "enumeration", "select", groupName="contactinformation"),
        prop("anything_in_the_group", groupName=GROUP),
    ],
    ids=["calculated", "read-only value", "email identity", "audience-named", "in the audience group"],
)
def test_what_a_profile_cannot_write_is_no_target_field(unwritable):
    assert names(prop("firstname"), unwritable) == ["firstname"]


def test_the_audience_group_is_the_configured_one():
    in_group = prop("tier", groupName="my_audiences")
    assert names(in_group, group="my_audiences") == []
    assert names(in_group, group=GROUP) == ["tier"]


@pytest.mark.parametrize(
    ("kind", "field_type"),
    [
        ("string", "text"),
        ("string", "textarea"),
        ("phone_number", "phonenumber"),
        ("number", "number"),
        ("bool", "booleancheckbox"),
        ("date", "date"),
        ("datetime", "date"),
        ("enumeration", "select"),
        ("enumeration", "radio"),
        ("enumeration", "checkbox"),
        ("enumeration", "booleancheckbox"),
    ],
)
def test_every_writable_kind_is_a_target_field_with_its_definition(kind, field_type):
    options = OPTIONS if kind in ("enumeration", "bool") else []
    [field] = writable_fields([prop("plan", kind, field_type, label="Plan", groupName="sales", options=options)], GROUP)
    assert field.model_dump(exclude={"options"}) == {
        "name": "plan",
        "label": "Plan",
        "type": kind,
        "fieldType": field_type,
        "group": "sales",
    }
    # Options are an enumeration's only (a bool's true/false are not for a profile to choose).
    expected = [{"label": "Gold", "value": "gold"}, {"label": "Silver", "value": "silver"}]
    assert [o.model_dump() for o in field.options] == (expected if kind == "enumeration" else [])


def test_hidden_properties_stay_writable_and_fields_are_sorted_by_name():
    assert names(prop("zip"), prop("city", hidden=True), prop("address")) == ["address", "city", "zip"]


def call(headers, body=None):
    return WebhookRequest(headers, body, False, "req-1", datetime.now(UTC))


def signed(body=b""):
    return {"X-Signature": sign(SECRET, int(time.time()), body)}


def listing(headers, catalog, body=None):
    deadline = Deadline.after(5)
    return target_fields(call(headers, body), lambda: CREDENTIALS, catalog, SETTINGS, time.time(), deadline)


# Headers are made when the test runs, not when it is collected: a signature's time must be now.
@pytest.mark.parametrize(
    "headers",
    [lambda: {"Authorization": f"Bearer {KEY}"}, signed],
    ids=["bearer", "signature over the empty body"],
)
def test_an_authenticated_caller_gets_the_writable_properties(headers):
    catalog = FakeCatalog(prop("firstname"), prop("email"), prop("plan", "enumeration", "select", options=OPTIONS))
    assert [field.name for field in listing(headers(), catalog).fields] == ["firstname", "plan"]


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        (dict, "missing credentials"),
        (lambda: {"Authorization": "Bearer wrong-key-0123456789"}, "bearer key is not valid"),
        (lambda: {"X-Signature": sign(SECRET, int(time.time()), b"another body")}, "does not match"),
        (lambda: {"X-Signature": sign("another-secret-0123456789", int(time.time()), b"")}, "does not match"),
        (lambda: {"X-Signature": sign(SECRET, int(time.time()) - 301, b"")}, "stale"),
    ],
    ids=["none", "wrong key", "signed another body", "wrong secret", "stale"],
)
def test_an_unauthenticated_caller_is_refused_before_hubspot_is_read(headers, why):
    catalog = FakeCatalog(prop("firstname"))
    with pytest.raises(RequestRefused) as refused:
        listing(headers(), catalog)
    assert (refused.value.status, refused.value.code) == (401, "UNAUTHORIZED")
    assert why in refused.value.detail
    assert catalog.reads == 0


def test_a_signed_get_with_a_body_is_checked_over_that_body():
    assert listing(signed(b"x"), FakeCatalog(prop("city")), body="x").fields[0].name == "city"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (HubSpotAuthError(401), "HUBSPOT_AUTH"),
        (HubSpotAuthError(403), "HUBSPOT_AUTH"),
        (HubSpotRateLimited(429), "RATE_LIMITED"),
        (HubSpotMalformedAnswer(200, message="PropertyList: results: Field required"), "HUBSPOT_MALFORMED_ANSWER"),
        (HubSpotRequestError(404), "HUBSPOT_ERROR"),
        (HubSpotTransientError(503), "HUBSPOT_UNAVAILABLE"),
        (HubSpotTransientError(None, message="read timed out"), "HUBSPOT_UNAVAILABLE"),
        (HubSpotNoTimeLeft(), "HUBSPOT_UNAVAILABLE"),
        (HubSpotError(None), "HUBSPOT_UNAVAILABLE"),
    ],
)
def test_every_hubspot_fault_is_a_503_with_its_code(error, code):
    with pytest.raises(RequestRefused) as refused:
        listing(signed(), FakeCatalog(fail=error))
    assert (refused.value.status, refused.value.code) == (503, code)
    assert str(error) in refused.value.detail


def test_properties_too_many_for_one_answer_are_a_malformed_answer_not_a_crash():
    label = "x" * 10_000
    catalog = FakeCatalog(*(prop(f"p{i}", label=label) for i in range(MAX_ESCAPED_BODY_BYTES // 10_000 + 1)))
    with pytest.raises(RequestRefused) as refused:
        listing(signed(), catalog)
    assert (refused.value.status, refused.value.code) == (503, "HUBSPOT_MALFORMED_ANSWER")
    fewer = FakeCatalog(*(prop(f"p{i}", label=label) for i in range(MAX_ESCAPED_BODY_BYTES // 10_100)))
    assert len(listing(signed(), fewer).fields) == len(fewer.properties)

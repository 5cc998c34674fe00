"""The delivery pipeline's rules, with in-memory fakes of its ports (Given / When / Then)."""

from datetime import UTC, datetime, timedelta

import pytest

from hubspot_destination.deliver.pipeline import Delivery
from hubspot_destination.deliver.policy import DeliveryPolicy
from hubspot_destination.domain.audiences import audience_property_name
from hubspot_destination.domain.deadline import Deadline
from hubspot_destination.domain.profiles import AudienceUpdate, ProfileUpdate
from hubspot_destination.domain.versions import WrittenVersions, epoch_us
from hubspot_destination.hubspot.contacts import Failed, Refused, Unaccounted, Written
from hubspot_destination.hubspot.errors import (
    HubSpotAuthError,
    HubSpotMalformedAnswer,
    HubSpotNoTimeLeft,
    HubSpotRateLimited,
    HubSpotRequestError,
    HubSpotTransientError,
)
from hubspot_destination.hubspot.models import ErrorEnvelope
from tests.unit.fakes import FakeAudiences, FakeCatalog, FakeContactWriter, FakeVersions, prop

T0 = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
EMAIL = "ada@example.com"
AUD = audience_property_name("aud-1")
POLICY = DeliveryPolicy(throttle_requeue_s=30, daily_requeue_s=900, auth_requeue_s=300)


def update(email=EMAIL, seconds=0, status=None, **attributes) -> ProfileUpdate:
    audiences = {}
    if status:
        audiences["aud-1"] = AudienceUpdate(status=status, qualified_at=T0 + timedelta(seconds=seconds), name="Aud")
    return ProfileUpdate(
        email=email,
        attributes=attributes,
        audiences=audiences,
        observed_at=T0 + timedelta(seconds=seconds),
        request_id="r",
    )


def given(writer=None, catalog=None, versions=None, audiences=None, policy=POLICY):
    catalog = catalog or FakeCatalog(prop("city"), prop("age", "number", "number"))
    writer = writer or FakeContactWriter()
    versions = versions or FakeVersions()
    delivery = Delivery(writer, catalog, audiences or FakeAudiences(catalog), versions, policy)
    return delivery, writer, versions


def when(delivery, *updates):
    return delivery.deliver([(f"m{index}", u) for index, u in enumerate(updates)], Deadline.after(60))


def test_a_profile_is_written_with_its_attributes_and_audience_status_and_its_versions_recorded():
    delivery, writer, versions = given()
    verdicts = when(delivery, update(city="York", status="realized"))
    assert verdicts["m0"].kind == "delivered"
    assert writer.portal[EMAIL] == {"email": EMAIL, "city": "York", AUD: "realized"}
    assert versions.written[EMAIL].attributes == {"city": epoch_us(T0)}
    assert versions.written[EMAIL].audiences == {"aud-1": epoch_us(T0)}


def test_profiles_of_one_contact_become_one_input_newest_value_winning():
    delivery, writer, _ = given()
    verdicts = when(delivery, update(seconds=5, city="Leeds"), update(seconds=0, city="York", age=30))
    assert [len(call) for call in writer.calls] == [1]
    assert writer.portal[EMAIL] == {"email": EMAIL, "city": "Leeds", "age": "30"}
    assert {v.kind for v in verdicts.values()} == {"delivered"}


def test_values_older_than_what_was_written_are_dropped_and_a_wholly_stale_profile_calls_nobody():
    versions = FakeVersions()
    versions.written[EMAIL] = WrittenVersions({"city": epoch_us(T0 + timedelta(hours=1))}, {})
    delivery, writer, _ = given(versions=versions)
    assert when(delivery, update(city="York"))["m0"].kind == "delivered"
    assert writer.calls == []
    when(delivery, update(city="York", age=41))
    assert writer.portal[EMAIL] == {"email": EMAIL, "age": "41"}


def test_a_contact_leased_elsewhere_is_requeued_and_a_failed_lease_retried():
    delivery, writer, _ = given(versions=FakeVersions(busy={EMAIL}, failing={"bob@example.com"}))
    verdicts = when(delivery, update(city="York"), update(email="bob@example.com", city="Leeds"))
    assert (verdicts["m0"].kind, verdicts["m0"].reason, verdicts["m0"].delay_s) == ("requeue", "CONTACT_BUSY", 5)
    assert (verdicts["m1"].kind, verdicts["m1"].reason) == ("retry", "VERSIONS_UNAVAILABLE")
    assert writer.calls == []


def test_when_the_versions_table_cannot_be_read_every_profile_is_retried():
    delivery, writer, _ = given(versions=FakeVersions(unavailable=True))
    assert when(delivery, update(city="York"))["m0"].reason == "VERSIONS_UNAVAILABLE"
    assert writer.calls == []


@pytest.mark.parametrize(
    ("attributes", "dropped"),
    [
        ({"nickname": "Ada"}, "nickname"),  # no such property
        ({"age": "old"}, "age"),  # not a number
        ({AUD: "realized"}, AUD),  # an audience property: memberships only
        ({audience_property_name("other"): "exited"}, audience_property_name("other")),
    ],
)
def test_a_field_hubspot_cannot_take_is_dropped_and_the_rest_written_or_in_strict_mode_dead_lettered(
    attributes, dropped
):
    delivery, writer, _ = given()
    when(delivery, update(city="York", **attributes))
    assert dropped not in writer.portal[EMAIL]
    assert writer.portal[EMAIL]["city"] == "York"
    strict, strict_writer, _ = given(policy=DeliveryPolicy(strict=True))
    verdict = when(strict, update(city="York", **attributes))["m0"]
    assert (verdict.kind, verdict.reason) == ("dead_letter", "INVALID_VALUE")
    assert verdict.detail.startswith(f"{dropped}: ")
    assert strict_writer.calls == []


def test_an_attribute_never_overrides_the_membership_status():
    delivery, writer, _ = given()
    when(delivery, update(status="exited", **{AUD: "realized"}))
    assert writer.portal[EMAIL][AUD] == "exited"


def test_a_property_hubspot_refuses_is_sent_again_without_it_and_not_recorded_as_written():
    def refuse_city_once(item, call):
        return Refused({"city": "INVALID_OPTION"}, "bad city") if call == 1 else Written()

    delivery, writer, versions = given(writer=FakeContactWriter(refuse_city_once))
    assert when(delivery, update(city="York", age=30))["m0"].kind == "delivered"
    assert [sorted(call[0].properties) for call in writer.calls] == [["age", "city", "email"], ["age", "email"]]
    assert set(versions.written[EMAIL].attributes) == {"age"}


def test_an_unknown_property_refused_by_hubspot_rereads_the_portal_once():
    delivery, writer, _ = given(
        writer=FakeContactWriter(lambda item, call: Refused({"city": "PROPERTY_DOESNT_EXIST"}, ""))
    )
    catalog = delivery._catalog
    verdict = when(delivery, update(city="York"))["m0"]
    assert catalog.refreshes == 1
    assert (verdict.kind, verdict.reason) == ("dead_letter", "INVALID_VALUE")  # refused three times in all
    assert len(writer.calls) == 3


@pytest.mark.parametrize(
    ("outcome", "kind", "reason"),
    [
        (Refused({"email": "INVALID_EMAIL"}, "bad"), "dead_letter", "INVALID_EMAIL"),
        (Refused({}, "VALIDATION_ERROR: no property named"), "dead_letter", "INVALID_VALUE"),
        (Unaccounted(), "retry", "UNACCOUNTED"),
    ],
)
def test_each_per_input_outcome_has_its_verdict(outcome, kind, reason):
    delivery, _, versions = given(writer=FakeContactWriter(lambda item, call: outcome))
    verdict = when(delivery, update(city="York"))["m0"]
    assert (verdict.kind, verdict.reason) == (kind, reason)
    assert versions.written[EMAIL].attributes == {}  # nothing recorded as written


def rate_limited(policy_name):
    return HubSpotRateLimited(429, ErrorEnvelope(policyName=policy_name))


@pytest.mark.parametrize(
    ("fault", "kind", "reason", "delay_s"),
    [
        (rate_limited("DAILY"), "requeue", "DAILY_LIMIT", 900),
        (rate_limited("TEN_SECONDLY_ROLLING"), "requeue", "RATE_LIMITED", 30),
        (HubSpotNoTimeLeft(), "requeue", "TIMEOUT", 0),
        (HubSpotAuthError(401), "requeue", "HUBSPOT_AUTH", 300),
        (HubSpotMalformedAnswer(200, message="results: not a list"), "retry", "HUBSPOT_MALFORMED_ANSWER", 0),
        (HubSpotRequestError(404), "retry", "HUBSPOT_ERROR", 0),
        (HubSpotTransientError(503), "retry", "HUBSPOT_UNAVAILABLE", 0),
    ],
)
def test_faults_map_to_verdicts_by_the_one_table_whether_they_hit_the_upsert_or_the_property_read(
    fault, kind, reason, delay_s
):
    delivery, _, _ = given(writer=FakeContactWriter(lambda item, call: Failed(fault)))
    verdict = when(delivery, update(city="York"))["m0"]
    assert (verdict.kind, verdict.reason, verdict.delay_s) == (kind, reason, delay_s)
    failing, writer, _ = given(catalog=FakeCatalog(fail=fault))
    assert when(failing, update(city="York"))["m0"] == verdict
    assert writer.calls == []


def test_the_daily_limit_halts_the_invocation_and_a_paused_portal_is_not_called():
    def refuse_then_daily(item, call):
        return Refused({"city": "INVALID_OPTION"}, "") if call == 1 else Failed(rate_limited("DAILY"))

    delivery, writer, _ = given(writer=FakeContactWriter(refuse_then_daily))
    assert when(delivery, update(city="York"))["m0"].reason == "DAILY_LIMIT"
    assert len(writer.calls) == 2
    paused, paused_writer, _ = given(writer=FakeContactWriter(paused_s=120.5))
    verdict = when(paused, update(city="York"))["m0"]
    assert (verdict.kind, verdict.reason, verdict.delay_s) == ("requeue", "DAILY_LIMIT", 121)
    assert paused_writer.calls == []


def test_an_audience_whose_property_conflicts_is_dead_lettered_after_the_rest_was_written():
    catalog = FakeCatalog(prop("city"))
    delivery, writer, versions = given(catalog=catalog, audiences=FakeAudiences(catalog, conflicts={"aud-1": "number"}))
    verdict = when(delivery, update(city="York", status="realized"))["m0"]
    assert (verdict.kind, verdict.reason) == ("dead_letter", "PROPERTY_CONFLICT")
    assert writer.portal[EMAIL] == {"email": EMAIL, "city": "York"}
    assert versions.written[EMAIL].attributes == {"city": epoch_us(T0)}  # written, so recorded


def test_a_contact_waiting_for_audience_properties_is_requeued_unwritten():
    catalog = FakeCatalog(prop("city"))
    delivery, writer, _ = given(catalog=catalog, audiences=FakeAudiences(catalog, deferred={"aud-1"}))
    verdict = when(delivery, update(city="York", status="realized"))["m0"]
    assert (verdict.kind, verdict.reason) == ("requeue", "AUDIENCE_PROPERTIES_PENDING")
    assert writer.calls == []


def test_every_lease_is_released_even_when_nothing_was_written():
    delivery, _, versions = given(writer=FakeContactWriter(lambda item, call: Failed(HubSpotTransientError(502))))
    when(delivery, update(city="York"), update(email="bob@example.com", city="Leeds"))
    assert sorted(versions.released) == ["ada@example.com", "bob@example.com"]

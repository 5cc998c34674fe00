"""The delivery pipeline's rules, with in-memory fakes of its ports (Given / When / Then)."""

import threading
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


# -- groups: 100 contacts each, several at once ------------------------------------------------------------


def updates(count: int, **attributes) -> list[ProfileUpdate]:
    return [update(email=f"user{i}@example.com", status="realized", **attributes) for i in range(count)]


class CountingAudiences(FakeAudiences):
    def __init__(self, catalog):
        super().__init__(catalog)
        self.resolved: list[set[str]] = []

    def resolve(self, audiences, deadline=None):
        self.resolved.append(set(audiences))
        return super().resolve(audiences, deadline)


class RecordingVersions(FakeVersions):
    """Keeps the emails of each lease; `leased_twice` is set once two groups are leased."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.acquired: list[list[str]] = []
        self.leased_twice = threading.Event()

    def acquire(self, emails):
        self.acquired.append(list(emails))
        if len(self.acquired) >= 2:
            self.leased_twice.set()
        return super().acquire(emails)


def test_a_batch_is_delivered_in_groups_of_100_each_leased_and_recorded_on_its_own():
    catalog = FakeCatalog(prop("city"))
    audiences = CountingAudiences(catalog)
    versions = RecordingVersions()
    writer = FakeContactWriter()
    delivery = Delivery(writer, catalog, audiences, versions, POLICY, groups_in_flight=4)
    verdicts = when(delivery, *updates(250, city="York"))
    assert {v.kind for v in verdicts.values()} == {"delivered"}
    assert sorted(len(emails) for emails in versions.acquired) == [50, 100, 100]
    assert sorted(len(call) for call in writer.calls) == [50, 100, 100]
    assert len(versions.written) == 250
    assert set(versions.released) == set(versions.written)
    assert audiences.resolved == [{"aud-1"}]  # once for the batch, not once per group


def test_one_groups_lease_overlaps_another_groups_upsert():
    versions = RecordingVersions()
    waited: dict[int, bool] = {}  # by call: whether the second lease came while it waited

    def wait_for_the_second_lease(item, call):
        # The first upsert is answered only once another group is leased: in turn, it would wait in vain.
        if call not in waited:
            waited[call] = call > 1 or versions.leased_twice.wait(timeout=10)
        return Written() if waited[call] else Failed(HubSpotTransientError(504))

    catalog = FakeCatalog(prop("city"))
    writer = FakeContactWriter(wait_for_the_second_lease)
    delivery = Delivery(writer, catalog, FakeAudiences(catalog), versions, POLICY, groups_in_flight=2)
    verdicts = when(delivery, *updates(200, city="York"))
    assert {v.kind for v in verdicts.values()} == {"delivered"}


def test_a_halting_fault_stops_the_groups_not_yet_started():
    for fault, reason in [(rate_limited("DAILY"), "DAILY_LIMIT"), (HubSpotAuthError(401), "HUBSPOT_AUTH")]:
        versions = RecordingVersions()
        catalog = FakeCatalog(prop("city"))
        writer = FakeContactWriter(lambda item, call, fault=fault: Failed(fault))
        delivery = Delivery(writer, catalog, FakeAudiences(catalog), versions, POLICY, groups_in_flight=1)
        verdicts = when(delivery, *updates(300, city="York"))
        assert {(v.kind, v.reason) for v in verdicts.values()} == {("requeue", reason)}
        assert len(writer.calls) == len(versions.acquired) == 1  # the later groups neither leased nor sent
        assert len(versions.released) == 100


class AnsweredWriter(FakeContactWriter):
    """Sets `answered` once its first upsert has returned."""

    def __init__(self, answer):
        super().__init__(answer)
        self.answered = threading.Event()

    def upsert(self, inputs, deadline, halt=None):
        outcomes = super().upsert(inputs, deadline, halt)
        self.answered.set()
        return outcomes


class LateVersions(RecordingVersions):
    """Waits for `groups` leases to be asked for, then leases the first at once and the others only once
    `writer` answered its first upsert."""

    def __init__(self, writer, groups):
        super().__init__()
        self.writer = writer
        self.started = threading.Barrier(groups)
        self.lock = threading.Lock()
        self.asked = 0

    def acquire(self, emails):
        self.started.wait(timeout=10)
        with self.lock:
            first = self.asked == 0
            self.asked += 1
        if not first:
            assert self.writer.answered.wait(timeout=10)
        return super().acquire(emails)


def test_a_halting_fault_stops_the_upserts_of_groups_already_started():
    for fault, reason in [(rate_limited("DAILY"), "DAILY_LIMIT"), (HubSpotAuthError(401), "HUBSPOT_AUTH")]:
        catalog = FakeCatalog(prop("city"))
        writer = AnsweredWriter(lambda item, call, fault=fault: Failed(fault))
        # Three groups start at once; the second and third are leased after the first upsert failed.
        versions = LateVersions(writer, groups=3)
        delivery = Delivery(writer, catalog, FakeAudiences(catalog), versions, POLICY, groups_in_flight=3)
        verdicts = when(delivery, *updates(300, city="York"))
        assert {(v.kind, v.reason) for v in verdicts.values()} == {("requeue", reason)}
        assert len(versions.acquired) == 3
        assert len(writer.calls) == 1  # the others were not sent
        assert len(versions.released) == 300


def test_a_property_read_that_fails_fails_every_group_once_and_leaves_the_stale_ones_delivered():
    catalog = FakeCatalog(prop("city"), fail=HubSpotTransientError(503))
    versions = RecordingVersions()
    versions.written["user0@example.com"] = WrittenVersions(
        {"city": epoch_us(T0 + timedelta(hours=1))}, {"aud-1": epoch_us(T0 + timedelta(hours=1))}
    )
    writer = FakeContactWriter()
    delivery = Delivery(writer, catalog, FakeAudiences(catalog), versions, POLICY, groups_in_flight=3)
    verdicts = when(delivery, *updates(300, city="York"))
    assert verdicts["m0"].kind == "delivered"  # wholly stale: HubSpot is not needed for it
    assert {(v.kind, v.reason) for ref, v in verdicts.items() if ref != "m0"} == {("retry", "HUBSPOT_UNAVAILABLE")}
    assert catalog.reads == 1
    assert writer.calls == []
    assert len(versions.released) == 300


def test_the_catalog_is_read_again_once_however_many_groups_meet_an_unknown_property():
    catalog = FakeCatalog(prop("city"))
    writer = FakeContactWriter(lambda item, call: Refused({"city": "PROPERTY_DOESNT_EXIST"}, ""))
    delivery = Delivery(writer, catalog, FakeAudiences(catalog), FakeVersions(), POLICY, groups_in_flight=3)
    when(delivery, *updates(300, city="York"))
    assert catalog.refreshes == 1

import json
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hubspot_destination.aws.sqs import chunk_entries
from hubspot_destination.domain.contacts import coalesce
from hubspot_destination.domain.messages import decode_message, pack
from hubspot_destination.domain.profiles import AudienceUpdate, ProfileUpdate
from hubspot_destination.domain.versions import epoch_us
from hubspot_destination.ingest.body import BodyEncodingError, parse_json
from hubspot_destination.ingest.models import (
    DETAIL_MAX_CHARS,
    QUOTE_MAX_CHARS,
    ActivationAccepted,
    ActivationRequest,
    ErrorBody,
    Rejection,
    excerpt,
)
from hubspot_destination.ingest.split import ANSWER_DETAILS_MAX_CHARS, request_time, split_profiles

NOW = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)


def profile(email, attributes=None, audiences=None):
    return {
        "identityMap": {"email": [{"id": email}]},
        "attributes": attributes or {},
        "segmentMembership": {"ups": audiences or {}},
    }


def split(*profiles, audiences=None, received_at=NOW, signed_at=None):
    request = ActivationRequest.model_validate({"profiles": list(profiles), "audiences": audiences or {}})
    split = split_profiles(request, "req-1", received_at, 1_048_576, 50, signed_at=signed_at)
    updates = [update for body in split.bodies for update in decode_message(body).profiles]
    assert split.accepted == len(updates)
    return updates, split.rejected


def test_attribute_forms_and_clearing_policy():  # B12
    [update], _ = split(
        profile(
            "user10@example.com",
            {"firstname": {"value": ""}, "lastname": {"value": None}, "city": {}, "country": None, "zip": "02134"},
        )
    )
    assert update.attributes == {"firstname": "", "zip": "02134"}


def test_audience_name_falls_back_to_the_audiences_map_then_the_id():
    memberships = {
        "a1": {"status": "realized", "lastQualificationTime": "2025-03-04T10:00:00Z", "name": "From membership"},
        "a2": {"status": "exited", "lastQualificationTime": "2025-03-04T10:00:00.000+0000"},
        "a3": {"status": "existing", "lastQualificationTime": "2025-03-04T10:00:00+00:00"},
    }
    [update], _ = split(profile("a@example.com", audiences=memberships), audiences={"a2": {"name": "From map"}})
    assert {k: v.name for k, v in update.audiences.items()} == {"a1": "From membership", "a2": "From map", "a3": "a3"}


def test_rejections_are_per_index_with_reasons():
    bad_status = {"a1": {"status": "gone", "lastQualificationTime": "2025-03-04T10:00:00Z"}}
    bad_time = {"a1": {"status": "realized", "lastQualificationTime": "yesterday"}}
    updates, rejected = split(
        profile("ok@example.com"),
        profile("user2@example.con"),
        profile("x@example.com", audiences=bad_status),
        profile("y@example.com", audiences=bad_time),
        profile("z@example.com", attributes={"firstname": {"value": {"nested": 1}}}),
        {"attributes": {}},
    )
    assert [u.email for u in updates] == ["ok@example.com"]
    assert [(r.index, r.reason) for r in rejected] == [
        (1, "INVALID_EMAIL"),
        (2, "INVALID_MEMBERSHIP"),
        (3, "INVALID_MEMBERSHIP"),
        (4, "INVALID_ATTRIBUTE"),
        (5, "INVALID_PROFILE"),
    ]


def test_oversized_profile_is_rejected_not_enqueued():
    request = ActivationRequest.model_validate({"profiles": [profile("a@example.com", {"bio": "x" * 5000})]})
    split = split_profiles(request, "req", NOW, 2048, 50)
    assert (split.bodies, split.accepted) == ([], 0)
    assert split.rejected[0].reason == "PROFILE_TOO_LARGE"


def test_profiles_are_packed_within_the_count_and_byte_limits():
    updates = [update(f"u{i}@example.com", i % 60, {"bio": "x" * 200}) for i in range(120)]
    by_count = pack(updates, max_profiles=50, max_bytes=1_048_576)
    assert [len(decode_message(b).profiles) for b in by_count] == [50, 50, 20]
    by_size = pack(updates, max_profiles=50, max_bytes=4096)
    assert all(len(b.encode()) <= 4096 for b in by_size)
    assert [u for b in by_size for u in decode_message(b).profiles] == updates
    assert decode_message(pack(updates[:1], 50, 4096, attempt=3)[0]).attempt == 3


def test_chunks_respect_ten_entries_and_the_byte_limit():
    entries = [{"MessageBody": "x" * 100}] * 25
    assert [len(c) for c in chunk_entries(entries, 10_000)] == [10, 10, 5]
    assert [len(c) for c in chunk_entries(entries, 250)] == [2] * 12 + [1]
    assert [e["Id"] for e in next(chunk_entries(entries, 250))] == ["0", "1"]


def update(email, seconds, attributes=None, audiences=None):
    return ProfileUpdate(
        email=email,
        attributes=attributes or {},
        audiences={
            k: AudienceUpdate(status=s, qualified_at=datetime(2025, 3, 4, 10, 0, q, tzinfo=UTC), name="High Value")
            for k, (s, q) in (audiences or {}).items()
        },
        observed_at=datetime(2025, 3, 4, 11, 0, seconds, tzinfo=UTC),
        request_id="r",
    )


def test_coalesce_merges_one_contact_field_by_field_newest_wins():  # B1
    contacts = coalesce(
        [
            ("m2", update("user1@example.com", 5, {"city": "Leeds"}, {"aud-1": ("exited", 5)})),
            ("m1", update("user1@example.com", 0, {"firstname": "Ann", "city": "York"}, {"aud-1": ("realized", 0)})),
            ("m3", update("other@example.com", 1)),
        ]
    )
    assert set(contacts) == {"user1@example.com", "other@example.com"}
    merged = contacts["user1@example.com"]
    assert merged.attributes == {"firstname": "Ann", "city": "Leeds"}
    assert merged.audiences["aud-1"].status == "exited"
    assert sorted(merged.refs) == ["m1", "m2"]


def test_older_qualification_does_not_override_a_newer_status():
    contacts = coalesce(
        [
            ("new", update("u@example.com", 0, audiences={"aud-1": ("exited", 30)})),
            ("late", update("u@example.com", 9, audiences={"aud-1": ("realized", 10)})),
        ]
    )
    assert contacts["u@example.com"].audiences["aud-1"].status == "exited"


def test_membership_status_is_accepted_in_any_case():
    memberships = {"a1": {"status": " Realized", "lastQualificationTime": "2025-03-04T10:00:00Z"}}
    [accepted], rejected = split(profile("a@example.com", audiences=memberships))
    assert rejected == []
    assert accepted.audiences["a1"].status == "realized"


# Every place a profile's own key is quoted in the detail of its rejection.
KEY_PLACES = {
    "attribute": lambda key: profile("a@example.com", {key: {"nested": 1}}),
    "wrapped attribute": lambda key: profile("a@example.com", {key: {"val": 1}}),
    "audience id": lambda key: profile("a@example.com", audiences={key: {"status": "gone"}}),
    "namespace": lambda key: {
        "identityMap": {"email": [{"id": "a@example.com"}]},
        "segmentMembership": {key: {"a1": {"status": "realized", "lastQualificationTime": "9999-01-01T00:00:00Z"}}},
    },
    "identity namespace": lambda key: {"identityMap": {key: "not a list"}},
}
STRANGE_KEYS = {
    "huge": "k" * 1_000_000,
    "lone surrogates": "\ud800" * 500,
    "controls": "\x00\n\u200b" * 300,
    "accents": "é" * 5000,
    "astral": "\U0001f600" * 5000,
}
any_text = st.text(st.characters(exclude_categories=()), max_size=400)  # lone surrogates included


def assert_answerable(rejection):
    assert len(rejection.detail) <= DETAIL_MAX_CHARS
    ActivationAccepted(requestId="r", accepted=0, rejected=[rejection]).model_dump_json().encode()


@pytest.mark.parametrize("key", STRANGE_KEYS.values(), ids=STRANGE_KEYS)
@pytest.mark.parametrize("place", KEY_PLACES.values(), ids=KEY_PLACES)
def test_a_rejection_quotes_sender_keys_short_and_encodable(place, key):
    _, [rejection] = split(place(key))
    assert_answerable(rejection)
    assert key[:20].isprintable() is (key[:20] in rejection.detail)


@given(place=st.sampled_from(list(KEY_PLACES.values())), key=any_text)
def test_any_key_gives_an_answerable_rejection(place, key):
    _, rejected = split(place(key))
    for rejection in rejected:
        assert_answerable(rejection)


@given(any_text, st.integers(1, 200))
def test_an_excerpt_is_short_encodable_and_keeps_short_printable_text(text, limit):
    quoted = excerpt(text, limit)
    assert len(quoted) <= limit
    quoted.encode()
    assert (quoted == text) is (text.isprintable() and len(text) <= limit)


@pytest.mark.parametrize("model", [Rejection, ErrorBody])
@pytest.mark.parametrize("detail", STRANGE_KEYS.values(), ids=STRANGE_KEYS)
def test_every_answer_detail_is_bounded_and_encodable(model, detail):
    fields = {"index": 0, "reason": "INVALID_PROFILE"} if model is Rejection else {"error": "INVALID_REQUEST"}
    answer = model(**fields, detail=detail)
    assert len(answer.detail) <= DETAIL_MAX_CHARS
    assert len(answer.model_dump_json().encode()) < 4 * DETAIL_MAX_CHARS + 100


def test_the_details_of_one_answer_are_bounded_together():
    refused = [profile(f"u{i}@example.com", {f"{i}{'k' * QUOTE_MAX_CHARS}": {"nested": 1}}) for i in range(3000)]
    _, rejected = split(*refused)
    assert [r.index for r in rejected] == list(range(3000))
    assert rejected[0].detail.startswith("attributes.0kkk")
    assert sum(len(r.detail) for r in rejected) <= ANSWER_DETAILS_MAX_CHARS + len(rejected)


MICROSECOND = timedelta(microseconds=1)
seconds = st.integers(0, 10_000).map(lambda s: NOW + timedelta(seconds=s))
arrivals = st.integers(-300_000_000, 300_000_000).map(lambda us: us * MICROSECOND)  # from the signed time
sizes = st.integers(1, 10_000)


@given(seconds, arrivals, sizes, st.integers(1, 600), arrivals, sizes)
def test_a_signed_request_is_older_than_every_request_signed_in_a_later_second(
    signed, arrival, size, later_s, later_arrival, later_size
):
    last_stamp = request_time(signed + arrival, signed, size) + (size - 1) * MICROSECOND
    later = signed + timedelta(seconds=later_s)
    assert last_stamp < request_time(later + later_arrival, later, later_size)


@given(seconds, st.integers(0, 989_999), st.integers(1, 10_000), sizes)
def test_requests_signed_in_the_same_second_keep_their_arrival_order(signed, first_us, gap_us, size):
    first, second = signed + first_us * MICROSECOND, signed + (first_us + gap_us) * MICROSECOND
    assert request_time(first, signed, size) < request_time(second, signed, size)


@pytest.mark.parametrize(
    ("arrival", "stamped_from"),
    [
        (timedelta(milliseconds=300), NOW + timedelta(milliseconds=300)),  # on time: its arrival
        (timedelta(seconds=200), NOW + timedelta(seconds=1) - 2 * MICROSECOND),  # a replay: the signed second's end
        (timedelta(seconds=-100), NOW),  # the sender's clock is ahead
    ],
    ids=["on-time", "replayed", "clock-ahead"],
)
def test_a_signed_requests_profiles_are_stamped_inside_its_signed_second(arrival, stamped_from):
    a, b = profile("a@example.com"), profile("b@example.com")
    updates, _ = split(a, b, received_at=NOW + arrival, signed_at=NOW)
    assert [u.observed_at for u in updates] == [stamped_from, stamped_from + MICROSECOND]


def test_a_bearer_requests_profiles_are_stamped_from_its_arrival():
    updates, _ = split(profile("a@example.com"), profile("b@example.com"), received_at=NOW + timedelta(seconds=200))
    assert [u.observed_at for u in updates] == [
        NOW + timedelta(seconds=200),
        NOW + timedelta(seconds=200, microseconds=1),
    ]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3),
    max_leaves=10,
)
OTHER_UNICODE_ENCODINGS = ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"]


@given(json_values, st.sampled_from(OTHER_UNICODE_ENCODINGS), st.booleans())
def test_a_body_in_another_unicode_encoding_is_refused(value, encoding, ascii_only):
    text = json.dumps({"profiles": [value]}, ensure_ascii=ascii_only)
    with pytest.raises(BodyEncodingError, match="UTF-8"):
        parse_json(text.encode(encoding))


@pytest.mark.parametrize(
    "not_utf8",
    [b"\xe9", b"\xed\xa0\x80", b"\xc0\xaf", b"\xe2\x82", b"\xff\xfe", b"\x80"],
    ids=["latin-1", "encoded-surrogate", "overlong", "truncated", "utf-16-bom", "continuation"],
)
def test_a_body_that_is_not_utf8_is_refused(not_utf8):
    with pytest.raises(BodyEncodingError, match="not UTF-8"):
        parse_json(b'{"profiles": [{"attributes": {"city": "' + not_utf8 + b'"}}]}')


@given(json_values, st.booleans())
def test_a_utf8_body_is_read_with_or_without_a_byte_order_mark(value, byte_order_mark):
    text = ("\ufeff" if byte_order_mark else "") + json.dumps({"profiles": [value]}, ensure_ascii=False)
    assert parse_json(text.encode()) == {"profiles": [value]}


# Any JSON at all, text with lone surrogates and huge integers included (JSON has no limits on either).
any_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(10**4400, 10**4400 + 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(any_text, children, max_size=3),
    max_leaves=10,
)
MEMBERSHIP = {"status": "realized", "lastQualificationTime": "2025-01-01T00:00:00Z"}
# Every place of a profile a sender can fill: `value` stands for what it put there.
PROFILE_PLACES = {
    "the profile": lambda value: value,
    "extra field": lambda value: {**profile("b@example.com"), "extra": value},
    "identityMap": lambda value: {"identityMap": value},
    "email identities": lambda value: {"identityMap": {"email": value}},
    "identity": lambda value: {"identityMap": {"email": [value]}},
    "identity id": lambda value: {"identityMap": {"email": [{"id": value}]}},
    "attributes": lambda value: {**profile("b@example.com"), "attributes": value},
    "attribute": lambda value: profile("b@example.com", {"x": value}),
    "wrapped attribute": lambda value: profile("b@example.com", {"x": {"value": value}}),
    "segmentMembership": lambda value: {**profile("b@example.com"), "segmentMembership": value},
    "namespace": lambda value: {**profile("b@example.com"), "segmentMembership": {"ups": value}},
    "membership": lambda value: profile("b@example.com", audiences={"a1": value}),
    **{
        f"membership {field}": lambda value, field=field: profile(
            "b@example.com", audiences={"a1": {**MEMBERSHIP, field: value}}
        )
        for field in ("status", "lastQualificationTime", "name", "extra")
    },
}


def to_json(value) -> str:
    """`value` as JSON text, integers of any length included (Python writes at most 4,300 digits by default)."""
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        return json.dumps(value)
    finally:
        sys.set_int_max_str_digits(limit)


def split_text(*profile_texts: str):
    """`split` of a request written as JSON text, read as the handler reads it."""
    request = ActivationRequest.model_validate(parse_json(f'{{"profiles": [{", ".join(profile_texts)}]}}'.encode()))
    result = split_profiles(request, "req-1", NOW, 1_048_576, 50)
    return [update for body in result.bodies for update in decode_message(body).profiles], result.rejected


@given(st.sampled_from(list(PROFILE_PLACES.values())), any_json)
def test_whatever_one_profile_holds_it_refuses_that_profile_at_most(place, value):
    good = json.dumps(profile("a@example.com"))
    updates, rejected = split_text(good, to_json(place(value)), good)
    assert [u.email for u in updates if u.email == "a@example.com"] == ["a@example.com"] * 2
    assert [r.index for r in rejected] in ([], [1])
    for rejection in rejected:
        assert_answerable(rejection)


MALFORMED_NAMES = ["", "   ", 5, None, True, [], {}, "\ud800"]


@pytest.mark.parametrize("name", MALFORMED_NAMES, ids=repr)
def test_a_malformed_audience_name_counts_as_absent(name):
    memberships = {
        "a1": {**MEMBERSHIP, "name": name},
        "a2": {**MEMBERSHIP, "name": name},
        "a3": MEMBERSHIP,
    }
    audiences = {"a2": {"name": "From map"}, "a3": {"name": name}}
    [update], rejected = split(profile("a@example.com", audiences=memberships), audiences=audiences)
    assert rejected == []
    assert {k: v.name for k, v in update.audiences.items()} == {"a1": "a1", "a2": "From map", "a3": "a3"}


@pytest.mark.parametrize(
    "audiences",
    [[], "names", 5, None, {"a1": "High Value"}, {"a1": None}, {"a1": ["x"]}, {"a1": {"name": {"x": 1}}}],
    ids=repr,
)
def test_a_malformed_audiences_map_or_entry_never_refuses_the_request(audiences):
    request = ActivationRequest.model_validate(
        {"profiles": [profile("a@example.com", audiences={"a1": MEMBERSHIP})], "audiences": audiences}
    )
    result = split_profiles(request, "req-1", NOW, 1_048_576, 50)
    [update] = decode_message(result.bodies[0]).profiles
    assert update.audiences["a1"].name == "a1"


@given(any_json)
@example({"a1": {"note\udb4e": 1}})  # found by hypothesis: a field name no encoder can write
@example({"a1": {"name": ["not", "text"]}, "a2": 5})
def test_whatever_the_audiences_map_holds_the_profiles_are_read(audiences):
    text = to_json({"profiles": [profile("a@example.com")], "audiences": audiences})
    request = ActivationRequest.model_validate(parse_json(text.encode()))
    assert split_profiles(request, "req-1", NOW, 1_048_576, 50).accepted == 1


@pytest.mark.parametrize(
    "moment",
    [
        "1969-12-31T23:59:59Z",
        "1969-12-31T23:59:59.999999Z",
        "1970-01-01T00:59:59+01:00",
        "1900-01-01T00:00:00.000+0000",
        "0001-01-01T00:00:00+01:00",
        -1,
    ],
)
def test_a_membership_before_the_epoch_is_refused_not_dropped(moment):
    memberships = {"a1": {"status": "exited", "lastQualificationTime": moment}}
    updates, [rejection] = split(profile("old@example.com", audiences=memberships), profile("ok@example.com"))
    assert [u.email for u in updates] == ["ok@example.com"]
    assert (rejection.index, rejection.reason) == (0, "INVALID_MEMBERSHIP")
    assert "1970-01-01T00:00:00Z" in rejection.detail


@pytest.mark.parametrize(
    "moment", ["1970-01-01T00:00:00Z", "1970-01-01T01:00:00+01:00", 0, "1970-01-01T00:00:00.000001Z"]
)
def test_a_membership_from_the_epoch_on_is_accepted(moment):
    memberships = {"a1": {"status": "realized", "lastQualificationTime": moment}}
    [update], rejected = split(profile("a@example.com", audiences=memberships))
    assert (rejected, update.audiences["a1"].status) == ([], "realized")


offsets = st.integers(-1439, 1439).map(lambda minutes: timezone(timedelta(minutes=minutes)))  # as ISO 8601 has


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets))
def test_a_membership_is_refused_unless_delivery_can_order_it(moment):
    memberships = {"a1": {"status": "realized", "lastQualificationTime": moment.isoformat()}}
    updates, rejected = split(profile("a@example.com", audiences=memberships))
    if updates:  # delivery drops an audience older than the recorded one, or than -1 when none is recorded
        assert epoch_us(updates[0].audiences["a1"].qualified_at) >= -1
        assert updates[0].audiences["a1"].qualified_at <= NOW + timedelta(days=1)
    else:
        assert [r.reason for r in rejected] == ["INVALID_MEMBERSHIP"]
        assert moment < datetime(1970, 1, 1, tzinfo=UTC) or moment > NOW + timedelta(days=1)


def member_of(email, *audience_ids, namespace="ups"):
    memberships = {audience_id: MEMBERSHIP for audience_id in audience_ids}
    return {**profile(email), "segmentMembership": {namespace: memberships}}


def split_with(profiles, per_profile, per_request):
    request = ActivationRequest.model_validate({"profiles": profiles})
    result = split_profiles(
        request,
        "req-1",
        NOW,
        1_048_576,
        50,
        max_audiences_per_profile=per_profile,
        max_audiences_per_request=per_request,
    )
    return [update for body in result.bodies for update in decode_message(body).profiles], result.rejected


def test_the_audiences_of_one_profile_are_bounded_by_default():  # issue 9: 1,100 audiences reached the portal
    many = member_of("many@example.com", *(f"aud-{i}" for i in range(1100)))
    updates, [rejection] = split(many, member_of("ok@example.com", *(f"aud-{i}" for i in range(100))))
    assert [len(u.audiences) for u in updates] == [100]
    assert (rejection.index, rejection.reason) == (0, "TOO_MANY_AUDIENCES")
    assert "1100 audiences; at most 100" in rejection.detail


@pytest.mark.parametrize(
    ("namespaces", "refused"),
    [
        ({"ups": ["a", "b", "c"]}, False),
        ({"ups": ["a", "b", "c", "d"]}, True),
        ({"ups": ["a", "b"], "CustomerAudienceUpload": ["c", "d"]}, True),
        ({"ups": ["a", "b", "c"], "CustomerAudienceUpload": ["a", "b", "c"]}, False),  # one property per id
    ],
)
def test_a_profile_with_more_distinct_audiences_than_the_limit_is_refused(namespaces, refused):
    memberships = {namespace: {i: MEMBERSHIP for i in ids} for namespace, ids in namespaces.items()}
    one = {**profile("a@example.com"), "segmentMembership": memberships}
    updates, rejected = split_with([one, profile("b@example.com")], per_profile=3, per_request=250)
    assert [(r.index, r.reason) for r in rejected] == ([(0, "TOO_MANY_AUDIENCES")] if refused else [])
    assert len(updates) == (1 if refused else 2)


def test_a_profile_that_would_take_the_request_past_its_audiences_is_refused_by_index():
    profiles = [
        member_of("p0@example.com", "a", "b", "c"),
        member_of("p1@example.com", "c", "d", "e"),  # 5 in all
        member_of("p2@example.com", "f"),  # a 6th
        member_of("p3@example.com", "a", "e"),  # nothing new
        {**member_of("p4@example.com", "x", "y"), "identityMap": {}},  # refused anyway: does not count
        member_of("p5@example.com", "f", "a"),
        member_of("p6@example.com"),
    ]
    updates, rejected = split_with(profiles, per_profile=100, per_request=5)
    assert [u.email for u in updates] == ["p0@example.com", "p1@example.com", "p3@example.com", "p6@example.com"]
    assert [(r.index, r.reason) for r in rejected] == [
        (2, "TOO_MANY_AUDIENCES"),
        (4, "INVALID_EMAIL"),
        (5, "TOO_MANY_AUDIENCES"),
    ]
    assert "make 6 in this request; at most 5 per request" in rejected[0].detail


audience_sets = st.lists(st.sets(st.sampled_from("abcdefghij"), max_size=6), min_size=1, max_size=12)


@given(audience_sets, st.integers(1, 6), st.integers(1, 10))
def test_audience_limits_accept_profiles_in_order_while_they_fit(sets, per_profile, per_request):
    profiles = [member_of(f"u{i}@example.com", *sorted(ids)) for i, ids in enumerate(sets)]
    updates, rejected = split_with(profiles, per_profile, per_request)
    accepted = {int(u.email[1:].split("@")[0]) for u in updates}
    named: set[str] = set()
    for index, ids in enumerate(sets):
        fits = len(ids) <= per_profile and len(named | ids) <= per_request
        assert (index in accepted) is fits
        named |= ids if fits else set()
    assert {r.index for r in rejected} == set(range(len(sets))) - accepted
    assert {r.reason for r in rejected} <= {"TOO_MANY_AUDIENCES"}

"""Hostile and malformed input, through the real handlers: every answer is one of the documented JSON answers,
and a bad value never takes an innocent profile down with it."""

import base64
import io
import json
import time

import boto3
import pytest

from hubspot_destination.domain.audiences import audience_property_name
from hubspot_destination.ingest.signature import sign
from hubspot_local.emulator import PRODUCT_SCOPES, FaultConfig, HubSpotEmulator, load_portal
from hubspot_local.lambda_runtime import LambdaContext
from hubspot_local.pipeline import EMULATOR_TOKEN, WEBHOOK_SECRET_NAME, LocalPipeline, proxy_event
from tests.conftest import EVENTS, bodies, queued_messages
from tests.helpers import assert_all_accounted_for


def profile(email, attributes=None, audiences=None):
    item = {"identityMap": {"email": [{"id": email}]}, "attributes": attributes or {}}
    if audiences:
        item["segmentMembership"] = {"ups": audiences}
    return item


def call(pipeline, event):
    response = pipeline.ingest_module.lambda_handler(event, LambdaContext("IngestFunction", 10))
    return response["statusCode"], json.loads(response["body"])


@pytest.mark.parametrize(
    ("header", "status"),
    [("t=\u00b2,v1=00", 401), ("t=" + "9" * 5000 + ",v1=00", 401)],
)
def test_malformed_signatures_get_401_not_a_crash(pipeline, header, status):
    event = proxy_event(b'{"profiles": [{}]}', pipeline.signing_secret)
    event["headers"]["X-Signature"] = header
    assert call(pipeline, event)[0] == status


@pytest.mark.parametrize("name", ["Authorization", "X-Signature"])
@pytest.mark.parametrize("value", ["\ud800", "Bearer \udfff", "t=1700000000,v1=\ud800"])
def test_a_credential_header_that_cannot_be_encoded_gets_401_not_a_crash(pipeline, name, value):
    event = proxy_event(json.dumps({"profiles": [profile("a@example.com")]}).encode(), pipeline.signing_secret)
    event["headers"][name] = value
    assert call(pipeline, event) == (
        401,
        {"error": "UNAUTHORIZED", "detail": f"the {name.lower()} header is not valid text"},
    )
    assert queued_messages(pipeline) == []


def binary_event(pipeline, raw):
    """A signed proxy event whose body API Gateway passed base64-encoded, as it does for bytes that are not text."""
    event = proxy_event(b"", pipeline.signing_secret)
    event.update(body=base64.b64encode(raw).decode(), isBase64Encoded=True)
    event["headers"]["X-Signature"] = sign(pipeline.signing_secret, int(time.time()), raw)
    return event


@pytest.mark.parametrize(
    "encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be", "latin-1"]
)
def test_a_body_that_is_not_utf8_gets_400_and_nothing_is_enqueued(pipeline, encoding):
    raw = json.dumps({"profiles": [profile("jose@example.com", {"city": "Malmö"})]}, ensure_ascii=False)
    status, answer = call(pipeline, binary_event(pipeline, raw.encode(encoding)))
    assert (status, answer["error"]) == (400, "INVALID_ENCODING")
    assert "UTF-8" in answer["detail"]
    assert queued_messages(pipeline) == []


def test_a_utf8_body_with_a_byte_order_mark_is_accepted(pipeline):
    raw = json.dumps({"profiles": [profile("jose@example.com", {"city": "Malmö"})]}, ensure_ascii=False)
    status, answer = call(pipeline, binary_event(pipeline, raw.encode("utf-8-sig")))
    assert (status, answer["accepted"]) == (202, 1)


def test_an_event_body_that_cannot_be_encoded_gets_400(pipeline):
    event = proxy_event(b'{"profiles": []}', pipeline.signing_secret)
    event["body"] = '{"profiles": ["\ud800"]}'
    status, answer = call(pipeline, event)
    assert (status, answer["error"]) == (400, "INVALID_BODY")
    assert "lone surrogate" in answer["detail"]


def test_a_body_marked_base64_that_is_not_gets_400(pipeline):
    event = proxy_event(b'{"profiles": [{}]}', pipeline.signing_secret)
    event.update(body="%%% not base64 %%%", isBase64Encoded=True)
    status, answer = call(pipeline, event)
    assert (status, answer["error"]) == (400, "INVALID_BODY")


@pytest.mark.parametrize(
    "body",
    [
        b'{"profiles": [{"identityMap": {"email": [{"id": "a@example.com"}]}, "attributes": {"x": NaN}}]}',
        b'{"profiles": [{"identityMap": {"email": [{"id": "a@example.com"}]}, "attributes": {"x": Infinity}}]}',
        b'{"profiles": [{}, ' + b"[" * 100_000 + b"]" * 100_000 + b", NaN]}",
        b'{"profiles": [' + b"[" * 100_000 + b"]" * 99_999 + b"]}",
    ],
    ids=["NaN", "Infinity", "NaN-after-a-deep-profile", "deep-and-unclosed"],
)
def test_json_that_is_not_strict_json_gets_400(pipeline, body):
    answer = pipeline.ingest(body)
    assert (answer["status"], answer["body"]["error"]) == (400, "INVALID_JSON")


def deep(depth, leaf=1):
    """`depth` nested arrays and objects, alternately, around `leaf`, built without recursion."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    return value


def deep_json(depth):
    """The JSON text of `depth` nested arrays around 1, for depths the json module cannot write."""
    return "[" * depth + "1" + "]" * depth


DEEP_PLACES = {
    "extra field": lambda text: f'{{"identityMap": {{"email": [{{"id": "b@example.com"}}]}}, "extra": {text}}}',
    "attribute": lambda text: (
        f'{{"identityMap": {{"email": [{{"id": "b@example.com"}}]}}, "attributes": {{"x": {text}}}}}'
    ),
    "identity": lambda text: f'{{"identityMap": {{"email": [{{"id": "b@example.com", "x": {text}}}]}}}}',
    "membership": lambda text: (
        '{"identityMap": {"email": [{"id": "b@example.com"}]}, "segmentMembership": {"ups": {"a1": '
        f'{{"status": "realized", "lastQualificationTime": "2025-01-01T00:00:00Z", "x": {text}}}}}}}}}'
    ),
    "the profile": lambda text: text,
}


@pytest.mark.parametrize("depth", [254, 300, 990, 5_000, 1_000_000])
@pytest.mark.parametrize("place", DEEP_PLACES.values(), ids=DEEP_PLACES)
def test_deep_nesting_inside_a_profile_refuses_that_profile_at_most(pipeline, place, depth):
    good = json.dumps(profile("a@example.com"))
    body = f'{{"profiles": [{good}, {place(deep_json(depth))}, {good}]}}'.encode()
    answer = pipeline.ingest(body)
    assert answer["status"] == 202
    refused = {r["index"]: r["reason"] for r in answer["body"]["rejected"]}
    assert answer["body"]["accepted"] == 3 - len(refused)
    assert set(refused.items()) <= {(1, "INVALID_PROFILE"), (1, "INVALID_ATTRIBUTE"), (1, "INVALID_MEMBERSHIP")}
    assert [m["email"] for m in bodies(queued_messages(pipeline))].count("a@example.com") == 2


@pytest.mark.parametrize(
    "text",
    [
        "1",
        '"a@example.com"',
        "null",
        "[]",
        "1" * 5000,
        json.dumps(deep(254)),
        json.dumps({"identityMap": {"email": [{"id": "b@example.com"}], "k" * 1_000_000: []}, "attributes": 5}),
        json.dumps({"identityMap": {"email": [{"id": "b@example.com"}]}, "attributes": {"n": 1}}).replace(
            "1}", "1" * 5000 + "}"
        ),
    ],
    ids=[
        "number",
        "string",
        "null",
        "array",
        "huge-int",
        "254-deep",
        "huge-key",
        "huge-int-attribute",
    ],
)
def test_a_profile_that_is_wrong_inside_is_refused_alone_as_invalid_profile(pipeline, text):
    good = json.dumps(profile("a@example.com"))
    answer = pipeline.ingest(f'{{"profiles": [{good}, {text}]}}'.encode())
    assert answer["status"] == 202
    assert answer["body"]["accepted"] == 1
    assert [(r["index"], r["reason"]) for r in answer["body"]["rejected"]] == [(1, "INVALID_PROFILE")]
    assert [m["email"] for m in bodies(queued_messages(pipeline))] == ["a@example.com"]


@pytest.mark.parametrize("value", [deep(300), {"value": deep(300)}], ids=["plain", "wrapped"])
def test_a_deeply_nested_attribute_is_refused_alone_naming_the_attribute(pipeline, value):
    bad = {"identityMap": {"email": [{"id": "b@example.com"}]}, "attributes": {"x": value}}
    answer = pipeline.ingest(json.dumps({"profiles": [profile("a@example.com"), bad]}).encode())
    assert answer["status"] == 202
    [rejection] = answer["body"]["rejected"]
    assert (rejection["index"], rejection["reason"]) == (1, "INVALID_ATTRIBUTE")
    assert rejection["detail"].startswith("attributes.x: expected")
    assert [m["email"] for m in bodies(queued_messages(pipeline))] == ["a@example.com"]


@pytest.mark.parametrize(
    "body",
    [
        deep_json(100_000),
        '{"profiles": ' + "1" * 5000 + "}",
        '{"profiles": {"a": ' + deep_json(100_000) + '}, "audiences": {}}',
    ],
    ids=["deep-body", "huge-int-profiles", "profiles-an-object"],
)
def test_a_body_whose_top_level_is_wrong_gets_422_however_deep(pipeline, body):
    answer = pipeline.ingest(body.encode())
    assert (answer["status"], answer["body"]["error"]) == (422, "INVALID_REQUEST")


def test_bad_profiles_are_per_index_rejections_never_a_failed_request(pipeline):
    far_future = {"aud-1": {"status": "realized", "lastQualificationTime": "9999-12-31T00:00:00Z"}}
    body = json.dumps(
        {
            "profiles": [
                1,
                profile("a@example.com", {"x": "__TOO_BIG__"}),
                profile("b@example.com", {"x": "\ud800"}),
                profile(
                    "c@example.com",
                    audiences={"": {"status": "realized", "lastQualificationTime": "2025-01-01T00:00:00Z"}},
                ),
                profile("d@example.com", audiences=far_future),
                profile("ok@example.com", {"firstname": "Ok"}),
            ]
        }
    ).encode()
    body = body.replace(b'"__TOO_BIG__"', b"1e309")  # valid JSON that parses to infinity
    answer = pipeline.ingest(body)
    assert answer["status"] == 202
    assert answer["body"]["accepted"] == 1
    assert [(r["index"], r["reason"]) for r in answer["body"]["rejected"]] == [
        (0, "INVALID_PROFILE"),
        (1, "INVALID_ATTRIBUTE"),
        (2, "INVALID_PROFILE"),
        (3, "INVALID_MEMBERSHIP"),
        (4, "INVALID_MEMBERSHIP"),
    ]


@pytest.mark.parametrize("secret", ["not json", json.dumps({"bearerTokens": [""]}), json.dumps([1, 2])])
def test_a_malformed_webhook_secret_is_a_503_not_a_crash(pipeline, secret):
    boto3.client("secretsmanager").put_secret_value(SecretId=WEBHOOK_SECRET_NAME, SecretString=secret)
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
    answer = pipeline.ingest(b'{"profiles": [{}]}')
    assert (answer["status"], answer["body"]["error"]) == (503, "SERVICE_UNAVAILABLE")


def test_a_huge_identity_list_is_answered_quickly(pipeline):
    identities = [{"id": f"{i}@b.zz"} for i in range(50_000)]
    answer = pipeline.ingest(json.dumps({"profiles": [{"identityMap": {"email": identities}}]}).encode())
    assert answer["status"] == 202
    [rejection] = answer["body"]["rejected"]
    assert rejection["reason"] == "INVALID_EMAIL"
    assert len(rejection["detail"]) < 1000


@pytest.fixture
def portal_pipeline(pipeline_env):
    with LocalPipeline(
        portal=load_portal(EVENTS / "portals" / "bug-cases.json"), handler_output=io.StringIO()
    ) as running:
        yield running


@pytest.mark.parametrize(
    "attributes",
    [
        {"trial_end_date": "999999999999999"},
        {"last_seen": "0001-01-01T00:00:00+01:00"},
        {"trial_end_date": 1e20},
        {"lifetime_value": "1E+999999999999999999"},
        {"lifetime_value": "1e99999999"},
    ],
)
def test_values_out_of_range_are_dropped_and_neighbours_written(portal_pipeline, attributes):
    body = json.dumps(
        {
            "profiles": [
                profile("innocent@example.com", {"firstname": "I"}),
                profile("bad@example.com", {**attributes, "firstname": "B"}),
            ]
        }
    )
    assert portal_pipeline.ingest(body.encode())["status"] == 202
    portal_pipeline.drain(max_wait_s=5)
    assert_all_accounted_for(portal_pipeline)
    contacts = {c["properties"]["email"]: c["properties"] for c in portal_pipeline.emulator.snapshot()["contacts"]}
    assert contacts["innocent@example.com"]["firstname"] == "I"
    assert contacts["bad@example.com"]["firstname"] == "B"
    assert not any(contacts["bad@example.com"].get(name) for name in attributes)
    assert portal_pipeline.dead_letters() == []


def test_a_revoked_token_requeues_profiles_without_audiences_too(pipeline_env):
    hubspot = HubSpotEmulator(tokens={EMULATOR_TOKEN: PRODUCT_SCOPES}, faults=FaultConfig(revoke_token_after=0))
    with hubspot, LocalPipeline(emulator=hubspot, handler_output=io.StringIO()) as pipeline:
        pipeline.ingest(json.dumps({"profiles": [profile("r1@example.com", {"firstname": "R"})]}).encode())
        stats = pipeline.drain(max_wait_s=0)
        assert_all_accounted_for(pipeline, queued=1)  # requeued until the token works again
        assert stats["invocations"] == 1  # requeued once, no crash loop
        assert pipeline.dead_letters() == []


def test_an_audience_property_that_cannot_be_created_affects_only_its_contacts(pipeline_env):
    fillers = [
        {
            "name": f"filler_{i}",
            "label": f"Filler {i}",
            "type": "string",
            "fieldType": "text",
            "groupName": "contactinformation",
        }
        for i in range(1000)
    ]
    with LocalPipeline(portal={"properties": fillers}, handler_output=io.StringIO()) as pipeline:
        audience = {"newaud": {"status": "realized", "lastQualificationTime": "2025-01-01T00:00:00Z"}}
        body = {
            "profiles": [
                profile("x@example.com", {"firstname": "X"}, audience),
                profile("y@example.com", {"firstname": "Y"}),
            ]
        }
        pipeline.ingest(json.dumps(body).encode())
        pipeline.drain()
        assert_all_accounted_for(pipeline)
        contacts = {c["properties"]["email"]: c["properties"] for c in pipeline.emulator.snapshot()["contacts"]}
        letters = pipeline.dead_letters()
    assert contacts["x@example.com"]["firstname"] == "X"
    assert contacts["y@example.com"]["firstname"] == "Y"
    assert [(letter["email"], letter["reason"]) for letter in letters] == [("x@example.com", "PROPERTY_CONFLICT")]


def test_base64_flag_with_a_valid_body_still_works(pipeline):
    raw = json.dumps({"profiles": [profile("a@example.com")]}).encode()
    event = proxy_event(raw, pipeline.signing_secret)
    event.update(body=base64.b64encode(raw).decode(), isBase64Encoded=True)
    assert call(pipeline, event)[0] == 202


@pytest.mark.parametrize(
    "refused",
    [
        lambda key: profile("a@example.com", {key: {"nested": 1}}),
        lambda key: profile("a@example.com", audiences={key: {"status": "gone"}}),
        lambda key: {"identityMap": {key: "not a list"}},
    ],
    ids=["attribute", "audience", "identity-namespace"],
)
@pytest.mark.parametrize("key", ["k" * 4_500_000, "\ud800\x00" * 1000], ids=["huge", "unencodable"])
def test_the_answer_stays_small_and_encodable_whatever_the_keys(pipeline, refused, key):
    body = json.dumps({"profiles": [refused(key), profile("ok@example.com")]}).encode()
    event = proxy_event(body, pipeline.signing_secret)
    response = pipeline.ingest_module.lambda_handler(event, LambdaContext("IngestFunction", 10))
    assert response["statusCode"] == 202
    assert len(response["body"].encode()) < 1000
    answer = json.loads(response["body"])
    assert answer["accepted"] == 1
    assert [r["index"] for r in answer["rejected"]] == [0]


def test_a_membership_at_the_epoch_is_written_and_one_before_it_refused_at_ingest(pipeline):
    def member(email, moment):
        return profile(email, audiences={"epoch-aud": {"status": "realized", "lastQualificationTime": moment}})

    body = {
        "profiles": [
            member("epoch@example.com", "1970-01-01T00:00:00Z"),
            member("old@example.com", "1969-12-31T23:59:59Z"),
        ]
    }
    answer = pipeline.ingest(json.dumps(body).encode())
    assert [(r["index"], r["reason"]) for r in answer["body"]["rejected"]] == [(1, "INVALID_MEMBERSHIP")]
    pipeline.drain(max_wait_s=5)
    [contact] = pipeline.emulator.snapshot()["contacts"]
    assert contact["properties"]["email"] == "epoch@example.com"
    assert contact["properties"][audience_property_name("epoch-aud")] == "realized"
    assert pipeline.dead_letters() == []

"""IngestFunction through its real handler: API Gateway proxy events in, moto SQS and Secrets Manager behind."""

import base64
import json
import time

import pytest

from hubspot_destination.ingest.signature import sign
from hubspot_local.lambda_runtime import LambdaContext
from hubspot_local.pipeline import proxy_event
from tests.conftest import EVENTS, bodies, queued_messages
from tests.helpers import BAD_CREDENTIALS


def call(pipeline, event):
    response = pipeline.ingest_module.lambda_handler(event, LambdaContext("IngestFunction", 10))
    return response["statusCode"], json.loads(response["body"])


def test_sample_activation_is_accepted_split_and_enqueued(pipeline, activation_body):
    status, body = call(pipeline, proxy_event(activation_body, pipeline.signing_secret))
    assert status == 202
    assert body["accepted"] == 5
    assert body["rejected"] == [{"index": 4, "reason": "INVALID_EMAIL", "detail": body["rejected"][0]["detail"]}]
    assert ".con" in body["rejected"][0]["detail"]
    messages = bodies(queued_messages(pipeline))
    assert sorted(m["email"] for m in messages) == [
        "ana.garcia@example.com",
        "ben.okafor@example.org",  # trimmed and lower-cased
        "chen.li@example.net",
        "dara.obrien@example.ie",
        "farah.haddad@example.com",
    ]
    ana = next(m for m in messages if m["email"] == "ana.garcia@example.com")
    assert ana["attributes"]["city"] == "Lisbon"
    assert {k: v["status"] for k, v in ana["audiences"].items()} == {
        "0b7a6c1e-3f2d-4e59-9a61-5c4d3b2a1f00": "realized",
        "9e8d7c6b-5a49-4382-b1f0-e2d3c4b5a697": "exited",
    }
    assert all(m["request_id"] == body["requestId"] for m in messages)


def test_bearer_key_is_accepted(pipeline, activation_body):
    pipeline.set_sender_credentials(bearer_tokens=["k-123-0123456789abcdef"], signing_secrets=[])
    event = proxy_event(activation_body, "unused")
    del event["headers"]["X-Signature"]
    event["headers"]["Authorization"] = "Bearer k-123-0123456789abcdef"
    assert call(pipeline, event)[0] == 202


@pytest.mark.parametrize("mutate", [change for _, change in BAD_CREDENTIALS], ids=[i for i, _ in BAD_CREDENTIALS])
def test_unauthenticated_requests_get_401_and_nothing_is_enqueued(pipeline, activation_body, mutate):
    event = proxy_event(activation_body, pipeline.signing_secret)
    mutate(event, pipeline.signing_secret)
    status, body = call(pipeline, event)
    assert status == 401
    assert body["error"] == "UNAUTHORIZED"
    assert queued_messages(pipeline) == []


def test_base64_body_is_verified_over_the_decoded_bytes(pipeline, activation_body):
    event = proxy_event(activation_body, pipeline.signing_secret)
    event["body"] = base64.b64encode(activation_body).decode()
    event["isBase64Encoded"] = True
    assert call(pipeline, event)[0] == 202


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "INVALID_JSON"),
        (b'{"profiles": []}', "application/json", 422, "INVALID_REQUEST"),
        (b'{"profiles": "x"}', "application/json", 422, "INVALID_REQUEST"),
        (b"[1, 2]", "application/json", 422, "INVALID_REQUEST"),
        (b'{"profiles": [{}]}', "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE"),
    ],
)
def test_bad_bodies_get_json_errors_never_500(pipeline, body, content_type, status, code):
    event = proxy_event(body, pipeline.signing_secret)
    event["headers"]["Content-Type"] = content_type
    answer = call(pipeline, event)
    assert answer == (status, {"error": code, "detail": answer[1]["detail"]})
    assert answer[1]["detail"]


def test_too_many_profiles_is_413(pipeline, monkeypatch):
    monkeypatch.setenv("MAX_PROFILES_PER_REQUEST", "2")
    from hubspot_local.lambda_runtime import load_handler_module

    module = load_handler_module("ingest")
    profile = {"identityMap": {"email": [{"id": "a@example.com"}]}}
    body = json.dumps({"profiles": [profile] * 3}).encode()
    response = module.lambda_handler(proxy_event(body, pipeline.signing_secret), LambdaContext("IngestFunction", 10))
    assert response["statusCode"] == 413
    assert json.loads(response["body"])["error"] == "TOO_MANY_PROFILES"


@pytest.mark.parametrize(
    ("variable", "audiences", "refused"),
    [
        ("MAX_AUDIENCES_PER_PROFILE", 4, [0]),
        ("MAX_AUDIENCES_PER_REQUEST", 5, [1]),
        ("MAX_AUDIENCES_PER_REQUEST", 6, []),
    ],
)
def test_audience_limits_are_read_from_the_environment(pipeline, monkeypatch, variable, audiences, refused):
    monkeypatch.setenv(variable, str(audiences))
    from hubspot_local.lambda_runtime import load_handler_module

    module = load_handler_module("ingest")
    membership = {"status": "realized", "lastQualificationTime": "2025-03-04T10:00:00Z"}

    def member(email, *ids):
        return {"identityMap": {"email": [{"id": email}]}, "segmentMembership": {"ups": dict.fromkeys(ids, membership)}}

    body = json.dumps(
        {"profiles": [member("a@example.com", "a1", "a2", "a3", "a4", "a5"), member("b@example.com", "b1")]}
    )
    event = proxy_event(body.encode(), pipeline.signing_secret)
    response = module.lambda_handler(event, LambdaContext("IngestFunction", 10))
    answer = json.loads(response["body"])
    assert [(r["index"], r["reason"]) for r in answer["rejected"]] == [(i, "TOO_MANY_AUDIENCES") for i in refused]


def test_queue_failure_is_a_503_so_the_sender_retries(pipeline, activation_body):
    pipeline.sqs.delete_queue(QueueUrl=pipeline.queue_url)
    status, body = call(pipeline, proxy_event(activation_body, pipeline.signing_secret))
    assert status == 503
    assert body["error"] == "SERVICE_UNAVAILABLE"


def test_unknown_route_is_a_json_404(pipeline, activation_body):
    event = proxy_event(activation_body, pipeline.signing_secret)
    event["path"] = "/v1/other"
    assert call(pipeline, event)[0] == 404


def test_the_committed_api_gateway_event_works_when_re_signed(pipeline):
    template = json.loads((EVENTS / "apigw-activation.json").read_text())
    raw = base64.b64decode(template["body"]) if template.get("isBase64Encoded") else template["body"].encode()
    status, body = call(pipeline, proxy_event(raw, pipeline.signing_secret, template))
    assert status == 202
    assert body["accepted"] == 5


def signed_event(pipeline, body, signed_at):
    """A proxy event arriving now whose X-Signature was made at `signed_at` (Unix seconds)."""
    event = proxy_event(body, pipeline.signing_secret)
    event["headers"]["X-Signature"] = sign(pipeline.signing_secret, signed_at, body)
    return event


@pytest.mark.parametrize("older_by_s", [1, 120, 240])  # inside the 300-s tolerance, with room for the drains
def test_a_replayed_signed_request_never_restores_older_values(pipeline, older_by_s):
    def body(city):
        profile = {"identityMap": {"email": [{"id": "replay@example.com"}]}, "attributes": {"city": city}}
        return json.dumps({"profiles": [profile]}).encode()

    now = int(time.time())
    old = signed_event(pipeline, body("York"), now - older_by_s)
    for event in (old, signed_event(pipeline, body("Leeds"), now), old):  # the old request replayed last
        assert call(pipeline, event)[0] == 202
        pipeline.drain(max_wait_s=5)
    [contact] = pipeline.emulator.snapshot()["contacts"]
    assert contact["properties"]["city"] == "Leeds"

"""A hostile or broken HubSpot (or whatever answers in its place) never stalls delivery, receives personal data
elsewhere, exhausts memory or gets an innocent contact blamed: the emulator's hostile-answer fault injection
(docs/emulator.md, "Hostile answers") against the production client and the real handlers."""

import http.server
import io
import json
import threading
import time
import tracemalloc

import pytest

from hubspot_destination.domain.deadline import Deadline
from hubspot_destination.hubspot.client import HubSpotClient
from hubspot_destination.hubspot.errors import HubSpotMalformedAnswer, HubSpotTransientError
from hubspot_local.emulator import PRODUCT_SCOPES, FaultConfig, HubSpotEmulator
from hubspot_local.emulator.hostile import MALFORMED_BODIES
from hubspot_local.lambda_runtime import LambdaContext
from hubspot_local.pipeline import EMULATOR_TOKEN, LocalPipeline
from tests.conftest import queued_messages
from tests.helpers import assert_all_accounted_for

UPSERT = "batch/upsert"
PROFILES = [{"identityMap": {"email": [{"id": f"user{n}@example.com"}]}, "attributes": {}} for n in range(5)]


def emulator(**faults) -> HubSpotEmulator:
    return HubSpotEmulator(tokens={EMULATOR_TOKEN: PRODUCT_SCOPES}, faults=FaultConfig(seed=3, **faults))


def client(hubspot: HubSpotEmulator, **options) -> HubSpotClient:
    return HubSpotClient(lambda refresh=False: EMULATOR_TOKEN, base_url=hubspot.base_url, **options)


class Recorder(http.server.ThreadingHTTPServer):
    """A server on another port: whatever a redirect-following client would send it is recorded."""

    def __init__(self):
        self.received: list[bytes] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                recorder.received.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                self.send_response(200)
                self.end_headers()

            do_GET = do_PATCH = do_POST

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


def ingest_and_drain(pipeline, profiles=PROFILES, max_wait_s=60.0) -> None:
    assert pipeline.ingest(json.dumps({"profiles": profiles}).encode())["status"] == 202
    pipeline.drain(max_wait_s=max_wait_s)
    assert_all_accounted_for(pipeline)


def written(pipeline) -> set[str]:
    return {c["properties"]["email"] for c in pipeline.emulator.snapshot()["contacts"]}


@pytest.mark.parametrize(
    "headers",
    [
        {"X-HubSpot-RateLimit-Interval-Milliseconds": "999999999999", "X-HubSpot-RateLimit-Remaining": "0"},
        {"X-HubSpot-RateLimit-Interval-Milliseconds": "0", "X-HubSpot-RateLimit-Max": "0"},
        {"X-HubSpot-RateLimit-Remaining": "-5", "X-HubSpot-RateLimit-Max": "abc"},
        {"X-HubSpot-RateLimit-Interval-Milliseconds": ["10000", "999999999"]},
        {"X-HubSpot-RateLimit-Remaining": None, "X-HubSpot-RateLimit-Max": None},
        {"Retry-After": "999999999999", "X-HubSpot-RateLimit-Interval-Milliseconds": "1e12"},
    ],
    ids=["huge-interval", "zeros", "negative", "repeated", "absent", "huge-retry-after"],
)
def test_poisoned_rate_limit_headers_never_stall_delivery(pipeline_env, headers):
    hubspot = emulator(header_overrides={"rate": 1.0, "headers": headers})
    with hubspot, LocalPipeline(emulator=hubspot) as pipeline:
        ingest_and_drain(pipeline)
        assert written(pipeline) == {p["identityMap"]["email"][0]["id"] for p in PROFILES}
        assert pipeline.dead_letters() == []


@pytest.mark.parametrize("interval_ms", [1000, 10000])
def test_a_poisoned_answer_slows_a_warm_client_for_one_window_at_most(pipeline_env, interval_ms):
    # Remaining 0 is a valid value: what it says expires one interval later, and the client recovers on its
    # own (a 1-s window is not the burst limit paced, and is passed over).
    poisoned = {"X-HubSpot-RateLimit-Remaining": "0", "X-HubSpot-RateLimit-Interval-Milliseconds": str(interval_ms)}
    with emulator(header_overrides={"rate": 1.0, "headers": poisoned, "paths": ["properties"]}) as hubspot:
        paced = client(hubspot, requests_per_10s=190)
        paced.list_properties()
        # The next request may go within one window at most, never after an unbounded wait.
        assert paced.pacer.reserve(latest_s=interval_ms / 1000) is not None


def test_a_redirect_is_never_followed_and_the_body_goes_nowhere_else(pipeline_env):
    recorder = Recorder()
    try:
        one = [{"id": "ada@example.com", "idProperty": "email", "properties": {"email": "ada@example.com"}}]
        hubspot = emulator(redirect={"rate": 1.0, "to": recorder.url, "status": 307})
        with hubspot, pytest.raises(HubSpotMalformedAnswer, match="redirect"):
            client(hubspot).batch_upsert_contacts(one)
        hubspot = emulator(redirect={"rate": 0.4, "to": recorder.url, "status": 308, "paths": [UPSERT]})
        with hubspot, LocalPipeline(emulator=hubspot) as pipeline:
            ingest_and_drain(pipeline)
            assert len(written(pipeline)) == len(PROFILES)  # retried until HubSpot itself answered
            assert pipeline.dead_letters() == []
        assert recorder.received == []
    finally:
        recorder.shutdown()


@pytest.mark.parametrize("chunked", [False, True])
def test_an_answer_dripped_byte_by_byte_ends_by_the_deadline(pipeline_env, chunked):
    with emulator(drip={"rate": 1.0, "interval_seconds": 0.5, "chunked": chunked}) as hubspot:
        slow = client(hubspot, timeout_s=2.0, retries=0)  # each socket read is answered well within 2 s
        started = time.monotonic()
        with pytest.raises(HubSpotTransientError, match="deadline"):
            slow.list_properties(Deadline.after(3.0))
        # The dripped answer takes minutes; the request ended at its deadline (plus scheduling slack).
        assert time.monotonic() - started < 3.0 + 5.0


@pytest.mark.parametrize(
    "faults",
    [
        {"huge_body": {"rate": 1.0, "size_bytes": 200_000_000}},
        {"huge_body": {"rate": 1.0, "size_bytes": 200_000_000, "chunked": True}},
        {"gzip_bomb": {"rate": 1.0, "inflated_bytes": 500_000_000}},
    ],
    ids=["content-length", "chunked", "gzip-bomb"],
)
def test_unbounded_answers_are_refused_without_reading_them_into_memory(pipeline_env, faults):
    with emulator(**faults) as hubspot:
        bounded = client(hubspot)
        tracemalloc.start()
        try:
            with pytest.raises(HubSpotMalformedAnswer):
                bounded.list_properties()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 32 * 1024 * 1024  # the answers are 200-500 MB; the client reads at most 8 MiB


@pytest.mark.parametrize("kind", sorted(MALFORMED_BODIES))
def test_a_malformed_answer_is_a_transient_fault_that_blames_no_contact(pipeline_env, monkeypatch, kind):
    monkeypatch.setenv("RETRY_BASE_DELAY_SECONDS", "0")  # the retried profiles come back at once
    hubspot = emulator(malformed={"rate": 1.0, "bodies": [kind], "paths": [UPSERT]})
    output = io.StringIO()
    with hubspot, LocalPipeline(emulator=hubspot, handler_output=output) as pipeline:
        assert pipeline.ingest(json.dumps({"profiles": PROFILES}).encode())["status"] == 202
        [message] = queued_messages(pipeline)
        record = {"messageId": message["MessageId"], "body": message["Body"], "eventSource": "aws:sqs"}
        response = pipeline.deliver_module.lambda_handler({"Records": [record]}, LambdaContext("DeliverFunction", 60))
        assert response == {"batchItemFailures": []}
        # The event source mapping deletes a record the response does not name.
        pipeline.sqs.delete_message(QueueUrl=pipeline.queue_url, ReceiptHandle=message["ReceiptHandle"])
        assert pipeline.dead_letters() == []  # nobody is blamed for an answer that names nobody
        assert_all_accounted_for(pipeline, queued=len(PROFILES))  # all back on the queue
        requeued = queued_messages(pipeline)
    assert [json.loads(m["Body"])["attempt"] for m in requeued] == [1]  # retried later: a transient fault
    [settled] = [json.loads(line) for line in output.getvalue().splitlines() if '"batch settled"' in line]
    # A result naming a trace id never sent leaves every input unaccounted; anything else is not HubSpot's.
    expected = "UNACCOUNTED" if kind == "unknown_trace_id" else "HUBSPOT_MALFORMED_ANSWER"
    assert settled["reasons"] == {expected: len(PROFILES)}

"""Every fault path of delivery, against the emulator's fault injection over real HTTP: nothing is lost,
back-pressure never reaches the dead-letter queue, and configuration faults do not empty the queue into it."""

import io
import json
import time

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters

from hubspot_destination.domain.deadline import Deadline
from hubspot_destination.hubspot.client import HubSpotClient
from hubspot_destination.hubspot.errors import HubSpotAuthError, HubSpotNoTimeLeft, HubSpotTransientError
from hubspot_local.emulator import PRODUCT_SCOPES, FaultConfig, HubSpotEmulator
from hubspot_local.lambda_runtime import LambdaContext
from hubspot_local.pipeline import EMULATOR_TOKEN, LocalPipeline
from tests.conftest import emf_metrics, queued_messages
from tests.helpers import assert_all_accounted_for

PROFILES = [
    {
        "identityMap": {"email": [{"id": f"user{i}@example.com"}]},
        "attributes": {"firstname": {"value": f"User {i}"}},
        "segmentMembership": {
            "ups": {"aud-1": {"status": "realized", "lastQualificationTime": "2025-03-04T10:00:00Z"}}
        },
    }
    for i in range(30)
]
EMAILS = {f"user{i}@example.com" for i in range(30)}


@pytest.fixture
def fast_requeues(pipeline_env, monkeypatch):
    monkeypatch.setenv("THROTTLE_REQUEUE_SECONDS", "1")
    monkeypatch.setenv("HUBSPOT_TIMEOUT_SECONDS", "1")


def run_with(emulator, *, drain_kwargs=None, queued=0):
    """Ingest `PROFILES` and drain; `queued`: profiles expected to be left on the queue."""
    with emulator, LocalPipeline(emulator=emulator) as pipeline:
        assert pipeline.ingest(json.dumps({"profiles": PROFILES}).encode())["status"] == 202
        # Long enough for profiles requeued several times (1 s, 2 s, 4 s, ... locally) to come back; the
        # drain ends as soon as the queue is empty.
        pipeline.drain(**(drain_kwargs or {"max_wait_s": 150}))
        assert_all_accounted_for(pipeline, queued=queued)
        return {
            "emails": {c["properties"]["email"] for c in emulator.snapshot()["contacts"]},
            "written": {c["properties"]["email"]: c["properties"] for c in emulator.snapshot()["contacts"]},
            "dead_letters": pipeline.dead_letters(),
            "requests": emulator.snapshot()["requests"],
        }


def emulator(**kwargs) -> HubSpotEmulator:
    kwargs.setdefault("tokens", {EMULATOR_TOKEN: PRODUCT_SCOPES})
    return HubSpotEmulator(**kwargs)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 423, 477])
def test_server_errors_are_retried_until_every_contact_is_written(fast_requeues, status):
    outcome = run_with(emulator(faults=FaultConfig(seed=7, error_rates={status: 0.4})))
    assert outcome["emails"] == EMAILS
    assert outcome["dead_letters"] == []
    assert any(r["status"] == status for r in outcome["requests"])


def test_connection_resets_are_retried(fast_requeues):
    outcome = run_with(emulator(faults=FaultConfig(seed=3, reset_rate=0.4)))
    assert outcome["emails"] == EMAILS
    assert outcome["dead_letters"] == []
    assert any(r["status"] is None for r in outcome["requests"])


def test_answers_slower_than_the_client_timeout_are_retried(fast_requeues):
    outcome = run_with(emulator(faults=FaultConfig(seed=5, slow_rate=0.3, slow_seconds=1.5)))
    assert outcome["emails"] == EMAILS
    assert outcome["dead_letters"] == []


def test_ten_secondly_429_with_no_time_left_is_requeued_not_dead_lettered(fast_requeues):
    faults = FaultConfig(seed=1, burst_429_rate=0.5, burst_429_length=2)
    # A 7 s function timeout leaves no room to wait 10 s for the window: the records are requeued.
    outcome = run_with(emulator(faults=faults), drain_kwargs={"function_timeout_s": 7})
    assert outcome["emails"] == EMAILS
    assert outcome["dead_letters"] == []
    assert any(r["status"] == 429 for r in outcome["requests"])


def test_daily_limit_stops_calls_and_keeps_everything_on_the_queue(pipeline_env):
    # The profiles wait on the queue, requeued with a delay.
    outcome = run_with(emulator(daily_limit=3), drain_kwargs={"max_wait_s": 0}, queued=len(PROFILES))
    assert outcome["dead_letters"] == []
    assert outcome["emails"] == set()
    daily = [r for r in outcome["requests"] if r["status"] == 429]
    assert len(daily) == 1  # after the DAILY 429, HubSpot is not called again


def test_missing_scope_is_a_configuration_fault_that_never_dead_letters(pipeline_env):
    scopes = PRODUCT_SCOPES - {"crm.schemas.contacts.write"}
    outcome = run_with(emulator(tokens={EMULATOR_TOKEN: scopes}), drain_kwargs={"max_wait_s": 0}, queued=len(PROFILES))
    assert outcome["dead_letters"] == []
    assert outcome["emails"] == set()
    assert any(r["status"] == 403 for r in outcome["requests"])


def test_rotated_token_is_fetched_again_after_a_401(pipeline_env):
    hubspot = emulator(
        tokens={EMULATOR_TOKEN: PRODUCT_SCOPES, "rotated-token": PRODUCT_SCOPES},
        # The first drain makes 5 requests (properties, groups, group, property, upsert); the 6th is refused.
        faults=FaultConfig(revoke_token_after=5),
    )
    with hubspot, LocalPipeline(emulator=hubspot) as pipeline:
        first, rest = PROFILES[:5], PROFILES[5:]
        pipeline.ingest(json.dumps({"profiles": first}).encode())
        pipeline.drain()  # caches the first token
        boto3.client("secretsmanager").put_secret_value(
            SecretId="hubspot-destination/hubspot-token", SecretString="rotated-token"
        )
        pipeline.ingest(json.dumps({"profiles": rest}).encode())
        pipeline.drain()
        assert_all_accounted_for(pipeline)
        emails = {c["properties"]["email"] for c in hubspot.snapshot()["contacts"]}
        statuses = [r["status"] for r in hubspot.snapshot()["requests"]]
        assert pipeline.dead_letters() == []
    parameters.clear_caches()
    assert emails == EMAILS
    assert 401 in statuses


def test_other_integration_using_the_budget_is_paced_around(fast_requeues):
    outcome = run_with(
        emulator(burst_limit=12, faults=FaultConfig(other_integration_per_window=6)),
        drain_kwargs={"function_timeout_s": 30},
    )
    assert outcome["emails"] == EMAILS
    assert outcome["dead_letters"] == []


def test_a_profile_out_of_attempts_is_dead_lettered_with_its_last_error_and_counted(pipeline_env, monkeypatch):
    monkeypatch.setenv("MAX_DELIVERY_ATTEMPTS", "1")  # the first transient fault is the last attempt
    monkeypatch.setenv("HUBSPOT_TIMEOUT_SECONDS", "1")
    output = io.StringIO()
    hubspot = emulator(faults=FaultConfig(seed=1, error_rates={503: 1.0}))
    with hubspot, LocalPipeline(emulator=hubspot, handler_output=output) as pipeline:
        assert pipeline.ingest(json.dumps({"profiles": PROFILES[:1]}).encode())["status"] == 202
        pipeline.sqs.send_message(QueueUrl=pipeline.queue_url, MessageBody="not a queue message")
        pipeline.drain()
        assert_all_accounted_for(pipeline, also_sent=["not a queue message"])
        letters = {letter["reason"]: letter for letter in pipeline.dead_letters()}
    assert set(letters) == {"RETRIES_EXHAUSTED", "MALFORMED_MESSAGE"}
    assert letters["RETRIES_EXHAUSTED"]["email"] == "user0@example.com"
    assert "503" in letters["RETRIES_EXHAUSTED"]["detail"]
    metrics = emf_metrics(output.getvalue())
    assert sum(metrics["ProfilesDeadLettered"]) == 2  # both dead letters, for the alarm
    assert sum(metrics.get("ProfilesRetried", [0])) == 0


def test_no_hubspot_request_outlives_the_invocation(pipeline_env):
    hubspot = emulator(faults=FaultConfig(seed=1, slow_rate=1.0, slow_seconds=3))
    with hubspot:
        client = HubSpotClient(lambda refresh=False: EMULATOR_TOKEN, base_url=hubspot.base_url, timeout_s=10)
        assert client.longest_request_s == 2 * (3 + 10) + 4  # attempts x (connect + read) + the wait between
        started = time.monotonic()
        with pytest.raises(HubSpotTransientError):
            client.list_properties(Deadline.after(1.5))  # less than an answer takes: one attempt, cut off in time
        assert time.monotonic() - started < 2.5
        with pytest.raises(HubSpotNoTimeLeft):
            client.list_properties(Deadline.after(0.5))  # not even worth sending
        assert len(hubspot.snapshot()["requests"]) == 1
        assert client.list_properties(Deadline.after(60.0))  # time enough: the answer comes, late as it is


def test_a_pacing_wait_longer_than_the_time_left_sends_nothing_and_waits_for_nothing(pipeline_env):
    with emulator() as hubspot:
        client = HubSpotClient(lambda refresh=False: EMULATOR_TOKEN, base_url=hubspot.base_url, requests_per_10s=1)
        client.list_properties()  # the next request may go 10 s later
        started = time.monotonic()
        with pytest.raises(HubSpotNoTimeLeft):
            client.list_properties(Deadline.after(5.0))
        assert time.monotonic() - started < 1
        assert len(hubspot.snapshot()["requests"]) == 1


class _Shrinking:
    """A deadline whose time left is read from a list: what the invocation has at each attempt."""

    def __init__(self, *left_s: float):
        self._left = iter(left_s)

    def left_s(self) -> float:
        return next(self._left)


def test_a_401_with_no_time_left_to_try_a_fresh_token_stays_an_auth_fault(pipeline_env):
    with emulator() as hubspot:
        client = HubSpotClient(lambda refresh=False: "revoked-token", base_url=hubspot.base_url)
        # Time for the first attempt, none once the token was fetched again.
        with pytest.raises(HubSpotAuthError):
            client.list_properties(_Shrinking(60.0, 0.5))


def test_contacts_not_sent_for_lack_of_time_are_requeued_without_counting_an_attempt(pipeline_env):
    with emulator() as hubspot, LocalPipeline(emulator=hubspot) as pipeline:
        assert pipeline.ingest(json.dumps({"profiles": PROFILES[:3]}).encode())["status"] == 202
        [message] = queued_messages(pipeline)
        record = {"messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"]}
        # 5.5 s left: the 5-s settle reserve leaves HubSpot half a second, less than a request may take.
        context = LambdaContext("DeliverFunction", 5.5)
        response = pipeline.deliver_module.lambda_handler({"Records": [{**record, "eventSource": "aws:sqs"}]}, context)
        pipeline.sqs.delete_message(QueueUrl=pipeline.queue_url, ReceiptHandle=message["ReceiptHandle"])  # settled
        assert_all_accounted_for(pipeline, queued=3)
        assert response == {"batchItemFailures": []}
        assert hubspot.snapshot()["requests"] == []
        assert pipeline.dead_letters() == []
        [requeued] = queued_messages(pipeline)
        assert json.loads(requeued["Body"])["attempt"] == 0
        assert len(json.loads(requeued["Body"])["profiles"]) == 3


def test_a_token_refused_mid_batch_stops_every_upsert_not_yet_sent(pipeline_env, monkeypatch):
    # 400 contacts are four groups, twice the two upserts in flight: all four are leased and waiting to send
    # when the first answers 401 (each call is tried twice: once more with the token read again).
    monkeypatch.setenv("HUBSPOT_UPSERTS_IN_FLIGHT", "2")
    profiles = [{"identityMap": {"email": [{"id": f"t{i}@example.com"}]}} for i in range(400)]
    # The property read passes; every request after it is refused.
    faults = FaultConfig(seed=1, revoke_token_after=1, latency={"median_ms": 300, "sigma": 0})
    with emulator(faults=faults) as hubspot, LocalPipeline(emulator=hubspot, handler_output=io.StringIO()) as pipeline:
        assert pipeline.ingest(json.dumps({"profiles": profiles}).encode())["status"] == 202
        stats = pipeline.drain(max_wait_s=0)
        assert_all_accounted_for(pipeline, queued=400)  # requeued until the token works again
        assert pipeline.dead_letters() == []
        upserts = [r for r in hubspot.snapshot()["requests"] if r["path"].endswith("/batch/upsert")]
    assert {r["status"] for r in upserts} == {401}
    assert len(upserts) <= 2 * 2 * stats["invocations"]  # the calls in flight when the first 401 came

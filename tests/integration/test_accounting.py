"""`LocalPipeline.accounting` and the invariant check built on it (`tests.helpers`) find what a run did not
deliver: a profile that left the queue without reaching HubSpot is lost, a contact the portal already held is
not proof of a write, and a drain that stopped with messages on the queue is a harness fault."""

import json

import pytest

from hubspot_local.emulator import PRODUCT_SCOPES, FaultConfig, HubSpotEmulator
from hubspot_local.pipeline import EMULATOR_TOKEN, LocalPipeline
from tests.conftest import queued_messages
from tests.helpers import assert_all_accounted_for

EMAILS = ["a@example.com", "b@example.com"]
BODY = json.dumps({"profiles": [{"identityMap": {"email": [{"id": email}]}} for email in EMAILS]}).encode()


def take_everything_off_the_queue(pipeline):
    for message in queued_messages(pipeline):
        pipeline.sqs.delete_message(QueueUrl=pipeline.queue_url, ReceiptHandle=message["ReceiptHandle"])


def test_profiles_that_left_the_queue_without_being_written_are_lost(pipeline):
    assert pipeline.ingest(BODY)["status"] == 202
    take_everything_off_the_queue(pipeline)
    pipeline.drain()
    accounting = pipeline.accounting()
    assert (accounting.lost, accounting.written) == (EMAILS, [])
    with pytest.raises(AssertionError, match="lost:"):
        assert_all_accounted_for(pipeline)


def test_a_contact_the_portal_already_held_is_not_written_by_this_run(pipeline_env):
    portal = {"contacts": [{"properties": {"email": email, "firstname": "Before"}} for email in EMAILS]}
    with LocalPipeline(portal=portal) as pipeline:
        assert pipeline.ingest(BODY)["status"] == 202
        take_everything_off_the_queue(pipeline)
        pipeline.drain()
        assert pipeline.accounting().lost == EMAILS
        with pytest.raises(AssertionError, match="lost:"):
            assert_all_accounted_for(pipeline)


def test_profiles_left_on_the_queue_are_a_harness_fault_not_a_loss(pipeline_env, monkeypatch):
    monkeypatch.setenv("HUBSPOT_TIMEOUT_SECONDS", "1")
    hubspot = HubSpotEmulator(tokens={EMULATOR_TOKEN: PRODUCT_SCOPES}, faults=FaultConfig(error_rates={503: 1.0}))
    with hubspot, LocalPipeline(emulator=hubspot) as pipeline:
        assert pipeline.ingest(BODY)["status"] == 202
        stats = pipeline.drain(time_limit_s=0.5)  # stops after the first attempt: both are requeued for a retry
        accounting = pipeline.accounting()
        assert sum(stats["left_on_queue"].values()) >= 1
        assert (sorted(accounting.queued), accounting.lost, accounting.written) == (EMAILS, [], [])
        with pytest.raises(AssertionError, match="harness fault"):
            assert_all_accounted_for(pipeline)
        assert_all_accounted_for(pipeline, queued=2)

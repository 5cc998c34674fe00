"""Shared fixtures: the local pipeline (moto SQS and Secrets Manager, the HubSpot emulator over loopback,
both handlers loaded as at a cold start) and the sample events."""

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from hubspot_local.pipeline import LocalPipeline

# Property tests assert behaviour, never speed: on a shared, busy machine an example may take far longer than
# hypothesis's 200-ms default deadline, and a slow example is not a failing one.
settings.register_profile("shared-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("shared-machine")

EVENTS = Path(__file__).resolve().parents[1] / "events"
# The contacts of events/activation.json that ingest accepts (its fifth profile's email is refused).
SAMPLE_EMAILS = {
    "ana.garcia@example.com",
    "ben.okafor@example.org",
    "chen.li@example.net",
    "dara.obrien@example.ie",
    "farah.haddad@example.com",
}


@pytest.fixture
def activation_body() -> bytes:
    """The sample AEP profile export."""
    return (EVENTS / "activation.json").read_bytes()


@pytest.fixture
def pipeline_env(monkeypatch):
    """The process environment as a local pipeline sets it, restored after the test."""
    for name in list(os.environ):
        if name.startswith(("QUEUE_", "WEBHOOK_", "HUBSPOT_", "DEAD_LETTER_", "MAX_", "AUDIENCE_", "AWS_", "CONTACT_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")


@pytest.fixture
def pipeline(pipeline_env):
    """A fresh local pipeline per test: moto, the emulator, both handlers loaded as at a cold start."""
    with LocalPipeline() as running:
        yield running


def queued_messages(pipeline, queue_url=None) -> list[dict]:
    """Every message on a queue (made visible again afterwards is not needed: tests read once)."""
    messages: list[dict] = []
    while True:
        answer = pipeline.sqs.receive_message(
            QueueUrl=queue_url or pipeline.queue_url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            VisibilityTimeout=60,
        )
        if not answer.get("Messages"):
            return messages
        messages.extend(answer["Messages"])


def bodies(messages: list[dict]) -> list[dict]:
    """The profiles of queue messages (each message packs several)."""
    return [profile for m in messages for profile in json.loads(m["Body"])["profiles"]]


def emf_metrics(output: str) -> dict[str, list[float]]:
    """Every metric value the handlers wrote as CloudWatch embedded metric format lines, by name."""
    values: dict[str, list[float]] = {}
    for line in output.splitlines():
        document = json.loads(line) if line.startswith("{") else {}
        for directive in document.get("_aws", {}).get("CloudWatchMetrics", []):
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                values.setdefault(metric["Name"], []).extend(value if isinstance(value, list) else [value])
    return values

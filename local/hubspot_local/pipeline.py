"""The whole pipeline on this machine: ingest handler → SQS (moto) → deliver handler → HubSpot.

AWS services run in-process under moto; HubSpot is the embedded emulator on loopback unless a real
base URL is given. The ingest handler is called as API Gateway would call it (a REST proxy event, signed
for you), and the deliver handler as the SQS event source mapping would (see `event_source_mapping`).
"""

import base64
import contextlib
import json
import os
import secrets
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import boto3
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from hubspot_destination.aws.sqs import DETAIL_ATTRIBUTE, REASON_ATTRIBUTE
from hubspot_destination.domain.identity import emails_in_identity_map
from hubspot_destination.domain.messages import message_email
from hubspot_destination.hubspot.client import HubSpotClient
from hubspot_destination.ingest.signature import sign
from hubspot_destination.observability import logger
from hubspot_local.emulator import PRODUCT_SCOPES, FaultConfig, HubSpotEmulator
from hubspot_local.event_source_mapping import EventSourceMapping
from hubspot_local.lambda_runtime import LambdaContext, load_handler_module
from hubspot_local.load import thread_safe_moto

EMULATOR_TOKEN = "local-dev-token"  # noqa: S105 - the emulator's public test token
QUEUE_NAME = "hubspot-destination-activations"
DLQ_NAME = "hubspot-destination-activations-dlq"
# The template's values (template.yaml).
MAX_RECEIVE_COUNT = 8
BATCH_SIZE = 20
DELIVER_TIMEOUT_S = 60
AUDIENCE_PROPERTY_GROUP = "aep_audiences"
VERSIONS_TABLE = "hubspot-destination-contact-versions"
WEBHOOK_SECRET_NAME = "hubspot-destination/webhook"  # noqa: S105 - a secret's name, not its value


@dataclass
class ReplayResult:
    """Everything `replay --json` prints (README, "Local tools")."""

    ingest: dict
    delivery: dict
    dead_letters: list[dict]
    hubspot: dict

    def as_dict(self) -> dict:
        """The JSON object of the CLI contract."""
        return {
            "ingest": self.ingest,
            "delivery": self.delivery,
            "dead_letters": self.dead_letters,
            "hubspot": self.hubspot,
        }


def proxy_event(body: bytes, signing_secret: str, template: dict | None = None) -> dict:
    """An API Gateway REST proxy event for `POST /v1/activations`, signed with `X-Signature`.

    Args:
        body: the raw request body.
        signing_secret: the webhook signing secret.
        template: an existing proxy event to start from (its body and credentials are replaced).
    """
    now = time.time()
    event = json.loads(json.dumps(template)) if template else {}
    headers = {
        k: v for k, v in (event.get("headers") or {}).items() if k.lower() not in ("authorization", "x-signature")
    }
    headers.setdefault("Content-Type", "application/json")
    headers["X-Signature"] = sign(signing_secret, int(now), body)
    event.update(
        {
            "resource": "/v1/activations",
            "path": "/v1/activations",
            "httpMethod": "POST",
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "body": body.decode(),
            "isBase64Encoded": False,
        }
    )
    context = event.setdefault("requestContext", {})
    context.update(
        {
            "resourcePath": "/v1/activations",
            "httpMethod": "POST",
            "path": "/prod/v1/activations",
            "stage": "prod",
            "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": int(now * 1000),
        }
    )
    context.setdefault("identity", {"sourceIp": "127.0.0.1"})
    return event


def read_request(path: Path) -> tuple[bytes, dict | None]:
    """Read FILE: a request body, or an API Gateway proxy event (whose body is taken out).

    Returns:
        `(raw body, proxy event or None)`.

    Raises:
        ValueError: when the file is not JSON.
    """
    raw = path.read_bytes()
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not JSON: {error}") from None
    if isinstance(document, dict) and "httpMethod" in document and "requestContext" in document:
        body = document.get("body") or ""
        raw_body = base64.b64decode(body) if document.get("isBase64Encoded") else body.encode()
        return raw_body, document
    return raw, None


class LocalPipeline:
    """moto + emulator + both handlers; use as a context manager.

    Args:
        hubspot_url: a HubSpot base URL to write to instead of the embedded emulator (then the token is
            read from `HUBSPOT_ACCESS_TOKEN`).
        portal: emulator pre-load (`--portal FILE` contents).
        emulator: an emulator to use instead of starting one (tests pass one with faults or scopes).
        handler_output: where the handlers' logs and metrics go (Powertools writes them to stdout, which
            stays the CLI's own); stderr by default.
    """

    def __init__(
        self,
        hubspot_url: str | None = None,
        portal: dict | None = None,
        emulator: HubSpotEmulator | None = None,
        handler_output: TextIO | None = None,
        faults: FaultConfig | None = None,
    ):
        self._handler_output = handler_output or sys.stderr
        self._faults = faults
        self._hubspot_url = hubspot_url
        self._portal = portal
        self.emulator = emulator
        self._own_emulator = emulator is None and hubspot_url is None
        self.signing_secret = secrets.token_hex(32)
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "LocalPipeline":
        stack = self._stack
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            os.environ[name] = value
        os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "hubspot-destination")
        os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "HubSpotDestination")
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
        # Local runs keep backoff short so a replay finishes in seconds (production: 10 s, doubling).
        os.environ.setdefault("RETRY_BASE_DELAY_SECONDS", "1")
        # moto runs one call at a time (below), so more lease writes in flight than 2 only add threads that
        # compete with ingest for this one interpreter (production: 16, each waiting on DynamoDB).
        os.environ.setdefault("CONTACT_VERSIONS_CONCURRENCY", "2")
        stack.enter_context(mock_aws())
        # The deliver function writes contact leases from several threads; moto is not thread-safe.
        stack.enter_context(thread_safe_moto())
        # Powertools' Logger holds the stream it was created with; point it at the handlers' output too.
        handler = logger.registered_handler
        stack.callback(handler.setStream, handler.setStream(self._handler_output))
        parameters.clear_caches()
        if self._own_emulator:
            self.emulator = stack.enter_context(
                HubSpotEmulator(tokens={EMULATOR_TOKEN: PRODUCT_SCOPES}, portal=self._portal, faults=self._faults)
            )
        base_url = self._hubspot_url or self.emulator.base_url
        token = os.environ.get("HUBSPOT_ACCESS_TOKEN", "") if self._hubspot_url else EMULATOR_TOKEN
        if not token:
            raise ValueError("set HUBSPOT_ACCESS_TOKEN to write to a real portal")
        self._token = token

        self.sqs = boto3.client("sqs")
        secretsmanager = boto3.client("secretsmanager")
        dlq_url = self.sqs.create_queue(QueueName=DLQ_NAME)["QueueUrl"]
        dlq_arn = self.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)})
        queue_url = self.sqs.create_queue(
            QueueName=QUEUE_NAME,
            Attributes={"RedrivePolicy": redrive, "VisibilityTimeout": str(6 * DELIVER_TIMEOUT_S)},
        )["QueueUrl"]
        self.queue_url, self.dlq_url = queue_url, dlq_url
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(
            TableName=VERSIONS_TABLE,
            KeySchema=[{"AttributeName": "contact", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "contact", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.update_time_to_live(
            TableName=VERSIONS_TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}
        )
        webhook = secretsmanager.create_secret(Name=WEBHOOK_SECRET_NAME, SecretString="{}")
        self.set_sender_credentials(bearer_tokens=[], signing_secrets=[self.signing_secret])
        hubspot = secretsmanager.create_secret(Name="hubspot-destination/hubspot-token", SecretString=token)
        os.environ.update(
            {
                "QUEUE_URL": queue_url,
                "WEBHOOK_SECRET_ID": webhook["ARN"],
                "HUBSPOT_TOKEN_SECRET_ID": hubspot["ARN"],
                "HUBSPOT_BASE_URL": base_url,
                "DEAD_LETTER_QUEUE_URL": dlq_url,
                "AUDIENCE_PROPERTY_GROUP": AUDIENCE_PROPERTY_GROUP,
                "CONTACT_VERSIONS_TABLE": VERSIONS_TABLE,
            }
        )
        with contextlib.redirect_stdout(self._handler_output):
            self.ingest_module = load_handler_module("ingest")
            self.deliver_module = load_handler_module("deliver")
        self.hubspot_client = HubSpotClient(lambda refresh=False: self._token, base_url=base_url)
        return self

    def set_sender_credentials(self, bearer_tokens: list[str], signing_secrets: list[str]) -> None:
        """Replace the webhook secret (as a rotation in Secrets Manager would) and drop cached copies."""
        boto3.client("secretsmanager").put_secret_value(
            SecretId=WEBHOOK_SECRET_NAME,
            SecretString=json.dumps({"bearerTokens": bearer_tokens, "signingSecrets": signing_secrets}),
        )
        parameters.clear_caches()

    def __exit__(self, *exc_info) -> None:
        self._stack.close()

    def ingest(self, raw_body: bytes, template: dict | None = None) -> dict:
        """Call the ingest handler as API Gateway would; returns `{"status", "body"}`."""
        event = proxy_event(raw_body, self.signing_secret, template)
        with contextlib.redirect_stdout(self._handler_output):
            response = self.ingest_module.lambda_handler(event, LambdaContext("IngestFunction", 10))
        body = response.get("body") or ""
        try:
            parsed = json.loads(body)
        except json.JSONDecodeError:
            parsed = body
        return {"status": response["statusCode"], "body": parsed}

    def drain(self, max_wait_s: float = 30.0, function_timeout_s: float = DELIVER_TIMEOUT_S) -> dict:
        """Run the deliver handler until the queue is empty (delayed messages are waited for up to
        `max_wait_s` seconds); returns `{"invocations", "hubspot_requests"}`."""
        mapping = EventSourceMapping(
            self.sqs,
            self.queue_url,
            self.deliver_module.lambda_handler,
            BATCH_SIZE,
            function_timeout_s,
            max_wait_s=max_wait_s,
        )
        with contextlib.redirect_stdout(self._handler_output):
            stats = mapping.drain()
        client = self.deliver_module._client() if stats.invocations else None
        return {"invocations": stats.invocations, "hubspot_requests": client.requests_sent if client else 0}

    def dead_letters(self) -> list[dict]:
        """The dead-letter queue's messages: `[{"email", "reason", "detail"}]` (read without consuming them)."""
        letters: list[dict] = []
        seen: set[str] = set()
        while True:
            answer = self.sqs.receive_message(
                QueueUrl=self.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=30
            )
            messages = [m for m in answer.get("Messages", []) if m["MessageId"] not in seen]
            if not messages:
                break
            for message in messages:
                seen.add(message["MessageId"])
                attributes = message.get("MessageAttributes", {})
                email = message_email(message["Body"])
                letters.append(
                    {
                        "email": email,
                        "reason": attributes.get(REASON_ATTRIBUTE, {}).get("StringValue", "REDRIVEN"),
                        "detail": attributes.get(DETAIL_ATTRIBUTE, {}).get("StringValue", ""),
                    }
                )
        return letters

    def hubspot_state(self, emails: list[str], attribute_names: set[str]) -> dict:
        """The contacts and custom properties as HubSpot now holds them.

        With the emulator: its whole state. With a real portal: the given emails read back with the given
        attributes and the audience properties, and the properties of the audience property group.
        """
        if self.emulator is not None:
            snapshot = self.emulator.snapshot()
            contacts = [
                {"id": c["id"], "email": c["properties"].get("email"), "properties": c["properties"]}
                for c in snapshot["contacts"]
            ]
            return {"contacts": contacts, "properties": snapshot["properties"]}
        contacts = []
        properties = [
            p.model_dump() for p in self.hubspot_client.list_properties() if p.groupName == AUDIENCE_PROPERTY_GROUP
        ]
        names = sorted({"email", *attribute_names} | {p["name"] for p in properties})
        for start in range(0, len(emails), 100):
            for record in self.hubspot_client.batch_read_contacts_by_email(emails[start : start + 100], names):
                props = record.properties
                contacts.append({"id": record.id, "email": props.get("email"), "properties": props})
        return {"contacts": contacts, "properties": properties}


def replay(
    path: Path,
    hubspot_url: str | None = None,
    portal: dict | None = None,
    handler_output: TextIO | None = None,
    faults: FaultConfig | None = None,
) -> ReplayResult:
    """Run FILE through the whole local pipeline and return what happened.

    Raises:
        ValueError: FILE is not JSON, or a real portal was asked for without `HUBSPOT_ACCESS_TOKEN`.
    """
    raw_body, template = read_request(path)
    with LocalPipeline(
        hubspot_url=hubspot_url, portal=portal, handler_output=handler_output, faults=faults
    ) as pipeline:
        ingest = pipeline.ingest(raw_body, template)
        delivery = pipeline.drain()
        dead_letters = pipeline.dead_letters()
        emails, attribute_names = _requested_contacts(raw_body)
        hubspot = pipeline.hubspot_state(emails, attribute_names)
    return ReplayResult(ingest=ingest, delivery=delivery, dead_letters=dead_letters, hubspot=hubspot)


def _requested_contacts(raw_body: bytes) -> tuple[list[str], set[str]]:
    """The emails and attribute names a request body mentions (to read them back from a real portal)."""
    try:
        profiles = json.loads(raw_body).get("profiles") or []
    except (json.JSONDecodeError, AttributeError):
        return [], set()
    emails: set[str] = set()
    names: set[str] = set()
    for profile in profiles:
        if isinstance(profile, dict) and isinstance(profile.get("identityMap"), dict):
            emails.update(emails_in_identity_map(profile["identityMap"]))
        if isinstance(profile, dict) and isinstance(profile.get("attributes"), dict):
            names.update(profile["attributes"])
    return sorted(emails), names

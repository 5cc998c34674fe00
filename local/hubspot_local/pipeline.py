"""The whole pipeline on this machine: ingest handler → SQS (moto) → deliver handler → HubSpot.

AWS services run in-process under moto, or in stand-in processes of their own (moto's server, dynalite:
`stand_ins.py`, for `bench`); HubSpot is the embedded emulator on loopback unless a real base URL is given.
The ingest handler is called as API Gateway would call it (a REST proxy event, signed for you), and the
deliver handler as the SQS event source mapping would (see `event_source_mapping`).
"""

import contextlib
import io
import json
import os
import secrets
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TextIO

import boto3
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws
from moto.core.config import default_user_config
from pydantic import ValidationError

from hubspot_destination.aws import sqs as sqs_adapter
from hubspot_destination.aws.sqs import DETAIL_ATTRIBUTE, REASON_ATTRIBUTE
from hubspot_destination.domain.identity import emails_in_identity_map
from hubspot_destination.domain.messages import decode_message
from hubspot_destination.hubspot.client import HubSpotClient
from hubspot_destination.hubspot.errors import HubSpotError
from hubspot_destination.ingest.body import parse_json, raw_request_body
from hubspot_destination.ingest.signature import sign
from hubspot_destination.observability import logger
from hubspot_local.accounting import Accounting, account, dropped_attributes, sent_profiles
from hubspot_local.api_gateway import rest_proxy_event
from hubspot_local.emulator import PRODUCT_SCOPES, FaultConfig, HubSpotEmulator
from hubspot_local.event_source_mapping import EventSourceMapping, QueueDepth, queue_depth
from hubspot_local.harness import environment, thread_safe_moto
from hubspot_local.lambda_runtime import LambdaContext, load_handler_module
from hubspot_local.moto_server import MESSAGES_PATH, queue_messages
from hubspot_local.template import deployed_settings
from hubspot_operations.dead_letters import SQS_REDRIVE_REASON
from hubspot_operations.request_file import request_body

EMULATOR_TOKEN = "local-dev-token"  # noqa: S105 - the emulator's public test token
QUEUE_NAME = "hubspot-destination-activations"
DLQ_NAME = "hubspot-destination-activations-dlq"
# What the deployed stack does (template.yaml): batch size, timeout, receives before the dead-letter queue.
DEPLOYED = deployed_settings()
AUDIENCE_PROPERTY_GROUP = "aep_audiences"
VERSIONS_TABLE = "hubspot-destination-contact-versions"
WEBHOOK_SECRET_NAME = "hubspot-destination/webhook"  # noqa: S105 - a secret's name, not its value
# `replay` stops delivering after this long (profiles requeued with long delays would otherwise keep it waiting).
REPLAY_TIME_LIMIT_S = 30.0
PROGRESS_INTERVAL_S = 5.0  # how often a drain given `progress` reports while it runs


@dataclass
class ReplayResult:
    """Everything `replay` prints (README, "Local tools").

    `ingest`: `{"status", "body"}`; `delivery`: what `LocalPipeline.drain` returned; `accounting`: where each
    profile went; `rejected`: `[{"index", "reason", "detail", "emails"}]`, the refused profiles with their
    email identities as given; `normalised_emails`: `[{"given", "email"}]` for contacts keyed by another
    spelling of the email given; `dropped_attributes`: `[{"email", "property", "code"}]` left out by the deliver
    function; `dead_letters`: `[{"email", "reason", "detail"}]`; `still_queued`: `[{"email", "attempt",
    "due_in_s"}]`, the profiles on the queue when delivery stopped; `hubspot`: `LocalPipeline.hubspot_state`.
    """

    ingest: dict
    delivery: dict
    accounting: Accounting
    rejected: list[dict]
    normalised_emails: list[dict]
    dropped_attributes: list[dict]
    dead_letters: list[dict]
    still_queued: list[dict]
    hubspot: dict

    @property
    def ok(self) -> bool:
        """Ingest took the request (202) and every profile it accepted was written."""
        return self.ingest["status"] == 202 and self.accounting.all_written

    def as_dict(self) -> dict:
        """The JSON object of the CLI contract (`profiles` holds the accounting's counts, `lost` the emails of
        the profiles that are neither written, dead-lettered nor queued)."""
        return {
            "ingest": self.ingest,
            "delivery": self.delivery,
            "profiles": self.accounting.as_dict(),
            "rejected": self.rejected,
            "normalised_emails": self.normalised_emails,
            "dropped_attributes": self.dropped_attributes,
            "dead_letters": self.dead_letters,
            "still_queued": self.still_queued,
            "lost": self.accounting.lost,
            "hubspot": self.hubspot,
        }


@dataclass(frozen=True)
class QueuedMessage:
    """A message on one of the pipeline's queues, in whatever state.

    `emails`: one per profile of the body, `[None]` for a body that is not a queue message; `attempt`: the
    body's attempt count (None when malformed); `reason` and `detail`: a dead letter's attributes (reason
    `REDRIVEN_BY_SQS` without them); `due_in_s`: seconds until it can be received (0 when visible).
    """

    emails: list[str | None]
    attempt: int | None
    reason: str
    detail: str
    due_in_s: float


def proxy_event(
    body: bytes,
    signing_secret: str,
    template: dict | None = None,
    method: str = "POST",
    path: str = "/v1/activations",
) -> dict:
    """An API Gateway REST proxy event for `method path` (by default `POST /v1/activations`), signed with
    `X-Signature`.

    Args:
        body: the raw request body (`b""` for a `GET`: API Gateway then passes `body: null`).
        signing_secret: the webhook signing secret.
        template: an existing proxy event to start from (its request, credentials and context are replaced;
            its other headers are kept).
    """
    now = time.time()
    given = (template or {}).get("headers") or {}
    headers = {k: v for k, v in given.items() if k.lower() not in ("authorization", "x-signature")}
    headers.setdefault("Content-Type", "application/json")
    headers["X-Signature"] = sign(signing_secret, int(now), body)
    event = rest_proxy_event(method, path, headers.items(), body, now=now)
    if template is None:
        return event
    return {**template, **event, "requestContext": {**template.get("requestContext", {}), **event["requestContext"]}}


class LocalPipeline:
    """moto + emulator + both handlers; use as a context manager.

    Args:
        hubspot_url: a HubSpot base URL to write to instead of the embedded emulator (then the token is
            read from `HUBSPOT_ACCESS_TOKEN`).
        portal: emulator pre-load (`--portal FILE` contents).
        emulator: an emulator to use instead of starting one (tests pass one with faults or scopes).
        handler_output: where the handlers' logs and metrics go (Powertools writes them to stdout, which
            stays the CLI's own); stderr by default.
        dynamodb_url: a DynamoDB endpoint of its own (dynalite, `stand_ins.dynalite`) instead of moto's; the
            functions reach it through `AWS_ENDPOINT_URL_DYNAMODB`, as they would reach DynamoDB.
        aws_url: moto's server as a process of its own (`stand_ins.moto_server`) for SQS and Secrets Manager,
            and for DynamoDB without `dynamodb_url`, instead of moto in this process; the functions reach it
            through `AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL_SECRETS_MANAGER` (and `..._DYNAMODB`).
    """

    def __init__(
        self,
        hubspot_url: str | None = None,
        portal: dict | None = None,
        emulator: HubSpotEmulator | None = None,
        handler_output: TextIO | None = None,
        faults: FaultConfig | None = None,
        dynamodb_url: str | None = None,
        aws_url: str | None = None,
    ):
        self._handler_output = handler_output or sys.stderr
        self._dynamodb_url = dynamodb_url
        self._aws_url = aws_url
        self._faults = faults
        self._hubspot_url = hubspot_url
        self._portal = portal
        self.emulator = emulator
        self._own_emulator = emulator is None and hubspot_url is None
        self.signing_secret = secrets.token_hex(32)
        self._stack = contextlib.ExitStack()
        self.ingested: list[tuple[bytes, dict]] = []  # (raw body, answer) of every `ingest` call
        self._updated_at: dict[str, str] = {}  # emulator contact id -> its updatedAt when the pipeline started

    def __enter__(self) -> "LocalPipeline":
        try:
            self._start()
        except BaseException:
            self._stack.close()  # what was started (moto, the emulator, the log stream) is undone
            raise
        return self

    def _start(self) -> None:
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
        # moto runs one call at a time (below), and so does dynalite (one Node.js thread), so more DynamoDB calls
        # in flight than 2 (lease transactions, record batches) only add threads that compete with ingest for
        # this one interpreter (production: 16, each waiting on DynamoDB).
        os.environ.setdefault("CONTACT_VERSIONS_CONCURRENCY", "2")
        if self._aws_url:
            stack.enter_context(
                environment(
                    AWS_ENDPOINT_URL_SQS=self._aws_url,
                    AWS_ENDPOINT_URL_SECRETS_MANAGER=self._aws_url,
                    AWS_ENDPOINT_URL_DYNAMODB=self._dynamodb_url or self._aws_url,
                )
            )
        else:
            if self._dynamodb_url:
                stack.enter_context(environment(AWS_ENDPOINT_URL_DYNAMODB=self._dynamodb_url))
            # DynamoDB calls go to its own endpoint when there is one.
            passthrough = {"urls": [], "services": ["dynamodb"] if self._dynamodb_url else []}
            config = {"core": {**default_user_config["core"], "passthrough": passthrough}}
            stack.enter_context(mock_aws(config=config))
            # The deliver function writes contact leases from several threads; moto is not thread-safe.
            stack.enter_context(thread_safe_moto())
        # The functions' SQS client is kept for the interpreter's life (one per execution environment): a new
        # pipeline's endpoints need a new one.
        sqs_adapter.client.cache_clear()
        # Powertools' Logger holds the stream it was created with; point it at the handlers' output too.
        handler = logger.registered_handler
        stack.callback(handler.setStream, handler.setStream(self._handler_output))
        parameters.clear_caches()
        if self._own_emulator:
            self.emulator = stack.enter_context(
                HubSpotEmulator(tokens={EMULATOR_TOKEN: PRODUCT_SCOPES}, portal=self._portal, faults=self._faults)
            )
        if self.emulator is not None:
            self._updated_at = {c["id"]: c["updatedAt"] for c in self.emulator.snapshot()["contacts"]}
            if "HUBSPOT_REQUESTS_PER_10S" not in os.environ:
                # Pace to the emulator's tier, as the template paces to the stack's HubSpotTier.
                os.environ["HUBSPOT_REQUESTS_PER_10S"] = str(self.emulator.burst_limit)
                stack.callback(os.environ.pop, "HUBSPOT_REQUESTS_PER_10S", None)
        self.base_url = base_url = self._hubspot_url or self.emulator.base_url
        token = os.environ.get("HUBSPOT_ACCESS_TOKEN", "") if self._hubspot_url else EMULATOR_TOKEN
        if not token:
            raise ValueError("set HUBSPOT_ACCESS_TOKEN to write to a real portal")
        self._token = token

        self.sqs = boto3.client("sqs")
        secretsmanager = boto3.client("secretsmanager")
        dlq_url = self.sqs.create_queue(QueueName=DLQ_NAME)["QueueUrl"]
        dlq_arn = self.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(DEPLOYED.max_receive_count)})
        queue_url = self.sqs.create_queue(
            QueueName=QUEUE_NAME,
            Attributes={"RedrivePolicy": redrive, "VisibilityTimeout": str(6 * DEPLOYED.timeout_s)},
        )["QueueUrl"]
        self.queue_url, self.dlq_url = queue_url, dlq_url
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(
            TableName=VERSIONS_TABLE,
            KeySchema=[{"AttributeName": "contact", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "contact", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        if not self._dynamodb_url:  # dynalite has no TTL (stand_ins.py); nothing expires during a run anyway
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
        # Where `invoke_ingest` sends requests: the module loaded here, or (the bench) an execution environment
        # in a process of its own (`function_worker.FunctionEnvironment`), started once the functions'
        # environment variables above are set.
        self.ingest_handler: Callable[[dict, LambdaContext], dict] = self.ingest_module.lambda_handler
        self.hubspot_client = HubSpotClient(lambda refresh=False: self._token, base_url=base_url)

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
        """Call the ingest handler as API Gateway would, with a signed request; returns `{"status", "body"}`
        (the body parsed when it is JSON)."""
        self.invoke_ingest(proxy_event(raw_body, self.signing_secret, template))
        return self.ingested[-1][1]

    def invoke_ingest(self, event: dict) -> dict:
        """Call the ingest handler with an API Gateway REST proxy event, and count the request for `accounting`
        (its profiles as sent). Call it from one thread at a time: the handler is one execution environment.

        Returns:
            The handler's response: `{"statusCode", "multiValueHeaders", "body", "isBase64Encoded", ...}`.
        """
        with contextlib.redirect_stdout(self._handler_output):
            response = self.ingest_handler(event, LambdaContext("IngestFunction", 10))
        body = response.get("body") or ""
        try:
            parsed = json.loads(body)
        except json.JSONDecodeError:
            parsed = body
        raw_body = raw_request_body(event.get("body"), bool(event.get("isBase64Encoded")))
        self.ingested.append((raw_body, {"status": response["statusCode"], "body": parsed}))
        return response

    def check_hubspot(self) -> None:
        """Read the portal's properties once, so that a refused token or an unreachable HubSpot is reported
        before anything is sent.

        Raises:
            ValueError: HubSpot refused the token or the request, or could not be reached (one line).
        """
        try:
            self.hubspot_client.list_properties()
        except HubSpotError as error:
            if error.status is None:  # no answer: connection refused, DNS, timeout
                raise ValueError(f"HubSpot at {self.base_url} could not be reached: {error.message}") from None
            raise ValueError(f"HubSpot at {self.base_url} refused the request: {error}") from None

    def drain(
        self,
        max_wait_s: float = 30.0,
        function_timeout_s: float = DEPLOYED.timeout_s,
        *,
        time_limit_s: float | None = None,
        progress: Callable[[float, QueueDepth], None] | None = None,
    ) -> dict:
        """Run the deliver handler until no message is left on the queue in any state, or until the event
        source mapping gives up: no message visible for `max_wait_s` seconds, or `time_limit_s` seconds in all.

        Args:
            progress: called every `PROGRESS_INTERVAL_S` seconds while the drain runs, with the seconds so far
                and what is on the queue.

        Returns:
            `{"invocations", "hubspot_requests", "seconds", "left_on_queue": {"visible", "delayed",
            "in_flight"}}` (messages left when it stopped).
        """
        mapping = EventSourceMapping(
            self.sqs,
            self.queue_url,
            self.deliver_module.lambda_handler,
            DEPLOYED.batch_size,
            function_timeout_s,
            max_wait_s=max_wait_s,
            time_limit_s=time_limit_s,
        )
        started = time.monotonic()
        stopped = threading.Event()

        def report() -> None:
            while not stopped.wait(PROGRESS_INTERVAL_S):
                progress(time.monotonic() - started, queue_depth(self.sqs, self.queue_url))

        reporter = threading.Thread(target=report, name="drain-progress", daemon=True) if progress else None
        if reporter is not None:
            reporter.start()
        try:
            with contextlib.redirect_stdout(self._handler_output):
                stats = mapping.drain()
        finally:
            stopped.set()
            if reporter is not None:
                reporter.join()
        client = self.deliver_module._client() if stats.invocations else None
        return {
            "invocations": stats.invocations,
            "hubspot_requests": client.requests_sent if client else 0,
            "seconds": round(time.monotonic() - started, 1),
            "left_on_queue": asdict(stats.left_on_queue),
        }

    def messages_on(self, queue_url: str) -> list[QueuedMessage]:
        """Every message on one of the pipeline's queues whatever its state, oldest first, without receiving
        any. SQS hands out only visible messages, so they are read from moto's store (in this process, or
        through moto's server, `moto_server.py`); call it while no drain runs."""
        region = self.sqs.meta.region_name
        if self._aws_url:
            query = urllib.parse.urlencode({"queue": queue_url, "region": region})
            with urllib.request.urlopen(f"{self._aws_url}{MESSAGES_PATH}?{query}", timeout=30) as answer:  # noqa: S310
                stored = json.load(answer)
        else:
            stored = queue_messages(queue_url, region)
        now_ms = time.time() * 1000  # moto's visible_at and delayed_until are epoch ms
        found = []
        for message in stored:
            attributes = message["attributes"]
            emails, attempt = _read_body(message["body"])
            found.append(
                QueuedMessage(
                    emails=emails,
                    attempt=attempt,
                    reason=attributes.get(REASON_ATTRIBUTE, {}).get("StringValue", SQS_REDRIVE_REASON),
                    detail=attributes.get(DETAIL_ATTRIBUTE, {}).get("StringValue", ""),
                    due_in_s=max(0.0, (max(message["visible_at"], message["delayed_until"]) - now_ms) / 1000),
                )
            )
        return found

    def dead_letters(self) -> list[dict]:
        """The dead letters, one per profile: `[{"email", "reason", "detail"}]` (`email` None for a message
        that is not a queue message). Nothing is received: they stay as they are."""
        return [
            {"email": email, "reason": message.reason, "detail": message.detail}
            for message in self.messages_on(self.dlq_url)
            for email in message.emails
        ]

    def written_emails(self, emails: Iterable[str]) -> set[str]:
        """Which of `emails` HubSpot holds as contacts written since the pipeline started.

        With the emulator: contacts created, or updated (`updatedAt` changed), since then. With a real
        portal: contacts that exist (its clock is not this machine's, and a write of the values a contact
        already holds may leave it unchanged).

        Raises:
            HubSpotError: a real portal could not be read.
        """
        wanted = set(emails)
        if self.emulator is not None:
            return {
                c["properties"].get("email")
                for c in self.emulator.snapshot()["contacts"]
                if c["properties"].get("email") in wanted and self._updated_at.get(c["id"]) != c["updatedAt"]
            }
        ordered = sorted(wanted)
        return {
            record.properties.get("email")
            for start in range(0, len(ordered), 100)
            for record in self.hubspot_client.batch_read_contacts_by_email(ordered[start : start + 100], ["email"])
        }

    def accounting(self, also_sent: Sequence[str] = ()) -> Accounting:
        """Where every profile went: those of every `ingest` call, and those of `also_sent` (message bodies put
        on the queue by other means; a body that is not a queue message counts as one profile, which must end
        on the dead-letter queue). Call it once the drain is over.

        Raises:
            HubSpotError: a real portal could not be read.
        """
        profiles = [profile for body, answer in self.ingested for profile in sent_profiles(body, answer)]
        direct = [email for body in also_sent for email in message_emails(body)]
        accepted = [profile.email for profile in profiles if profile.email is not None] + direct
        return account(
            sent=len(profiles) + len(direct),
            accepted=accepted,
            dead_lettered=[letter["email"] for letter in self.dead_letters()],
            queued=[email for message in self.messages_on(self.queue_url) for email in message.emails],
            written=self.written_emails(email for email in accepted if email is not None),
        )

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


def _read_body(body: str) -> tuple[list[str | None], int | None]:
    """`(the email of each profile, attempt)` of a queue message body; `([None], None)` for a body that is not
    a queue message."""
    try:
        message = decode_message(body)
    except ValidationError:
        return [None], None
    return [profile.email for profile in message.profiles], message.attempt


def message_emails(body: str) -> list[str | None]:
    """The email of each profile of a queue message body; `[None]` for a body that is not a queue message."""
    return _read_body(body)[0]


class _Tee(io.StringIO):
    """Keeps what the handlers write (their logs are read afterwards) and passes it on to `echo`, if any."""

    def __init__(self, echo: TextIO | None):
        super().__init__()
        self._echo = echo

    def write(self, text: str) -> int:
        if self._echo is not None:
            self._echo.write(text)
        return super().write(text)


def replay(
    request: bytes,
    source: str,
    hubspot_url: str | None = None,
    portal: dict | None = None,
    echo: TextIO | None = None,
    faults: FaultConfig | None = None,
    time_limit_s: float = REPLAY_TIME_LIMIT_S,
    progress: Callable[[float, QueueDepth], None] | None = None,
) -> ReplayResult:
    """Run FILE through the whole local pipeline and return what happened to every profile.

    Args:
        request: FILE's contents (`request_file.request_body`); `source` names it in errors.
        echo: where to show the handlers' logs and metrics as they are written (`--verbose`); None: nowhere.
        time_limit_s: delivery stops after this many seconds; what is still queued then is reported.
        progress: see `LocalPipeline.drain`.

    Raises:
        ValueError: FILE is not JSON; a real portal was asked for without `HUBSPOT_ACCESS_TOKEN`, or it
            refused the token or could not be reached.
        HubSpotError: a real portal failed while it was read back after delivery.
    """
    raw_body, template = request_body(request, source)
    handler_log = _Tee(echo)
    with LocalPipeline(hubspot_url=hubspot_url, portal=portal, handler_output=handler_log, faults=faults) as pipeline:
        if hubspot_url:
            pipeline.check_hubspot()
        ingest = pipeline.ingest(raw_body, template)
        delivery = pipeline.drain(time_limit_s=time_limit_s, progress=progress)
        accounting = pipeline.accounting()
        dead_letters = pipeline.dead_letters()
        still_queued = [
            {"email": email, "attempt": message.attempt, "due_in_s": round(message.due_in_s, 1)}
            for message in pipeline.messages_on(pipeline.queue_url)
            for email in message.emails
        ]
        emails, attribute_names = _requested_contacts(raw_body)
        hubspot = pipeline.hubspot_state(emails, attribute_names)
    profiles = sent_profiles(raw_body, ingest)
    return ReplayResult(
        ingest=ingest,
        delivery=delivery,
        accounting=accounting,
        rejected=[{"index": p.index, **p.refusal, "emails": p.given} for p in profiles if p.refusal],
        normalised_emails=[
            {"given": p.normalised_from, "email": p.email} for p in profiles if p.normalised_from is not None
        ],
        dropped_attributes=dropped_attributes(handler_log.getvalue(), (p.email for p in profiles if p.email)),
        dead_letters=dead_letters,
        still_queued=still_queued,
        hubspot=hubspot,
    )


def _requested_contacts(raw_body: bytes) -> tuple[list[str], set[str]]:
    """The emails and attribute names a request body mentions (to read them back from a real portal)."""
    try:
        profiles = parse_json(raw_body).get("profiles") or []  # as ingest reads it: around what Python cannot read
    except (ValueError, AttributeError):
        return [], set()
    emails: set[str] = set()
    names: set[str] = set()
    for profile in profiles:
        if isinstance(profile, dict) and isinstance(profile.get("identityMap"), dict):
            emails.update(emails_in_identity_map(profile["identityMap"]))
        if isinstance(profile, dict) and isinstance(profile.get("attributes"), dict):
            names.update(profile["attributes"])
    return sorted(emails), names

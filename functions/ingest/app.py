"""IngestFunction: `POST /v1/activations` → the activation accepted (202, refusals by index) or refused whole;
`GET /v1/target-fields` → the portal's contact properties a profile may write (AEP's dynamic schema).

Thin by design: the use cases are `hubspot_destination.ingest.accept` and `.target_fields`; this module maps
their typed errors to answers with Powertools' exception handlers. Activations never call HubSpot.
"""

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from hubspot_destination.aws import sqs
from hubspot_destination.aws.secrets import read_secret
from hubspot_destination.domain.deadline import Deadline
from hubspot_destination.hubspot.client import HubSpotClient
from hubspot_destination.hubspot.properties import PropertyCatalog
from hubspot_destination.ingest.accept import RequestRefused, WebhookRequest, accept_activation
from hubspot_destination.ingest.models import ErrorBody
from hubspot_destination.ingest.signature import MalformedSecret, SenderCredentials
from hubspot_destination.ingest.target_fields import target_fields
from hubspot_destination.observability import annotation, logger, metrics, tracer
from hubspot_destination.settings import IngestSettings

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

settings = IngestSettings()
app = APIGatewayRestResolver()
# HubSpot's read of the properties: 3 s to connect + 4 s per read, one retry when it still fits, all of it
# before the 10-s function timeout less this reserve for answering, in s.
_HUBSPOT_TIMEOUT_S = 4.0
_ANSWER_RESERVE_S = 1.0


@app.post("/v1/activations")
def post_activation() -> Response:
    """Accept an AEP profile export; 202 with per-index rejections, or a JSON error (400/401/413/415/422/503)."""
    accepted = accept_activation(_webhook_request(), _sender_credentials, _enqueue, settings, now=time.time())
    tracer.put_annotation(key="profiles_accepted", value=annotation(accepted.accepted))
    metrics.add_metric(name="ProfilesAccepted", unit=MetricUnit.Count, value=accepted.accepted)
    metrics.add_metric(name="ProfilesRejected", unit=MetricUnit.Count, value=len(accepted.rejected))
    return _json(202, accepted)


@app.get("/v1/target-fields")
def get_target_fields() -> Response:
    """The contact properties a profile may write; 200 `{"fields": [...]}`, or a JSON error (400/401/503)."""
    left_s = app.lambda_context.get_remaining_time_in_millis() / 1000 - _ANSWER_RESERVE_S
    call, deadline = _webhook_request(), Deadline.after(left_s)
    return _json(200, target_fields(call, _sender_credentials, _catalog(), settings, time.time(), deadline))


def _webhook_request() -> WebhookRequest:
    event = app.current_event
    received_at = datetime.fromtimestamp(event.request_context.request_time_epoch / 1000, tz=UTC)
    return WebhookRequest(
        event.headers or {}, event.body, bool(event.is_base64_encoded), event.request_context.request_id, received_at
    )


def _hubspot_token(refresh: bool = False) -> str:
    """The private-app token (cached; fetched again after a 401)."""
    return read_secret(settings.hubspot_token_secret_id, settings.secret_max_age_seconds, refresh)


@cache
def _catalog() -> PropertyCatalog:
    """The portal's properties, cached for PROPERTY_CACHE_SECONDS in this execution environment."""
    client = HubSpotClient(_hubspot_token, base_url=str(settings.hubspot_base_url), timeout_s=_HUBSPOT_TIMEOUT_S)
    return PropertyCatalog(client, ttl_s=settings.property_cache_seconds)


def _sender_credentials() -> SenderCredentials:
    """The webhook secret (cached for SECRET_MAX_AGE_SECONDS)."""
    return SenderCredentials.from_secret(read_secret(settings.webhook_secret_id, settings.secret_max_age_seconds))


@cache
def _sqs() -> "SQSClient":
    """The SQS client, made once per execution environment (a client costs tens of ms of CPU to make)."""
    return sqs.client()


def _enqueue(bodies: Sequence[str]) -> None:
    sqs.send_messages(_sqs(), settings.queue_url, bodies, settings.max_message_bytes)


def _json(status: int, body: BaseModel) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body.model_dump_json())


def _error(status: int, code: str, detail: str) -> Response:
    metrics.add_metric(name="RequestsRefused", unit=MetricUnit.Count, value=1)
    return _json(status, ErrorBody(error=code, detail=detail))


@app.exception_handler(RequestRefused)
def refused(error: RequestRefused) -> Response:
    return _error(error.status, error.code, error.detail)


@app.exception_handler([GetParameterError, MalformedSecret, BotoCoreError, ClientError])
def aws_unavailable(error: Exception) -> Response:
    """Secrets Manager or SQS failed, or a secret is malformed: 503 so the sender retries."""
    logger.exception("AWS dependency failed")
    return _error(503, "SERVICE_UNAVAILABLE", "a dependency is unavailable; retry the request")


@app.not_found
def not_found(_exc: Exception) -> Response:
    """Unknown path or method: a JSON 404 like every other error."""
    return _error(404, "NOT_FOUND", "the routes are POST /v1/activations and GET /v1/target-fields")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics(raise_on_empty_metrics=False)
@tracer.capture_lambda_handler(capture_response=False)  # the answer may quote the sender's data
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    """API Gateway REST proxy handler."""
    return app.resolve(event, context)

"""IngestFunction: `POST /v1/activations` → the activation accepted (202, refusals by index) or refused whole.

Thin by design: the use case is `hubspot_destination.ingest.accept`; this module maps its typed errors to
answers with Powertools' exception handlers. It never calls HubSpot.
"""

import time
from collections.abc import Sequence
from datetime import UTC, datetime

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from hubspot_destination.aws import sqs
from hubspot_destination.aws.secrets import read_secret
from hubspot_destination.ingest.accept import RequestRefused, WebhookRequest, accept_activation
from hubspot_destination.ingest.models import ErrorBody
from hubspot_destination.ingest.signature import MalformedSecret, SenderCredentials
from hubspot_destination.observability import annotation, logger, metrics, tracer
from hubspot_destination.settings import IngestSettings

settings = IngestSettings()
app = APIGatewayRestResolver()


@app.post("/v1/activations")
def post_activation() -> Response:
    """Accept an AEP profile export; 202 with per-index rejections, or a JSON error (400/401/413/415/422/503)."""
    event = app.current_event
    received_at = datetime.fromtimestamp(event.request_context.request_time_epoch / 1000, tz=UTC)
    call = WebhookRequest(
        event.headers or {}, event.body, bool(event.is_base64_encoded), event.request_context.request_id, received_at
    )
    accepted = accept_activation(call, _sender_credentials, _enqueue, settings, now=time.time())
    tracer.put_annotation(key="profiles_accepted", value=annotation(accepted.accepted))
    metrics.add_metric(name="ProfilesAccepted", unit=MetricUnit.Count, value=accepted.accepted)
    metrics.add_metric(name="ProfilesRejected", unit=MetricUnit.Count, value=len(accepted.rejected))
    return _json(202, accepted)


def _sender_credentials() -> SenderCredentials:
    """The webhook secret (cached for SECRET_MAX_AGE_SECONDS)."""
    return SenderCredentials.from_secret(read_secret(settings.webhook_secret_id, settings.secret_max_age_seconds))


def _enqueue(bodies: Sequence[str]) -> None:
    sqs.send_messages(sqs.client(), settings.queue_url, bodies, settings.max_message_bytes)


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
    """Secrets Manager or SQS failed, or the webhook secret is malformed: 503 so the sender retries."""
    logger.exception("AWS dependency failed")
    return _error(503, "SERVICE_UNAVAILABLE", "a dependency is unavailable; retry the request")


@app.not_found
def not_found(_exc: Exception) -> Response:
    """Unknown path or method: a JSON 404 like every other error."""
    return _error(404, "NOT_FOUND", "POST /v1/activations is the only route")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics(raise_on_empty_metrics=False)
@tracer.capture_lambda_handler(capture_response=False)  # the answer may quote the sender's data
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    """API Gateway REST proxy handler."""
    return app.resolve(event, context)

"""IngestFunction: `POST /v1/activations` → authenticate, validate, split profiles, enqueue, answer 202.

Thin by design: the rules live in `hubspot_destination` (signature, ingest, queue). It never calls HubSpot.
"""

import time
from datetime import UTC, datetime
from functools import cache

import boto3
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from hubspot_destination.aws.sqs import EnqueueError, send_messages
from hubspot_destination.ingest import (
    BodyEncodingError,
    parse_json,
    raw_request_body,
    split_profiles,
    validation_detail,
)
from hubspot_destination.models import ActivationAccepted, ActivationRequest, ErrorBody
from hubspot_destination.observability import logger, metrics
from hubspot_destination.settings import IngestSettings
from hubspot_destination.signature import AuthenticationError, SenderCredentials, authenticate

settings = IngestSettings()
app = APIGatewayRestResolver()


@cache
def _sqs():
    return boto3.client("sqs")


def _error(status: int, code: str, detail: str) -> Response:
    metrics.add_metric(name="RequestsRefused", unit=MetricUnit.Count, value=1)
    body = ErrorBody(error=code, detail=detail).model_dump_json()
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


@app.post("/v1/activations")
def post_activation() -> Response:
    """Accept an AEP profile export; 202 with per-index rejections, or a JSON error (400/401/413/415/422/503)."""
    event = app.current_event
    try:
        raw_body = raw_request_body(event.body, event.is_base64_encoded)
    except ValueError as error:
        return _error(400, "INVALID_BODY", str(error))
    try:
        sender = authenticate(
            event.headers or {},
            raw_body,
            _sender_credentials(),
            now=time.time(),
            tolerance_seconds=settings.signature_tolerance_seconds,
        )
    except AuthenticationError as error:
        return _error(401, "UNAUTHORIZED", str(error))

    content_type = next((v for k, v in (event.headers or {}).items() if k.lower() == "content-type"), "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        return _error(415, "UNSUPPORTED_MEDIA_TYPE", "send the body as Content-Type: application/json")
    if len(raw_body) > settings.max_body_bytes:
        return _error(413, "BODY_TOO_LARGE", f"the body is {len(raw_body)} bytes; at most {settings.max_body_bytes}")
    try:
        payload = parse_json(raw_body)
    except BodyEncodingError as error:
        return _error(400, "INVALID_ENCODING", str(error))
    except ValueError as error:
        return _error(400, "INVALID_JSON", f"the body is not valid JSON: {error}")
    try:
        request = ActivationRequest.model_validate(payload)
    except ValidationError as error:
        return _error(422, "INVALID_REQUEST", validation_detail(error, "body"))
    if len(request.profiles) > settings.max_profiles_per_request:
        detail = f"{len(request.profiles)} profiles; at most {settings.max_profiles_per_request} per request"
        return _error(413, "TOO_MANY_PROFILES", detail)

    request_id = event.request_context.request_id
    received_at = datetime.fromtimestamp(event.request_context.request_time_epoch / 1000, tz=UTC)
    split = split_profiles(
        request,
        request_id,
        received_at,
        settings.max_message_bytes,
        settings.max_profiles_per_message,
        null_clears=settings.null_clears,
        signed_at=sender.signed_at,
        max_audiences_per_profile=settings.max_audiences_per_profile,
        max_audiences_per_request=settings.max_audiences_per_request,
    )
    try:
        send_messages(_sqs(), settings.queue_url, split.bodies, settings.max_message_bytes)
    except EnqueueError as error:
        # Some profiles may already be queued; the sender's retry is safe because delivery is idempotent.
        logger.error("enqueue failed", extra={"failed": error.failed})
        return _error(503, "ENQUEUE_FAILED", "the queue refused some profiles; retry the request")

    metrics.add_metric(name="ProfilesAccepted", unit=MetricUnit.Count, value=split.accepted)
    metrics.add_metric(name="ProfilesRejected", unit=MetricUnit.Count, value=len(split.rejected))
    logger.info("activation accepted", extra={"accepted": split.accepted, "rejected": len(split.rejected)})
    answer = ActivationAccepted(requestId=request_id, accepted=split.accepted, rejected=split.rejected)
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=answer.model_dump_json())


def _sender_credentials() -> SenderCredentials:
    """The webhook secret (cached); a malformed one is a configuration fault, answered with 503."""
    secret = parameters.get_secret(settings.webhook_secret_id, max_age=settings.secret_max_age_seconds)
    try:
        return SenderCredentials.model_validate_json(secret)
    except ValidationError as error:
        logger.error("the webhook secret is malformed", extra={"problems": error.error_count()})
        raise parameters.exceptions.GetParameterError("malformed webhook secret") from None


@app.exception_handler([parameters.exceptions.GetParameterError, BotoCoreError, ClientError])
def aws_unavailable(error: Exception) -> Response:
    """Secrets Manager or SQS failed: 503 so the sender retries; nothing was lost."""
    logger.exception("AWS dependency failed")
    return _error(503, "SERVICE_UNAVAILABLE", "a dependency is unavailable; retry the request")


@app.not_found
def not_found(_exc: Exception) -> Response:
    """Unknown path or method: a JSON 404 like every other error."""
    return _error(404, "NOT_FOUND", "POST /v1/activations is the only route")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics(raise_on_empty_metrics=False)
def lambda_handler(event: dict, context) -> dict:
    """API Gateway REST proxy handler."""
    return app.resolve(event, context)

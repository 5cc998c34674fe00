"""Accepting an activation: one webhook request authenticated, read, split and queued, or refused whole.

Order of the checks (each refusal is a `RequestRefused`, answered as `{"error": CODE, "detail"}`):
body encoding (400 `INVALID_BODY`) → credentials (401 `UNAUTHORIZED`) → `Content-Type` (415) → size (413
`BODY_TOO_LARGE`) → UTF-8 JSON (400 `INVALID_ENCODING`, `INVALID_JSON`) → shape (422 `INVALID_REQUEST`) →
profile count (413 `TOO_MANY_PROFILES`) → per-profile checks (split.py; refusals by index in the 202) → the
queue (503 `ENQUEUE_FAILED` when SQS refuses some profiles: the sender's retry is safe, delivery is idempotent).
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from hubspot_destination.aws.sqs import EnqueueError
from hubspot_destination.ingest.body import BodyEncodingError, parse_json, raw_request_body
from hubspot_destination.ingest.models import ActivationAccepted, ActivationRequest
from hubspot_destination.ingest.signature import AuthenticationError, Sender, SenderCredentials, authenticate
from hubspot_destination.ingest.split import split_profiles, validation_detail
from hubspot_destination.observability import logger
from hubspot_destination.settings import IngestSettings


class RequestRefused(Exception):
    """The whole request is refused: HTTP `status`, a machine-readable `code` and a `detail` safe to answer."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(f"{status} {code}: {detail}")
        self.status, self.code, self.detail = status, code, detail


@dataclass(frozen=True)
class WebhookRequest:
    """What API Gateway passed: headers (any case), the body as it carries it, and the request's id and
    arrival time (UTC)."""

    headers: Mapping[str, str]
    body: str | None
    is_base64_encoded: bool
    request_id: str
    received_at: datetime


def authenticate_request(
    call: WebhookRequest, credentials: Callable[[], SenderCredentials], tolerance_s: int, now: float
) -> tuple[bytes, Sender]:
    """The request's raw body and its verified sender, for every route of the API (README, "Authenticating
    the sender"): a bearer key, or an `X-Signature` over the raw body (the empty body of a `GET`).

    Args:
        tolerance_s: how far a signature's time may be from `now` (Unix seconds), in seconds.

    Raises:
        RequestRefused: 400 `INVALID_BODY` (marked base64 but not), 401 `UNAUTHORIZED`.
    """
    try:
        raw_body = raw_request_body(call.body, call.is_base64_encoded)
    except ValueError as error:
        raise RequestRefused(400, "INVALID_BODY", str(error)) from None
    try:
        return raw_body, authenticate(call.headers, raw_body, credentials(), now=now, tolerance_seconds=tolerance_s)
    except AuthenticationError as error:
        raise RequestRefused(401, "UNAUTHORIZED", str(error)) from None


def accept_activation(
    call: WebhookRequest,
    credentials: Callable[[], SenderCredentials],
    enqueue: Callable[[Sequence[str]], None],
    settings: IngestSettings,
    now: float,
) -> ActivationAccepted:
    """Authenticate, read and split one request, and queue its accepted profiles (`enqueue(bodies)`).

    Args:
        now: the current time in Unix seconds (the signature's tolerance is measured from it).

    Raises:
        RequestRefused: the request as a whole is refused; nothing was queued, except after `ENQUEUE_FAILED`.
    """
    raw_body, sender = authenticate_request(call, credentials, settings.signature_tolerance_seconds, now)
    request = _read(call.headers, raw_body, settings)
    split = split_profiles(
        request,
        call.request_id,
        call.received_at,
        settings.max_message_bytes,
        settings.max_profiles_per_message,
        null_clears=settings.null_clears,
        signed_at=sender.signed_at,
        max_audiences_per_profile=settings.max_audiences_per_profile,
        max_audiences_per_request=settings.max_audiences_per_request,
    )
    try:
        enqueue(split.bodies)
    except EnqueueError as error:
        logger.error("enqueue failed", extra={"failed": error.failed})
        raise RequestRefused(503, "ENQUEUE_FAILED", "the queue refused some profiles; retry the request") from None
    logger.info("activation accepted", extra={"accepted": split.accepted, "rejected": len(split.rejected)})
    return ActivationAccepted(requestId=call.request_id, accepted=split.accepted, rejected=split.rejected)


def _read(headers: Mapping[str, str], raw_body: bytes, settings: IngestSettings) -> ActivationRequest:
    """The request body as an `ActivationRequest`; raises `RequestRefused` (415, 413, 400, 422)."""
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise RequestRefused(415, "UNSUPPORTED_MEDIA_TYPE", "send the body as Content-Type: application/json")
    if len(raw_body) > settings.max_body_bytes:
        detail = f"the body is {len(raw_body)} bytes; at most {settings.max_body_bytes}"
        raise RequestRefused(413, "BODY_TOO_LARGE", detail)
    try:
        payload = parse_json(raw_body)
    except BodyEncodingError as error:
        raise RequestRefused(400, "INVALID_ENCODING", str(error)) from None
    except ValueError as error:
        raise RequestRefused(400, "INVALID_JSON", f"the body is not valid JSON: {error}") from None
    try:
        request = ActivationRequest.model_validate(payload)
    except ValidationError as error:
        raise RequestRefused(422, "INVALID_REQUEST", validation_detail(error, "body")) from None
    if len(request.profiles) > settings.max_profiles_per_request:
        detail = f"{len(request.profiles)} profiles; at most {settings.max_profiles_per_request} per request"
        raise RequestRefused(413, "TOO_MANY_PROFILES", detail)
    return request

"""Reading HubSpot's answers: a 2xx body validated against its model, anything else turned into a typed fault.

Nothing an answer says is trusted before this: the status decides the fault class (errors.py), the JSON error
envelope is parsed leniently (every field optional, hubspot-api.md §1.8), and a redirect or a status HubSpot
does not use is a malformed answer.
"""

from typing import TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from hubspot_destination.hubspot.errors import (
    HubSpotAuthError,
    HubSpotError,
    HubSpotMalformedAnswer,
    HubSpotRateLimited,
    HubSpotRequestError,
    HubSpotTransientError,
)
from hubspot_destination.hubspot.models import ErrorEnvelope
from hubspot_destination.hubspot.pacing import RateLimit, retry_after_s
from hubspot_destination.hubspot.transport import Answer

# 423 locked, 477 migration in progress (with Retry-After), 5xx: pause and retry (hubspot-api.md §1.8).
_TRANSIENT_STATUSES = frozenset({423, 477})
_Model = TypeVar("_Model", bound=BaseModel)


def error_envelope(body: bytes) -> ErrorEnvelope:
    """HubSpot's error envelope from an error answer; a body that is not one keeps only a short text."""
    try:
        return ErrorEnvelope.model_validate_json(body)
    except ValidationError:
        return ErrorEnvelope(message=body[:200].decode("utf-8", errors="replace"))


def fault_for(answer: Answer, rate_limit: RateLimit) -> HubSpotError:
    """The typed fault for an answer that is not a 2xx."""
    status = answer.status
    if 300 <= status < 400:
        host = urlsplit(answer.headers.get("Location") or "").hostname or "?"
        return HubSpotMalformedAnswer(status, message=f"a redirect to {host}; HubSpot's API is never followed")
    envelope, waited = error_envelope(answer.body), retry_after_s(answer.headers)
    if status in (401, 403):
        return HubSpotAuthError(status, envelope, rate_limit)
    if status == 429:
        return HubSpotRateLimited(status, envelope, rate_limit, retry_after_s=waited)
    if status in _TRANSIENT_STATUSES or 500 <= status < 600:
        return HubSpotTransientError(status, envelope, rate_limit, retry_after_s=waited)
    if 400 <= status < 500:
        return HubSpotRequestError(status, envelope, rate_limit)
    return HubSpotMalformedAnswer(status, message=f"HTTP status {status} is not one HubSpot answers")


def parse(model: type[_Model], status: int, value: object) -> _Model:
    """Validate a 2xx answer's JSON against `model`.

    Raises:
        HubSpotMalformedAnswer: the answer is not of that shape (the first problem is named).
    """
    try:
        return model.model_validate(value)
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "the body"
        raise HubSpotMalformedAnswer(status, message=f"{model.__name__}: {where}: {first['msg']}") from None

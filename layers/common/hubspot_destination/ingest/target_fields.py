"""Target fields: the portal's contact properties a profile may write, as AEP's dynamic schema lists them.

`GET /v1/target-fields` answers `{"fields": [{"name", "label", "type", "fieldType", "group", "options"}]}`,
sorted by name (README, "Target fields"). Every contact property of the portal is one, except those a profile
can never write:

- read-only and calculated properties: HubSpot refuses their values (`READ_ONLY_VALUE`, hubspot-api.md §1.7,
  §2.2);
- `email`, the identity that keys the contact (a mapped `email` attribute is ignored);
- audience properties (`domain/audiences.py`): only memberships write them, in order.

`options` lists an enumeration's options (`value` is what a profile sends, hubspot-api.md §2.2), empty for
other types. The properties come from the HubSpot adapter's cached catalog (`PROPERTY_CACHE_SECONDS`).
"""

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from pydantic import BaseModel, Field

from hubspot_destination.domain.audiences import is_audience_property
from hubspot_destination.domain.deadline import Deadline
from hubspot_destination.domain.reasons import Reason
from hubspot_destination.hubspot.contacts import EMAIL_PROPERTY
from hubspot_destination.hubspot.errors import (
    HubSpotAuthError,
    HubSpotError,
    HubSpotMalformedAnswer,
    HubSpotRateLimited,
    HubSpotRequestError,
)
from hubspot_destination.hubspot.models import Property
from hubspot_destination.ingest.accept import RequestRefused, WebhookRequest, authenticate_request
from hubspot_destination.ingest.signature import SenderCredentials
from hubspot_destination.limits import LAMBDA_MAX_PAYLOAD_BYTES
from hubspot_destination.observability import logger
from hubspot_destination.settings import IngestSettings

# The body travels JSON-escaped inside the proxy answer, which Lambda caps; 64 KiB is left for the rest of it.
MAX_ESCAPED_BODY_BYTES = LAMBDA_MAX_PAYLOAD_BYTES - 65_536

# HubSpot faults → the 503's code (the first class that matches) and what the caller is told.
_FAULTS: tuple[tuple[type[HubSpotError], Reason, str], ...] = (
    (HubSpotAuthError, Reason.HUBSPOT_AUTH, "HubSpot refused the private-app token: check its secret and scopes"),
    (HubSpotRateLimited, Reason.RATE_LIMITED, "HubSpot's rate limit is reached; retry later"),
    (HubSpotMalformedAnswer, Reason.HUBSPOT_MALFORMED_ANSWER, "HubSpot's answer was not understood; retry later"),
    (HubSpotRequestError, Reason.HUBSPOT_ERROR, "HubSpot refused the request"),
)
_UNAVAILABLE = (Reason.HUBSPOT_UNAVAILABLE, "HubSpot could not be reached in time; retry later")


class TargetFieldOption(BaseModel):
    """One option of an enumeration: its `label`, and the internal `value` a profile sends."""

    label: str
    value: str


class TargetField(BaseModel):
    """A contact property a profile may write, as the Properties API defines it (hubspot-api.md §2.2)."""

    name: str = Field(description="Internal name: the attribute name a profile sends.")
    label: str
    type: str = Field(description="string, number, bool, date, datetime, enumeration, phone_number, ...")
    fieldType: str
    group: str = Field(description="The property group's internal name (groupName).")
    options: list[TargetFieldOption] = Field(description="An enumeration's options; empty for other types.")


class TargetFields(BaseModel):
    """The answer of `GET /v1/target-fields`."""

    fields: list[TargetField]


class PropertySource(Protocol):
    def current(self, deadline: Deadline | None = None) -> Mapping[str, Property]:
        """The portal's contact properties by internal name (cached). Raises `HubSpotError`."""
        ...


def writable_fields(properties: Iterable[Property], audience_group: str) -> list[TargetField]:
    """The properties a profile may write (module docstring), sorted by name."""
    return [
        TargetField(
            name=prop.name,
            label=prop.label,
            type=prop.type,
            fieldType=prop.fieldType,
            group=prop.groupName,
            options=[TargetFieldOption(label=o.label, value=o.value) for o in prop.options]
            if prop.type == "enumeration"
            else [],
        )
        for prop in sorted(properties, key=lambda prop: prop.name)
        if not prop.read_only
        and prop.name != EMAIL_PROPERTY
        and not is_audience_property(prop.name, prop.groupName, audience_group)
    ]


def target_fields(
    call: WebhookRequest,
    credentials: Callable[[], SenderCredentials],
    properties: PropertySource,
    settings: IngestSettings,
    now: float,
    deadline: Deadline,
) -> TargetFields:
    """Authenticate the caller as the webhook does, then list the portal's target fields.

    Args:
        now: the current time in Unix seconds (for a signature's tolerance).
        deadline: when HubSpot must have answered.

    Raises:
        RequestRefused: 400 `INVALID_BODY` or 401 `UNAUTHORIZED` (before HubSpot is called); 503 when HubSpot
            failed (`HUBSPOT_AUTH`, `RATE_LIMITED`, `HUBSPOT_MALFORMED_ANSWER`, `HUBSPOT_ERROR`,
            `HUBSPOT_UNAVAILABLE`), or its properties would make an answer larger than Lambda can send
            (`HUBSPOT_MALFORMED_ANSWER`: no portal has that many).
    """
    authenticate_request(call, credentials, settings.signature_tolerance_seconds, now)
    try:
        catalog = properties.current(deadline)
    except HubSpotError as error:
        code, text = next(((code, text) for kind, code, text in _FAULTS if isinstance(error, kind)), _UNAVAILABLE)
        logger.error("target fields unavailable", extra={"code": code, "status": error.status})
        raise RequestRefused(503, code, f"{text} ({error})") from None
    answer = TargetFields(fields=writable_fields(catalog.values(), settings.audience_property_group))
    size = len(json.dumps(answer.model_dump_json()))
    if size > MAX_ESCAPED_BODY_BYTES:
        detail = f"{len(answer.fields)} target fields make a {size}-byte answer, over {MAX_ESCAPED_BODY_BYTES}"
        raise RequestRefused(503, Reason.HUBSPOT_MALFORMED_ANSWER, detail)
    logger.info("target fields listed", extra={"fields": len(answer.fields)})
    return answer

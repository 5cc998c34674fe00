"""Ingest logic: turn one validated activation request into queue messages and per-index rejections.

Checks per profile: an email identity HubSpot would accept (after trimming and lower-casing), known
membership statuses with parseable `lastQualificationTime`s, attribute values HubSpot can hold, and a
size that fits one queue message. Accepted profiles are packed several to a message. Nothing here calls
HubSpot.
"""

import base64
import binascii
import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import ValidationError

from hubspot_destination.identity import InvalidEmailError, contact_email
from hubspot_destination.models import (
    ActivationRequest,
    AudienceUpdate,
    Profile,
    ProfileUpdate,
    Rejection,
    excerpt,
)
from hubspot_destination.queue import DEAD_LETTER_ATTRIBUTES_BYTES, encode_message, pack

_FUTURE_TOLERANCE = timedelta(days=1)
# The details of one answer together, in characters: past it a rejection's detail is `…`, so even 10,000
# refused profiles answer in well under Lambda's 6-MB response limit.
ANSWER_DETAILS_MAX_CHARS = 100_000
_OMITTED = "…"


def raw_request_body(body: str | None, is_base64_encoded: bool) -> bytes:
    """The bytes the sender sent: API Gateway's `body`, base64-decoded when it says so.

    Raises:
        ValueError: a body marked base64 that is not, or text that cannot be encoded (a lone surrogate).
    """
    if not body:
        return b""
    if not is_base64_encoded:
        try:
            return body.encode()
        except UnicodeEncodeError:
            raise ValueError("the body is not valid text (it holds a lone surrogate)") from None
    try:
        return base64.b64decode(body, validate=True)
    except binascii.Error:
        raise ValueError("the body is marked base64-encoded but is not valid base64") from None


class BodyEncodingError(ValueError):
    """The body is not UTF-8 text; `str(error)` says why and is safe to return to the sender."""


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _utf8_text(raw_body: bytes) -> str:
    """The body as text: strictly UTF-8 (RFC 8259 §8.1), a leading UTF-8 byte order mark ignored (§8.1 allows it).

    Raises:
        BodyEncodingError: bytes that are not UTF-8, or NUL bytes (what UTF-16 and UTF-32 JSON is full of;
            JSON text never holds one).
    """
    if b"\x00" in raw_body:
        raise BodyEncodingError("the body holds NUL bytes, as UTF-16 or UTF-32 text does: send JSON encoded as UTF-8")
    try:
        return raw_body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BodyEncodingError(f"the body is not UTF-8 (byte {error.start}): send JSON encoded as UTF-8") from None


def parse_json(raw_body: bytes) -> object:
    """Parse a request body as strict JSON (RFC 8259: UTF-8, no NaN or Infinity, which HubSpot cannot store).

    Raises:
        BodyEncodingError: not UTF-8 (see `_utf8_text`).
        ValueError: not JSON, nested too deeply, or a number Python refuses to read.
    """
    text = _utf8_text(raw_body)
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


def validation_detail(error: ValidationError, root: str) -> str:
    """The first problem of a validation error as `where: what` (`attributes.city: ...`), each sender key in
    `where` quoted by `excerpt`; `root` names the whole input when the problem is not in one field."""
    first = error.errors(include_url=False, include_input=False)[0]
    where = ".".join(excerpt(str(part)) for part in first["loc"]) or root
    return f"{where}: {first['msg']}"


def _is_scalar(value: object) -> bool:
    # Floats beyond range (1e309) parse as infinity; HubSpot cannot hold them.
    return isinstance(value, str | int | bool) or (isinstance(value, float) and math.isfinite(value))


def _audiences(profile: Profile, request: ActivationRequest, received_at: datetime) -> dict[str, AudienceUpdate]:
    """Audience statuses of a profile; names come from the membership, else `audiences`, else the id.

    Raises:
        ValueError: an empty audience id, or a qualification time more than a day after the request: it
            would win over every later status (order is by `lastQualificationTime`).
    """
    latest = received_at + _FUTURE_TOLERANCE
    updates: dict[str, AudienceUpdate] = {}
    for namespace, memberships in profile.segmentMembership.items():
        for audience_id, membership in memberships.items():
            where = f"segmentMembership.{excerpt(namespace)}.{excerpt(audience_id)}"
            if not audience_id.strip():
                raise ValueError(f"{where}: the audience id is empty")
            if membership.lastQualificationTime > latest:
                raise ValueError(f"{where}.lastQualificationTime: more than a day in the future")
            known = request.audiences.get(audience_id)
            name = membership.name or (known.name if known else None) or audience_id
            update = AudienceUpdate(status=membership.status, qualified_at=membership.lastQualificationTime, name=name)
            current = updates.get(audience_id)
            if current is None or update.qualified_at >= current.qualified_at:
                updates[audience_id] = update
    return updates


def _attributes(profile: Profile, null_clears: bool) -> dict[str, object]:
    """Unwrapped attribute values (clearing policy, reference bug-cases.md B12).

    Freeform attributes arrive as `{"value": x}` and predefined ones plain. `{}` means "no value on the
    profile" and is left out, so HubSpot is untouched; so is `null` (plain or wrapped), which HubSpot
    ignores, unless `null_clears` (mirror mode) turns it into `""`, which clears the HubSpot value.

    Raises:
        ValueError: a value that is not a string, number, boolean or list of them.
    """
    values: dict[str, object] = {}
    for name, raw in profile.attributes.items():
        value = raw
        if isinstance(raw, dict):
            if not raw:
                continue
            if "value" not in raw:
                raise ValueError(f'attributes.{excerpt(name)}: expected a plain value or {{"value": ...}}')
            value = raw["value"]
        if value is None:
            if null_clears:
                values[name] = ""
            continue
        if not (_is_scalar(value) or (isinstance(value, list) and all(_is_scalar(item) for item in value))):
            raise ValueError(f"attributes.{excerpt(name)}: expected a string, number, boolean or a list of them")
        values[name] = value
    return values


def request_time(received_at: datetime, signed_at: datetime | None, profiles: int) -> datetime:
    """The time a request's profiles are stamped from: its arrival, held inside the signed second when signed.

    A signed request's `profiles` stamps (`+ i µs` each) all fall in `[signed_at, signed_at + 1 s)`, so a copy
    replayed later is older than every request signed in a later second, while requests signed in the same
    second keep their arrival order. Arrival before `signed_at` (the sender's clock is ahead) counts as
    `signed_at`; arrival after the second (a replay, a slow network, a clock behind) as its end.
    """
    if signed_at is None:
        return received_at
    return min(max(received_at, signed_at), signed_at + timedelta(seconds=1, microseconds=-profiles))


@dataclass(frozen=True)
class Split:
    """A request split for the queue: `bodies` (packed queue messages), how many profiles they hold, and
    one rejection per refused index."""

    bodies: list[str]
    accepted: int
    rejected: list[Rejection]


def split_profiles(
    request: ActivationRequest,
    request_id: str,
    received_at: datetime,
    max_message_bytes: int,
    max_profiles_per_message: int,
    null_clears: bool = False,
    signed_at: datetime | None = None,
) -> Split:
    """Validate each profile of a request and pack the accepted ones into queue message bodies.

    Args:
        request: the validated request body.
        request_id: the API Gateway request id, carried on every profile for tracing.
        received_at: when the request arrived (UTC); also the time of a request without `signed_at`.
        max_message_bytes: the queue's largest message, in bytes.
        max_profiles_per_message: how many profiles one queue message carries at most.
        null_clears: mirror mode: `null` attributes clear the HubSpot value instead of leaving it untouched.
        signed_at: the verified `X-Signature` time of a signed request (whole seconds, UTC).

    Profile `i` is stamped `request time + i µs` (`observed_at`, which orders values of the same contact), so
    later profiles of the same request win when the same contact appears twice; see `request_time`.
    """
    observed_from = request_time(received_at, signed_at, len(request.profiles))
    accepted: list[ProfileUpdate] = []
    rejections: list[Rejection] = []
    # Room for the reason and detail attributes if the profile is ever dead-lettered on its own.
    profile_limit = max_message_bytes - DEAD_LETTER_ATTRIBUTES_BYTES
    for index, raw in enumerate(request.profiles):
        try:
            profile = Profile.model_validate(raw)
        except ValidationError as error:
            location = error.errors()[0]["loc"]
            reason = "INVALID_MEMBERSHIP" if location[:1] == ("segmentMembership",) else "INVALID_PROFILE"
            rejections.append(Rejection(index=index, reason=reason, detail=validation_detail(error, "profile")))
            continue
        try:
            email = contact_email(profile.identityMap)
        except InvalidEmailError as error:
            rejections.append(Rejection(index=index, reason="INVALID_EMAIL", detail=str(error)))
            continue
        try:
            attributes = _attributes(profile, null_clears)
        except ValueError as error:
            rejections.append(Rejection(index=index, reason="INVALID_ATTRIBUTE", detail=str(error)))
            continue
        try:
            audiences = _audiences(profile, request, received_at)
        except ValueError as error:
            rejections.append(Rejection(index=index, reason="INVALID_MEMBERSHIP", detail=str(error)))
            continue
        update = ProfileUpdate(
            email=email,
            attributes=attributes,
            audiences=audiences,
            observed_at=observed_from + timedelta(microseconds=index),
            request_id=request_id,
        )
        try:
            size = len(encode_message([update]).encode())
        except ValueError:  # text that cannot be encoded, e.g. a lone UTF-16 surrogate ("\ud800")
            rejections.append(Rejection(index=index, reason="INVALID_PROFILE", detail="text that is not valid Unicode"))
            continue
        if size > profile_limit:
            detail = f"the profile encodes to {size} bytes; at most {profile_limit}"
            rejections.append(Rejection(index=index, reason="PROFILE_TOO_LARGE", detail=detail))
            continue
        accepted.append(update)
    bodies = pack(accepted, max_profiles_per_message, max_message_bytes)
    return Split(bodies=bodies, accepted=len(accepted), rejected=_within_answer_budget(rejections))


def _within_answer_budget(rejections: list[Rejection]) -> list[Rejection]:
    """The rejections with the details past `ANSWER_DETAILS_MAX_CHARS` (all details together) replaced by `…`."""
    spent = 0
    bounded = []
    for rejection in rejections:
        spent += len(rejection.detail)
        bounded.append(
            rejection if spent <= ANSWER_DETAILS_MAX_CHARS else rejection.model_copy(update={"detail": _OMITTED})
        )
    return bounded

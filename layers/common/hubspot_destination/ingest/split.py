"""Splitting a request: each profile checked on its own, the accepted ones packed into queue messages.

Checks per profile: an email identity HubSpot would accept (after trimming and lower-casing), known
membership statuses with `lastQualificationTime`s the product can order, attribute values HubSpot can hold, a
bounded number of audiences (also per request), and a size that fits one queue message. Nothing here calls
HubSpot.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import ValidationError

from hubspot_destination.domain.identity import InvalidEmailError, contact_email
from hubspot_destination.domain.messages import (
    DEAD_LETTER_ATTRIBUTES_BYTES,
    encode_profile,
    message_bytes,
    pack_encoded,
)
from hubspot_destination.domain.profiles import AudienceUpdate, ProfileUpdate
from hubspot_destination.domain.reasons import Reason
from hubspot_destination.ingest.body import Unreadable
from hubspot_destination.ingest.models import ActivationRequest, Profile, Rejection, RejectionReason, excerpt
from hubspot_destination.settings import DEFAULT_MAX_AUDIENCES_PER_PROFILE, DEFAULT_MAX_AUDIENCES_PER_REQUEST

_FUTURE_TOLERANCE = timedelta(days=1)
# The details of one answer together, in characters: past it a rejection's detail is `…`, so even 10,000
# refused profiles answer in well under Lambda's 6-MB response limit.
ANSWER_DETAILS_MAX_CHARS = 100_000
_OMITTED = "…"


def validation_detail(error: ValidationError, root: str) -> str:
    """The first problem of a validation error as `where: what` (`attributes.city: ...`), each sender key in
    `where` quoted by `excerpt`; `root` names the whole input when the problem is not in one field."""
    first = error.errors(include_url=False, include_input=False)[0]
    where = ".".join(excerpt(str(part)) for part in first["loc"]) or root
    # pydantic stops at about 250 levels and calls it a cyclic reference, which JSON cannot have.
    what = "nested too deeply" if first["type"] == "recursion_loop" else first["msg"]
    return f"{where}: {what}"


def _is_scalar(value: object) -> bool:
    # Floats beyond range (1e309) parse as infinity; HubSpot cannot hold them.
    return isinstance(value, str | int | bool) or (isinstance(value, float) and math.isfinite(value))


def _membership_path(namespace: str, audience_id: str) -> str:
    # Made only for a refusal: quoting costs more than the checks.
    return f"segmentMembership.{excerpt(namespace)}.{excerpt(audience_id)}"


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
            if not audience_id.strip():
                raise ValueError(f"{_membership_path(namespace, audience_id)}: the audience id is empty")
            if membership.lastQualificationTime > latest:
                where = _membership_path(namespace, audience_id)
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
    max_audiences_per_profile: int = DEFAULT_MAX_AUDIENCES_PER_PROFILE,
    max_audiences_per_request: int = DEFAULT_MAX_AUDIENCES_PER_REQUEST,
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
        max_audiences_per_profile: distinct audience ids one profile may carry.
        max_audiences_per_request: distinct audience ids the accepted profiles of the request may carry
            together; a profile that would take the request past it is refused, the next ones still checked.

    Profile `i` is stamped `request time + i µs` (`observed_at`, which orders values of the same contact), so
    later profiles of the same request win when the same contact appears twice; see `request_time`.
    """
    observed_from = request_time(received_at, signed_at, len(request.profiles))
    accepted: list[str] = []  # encoded (`encode_profile`)
    rejections: list[Rejection] = []
    named: set[str] = set()  # the audiences of the profiles accepted so far
    # Room for the reason and detail attributes if the profile is ever dead-lettered on its own.
    profile_limit = max_message_bytes - DEAD_LETTER_ATTRIBUTES_BYTES
    for index, raw in enumerate(request.profiles):
        try:
            email, attributes, audiences = _profile_content(
                raw, request, received_at, null_clears, max_audiences_per_profile
            )
            update = ProfileUpdate(
                email=email,
                attributes=attributes,
                audiences=audiences,
                observed_at=observed_from + timedelta(microseconds=index),
                request_id=request_id,
            )
            encoded = _encoded(update, profile_limit)
            new = audiences.keys() - named
            if len(named) + len(new) > max_audiences_per_request:
                detail = (
                    f"its {len(new)} audiences not named by the profiles before it would make "
                    f"{len(named) + len(new)} in this request; at most {max_audiences_per_request} per request"
                )
                raise _Refused(Reason.TOO_MANY_AUDIENCES, detail)
        except _Refused as refused:
            rejections.append(Rejection(index=index, reason=refused.reason, detail=refused.detail))
            continue
        named |= new
        accepted.append(encoded)
    bodies = pack_encoded(accepted, max_profiles_per_message, max_message_bytes)
    return Split(bodies=bodies, accepted=len(accepted), rejected=_within_answer_budget(rejections))


class _Refused(Exception):
    """One profile is refused: `reason` and `detail` of its rejection."""

    def __init__(self, reason: RejectionReason, detail: str):
        super().__init__(detail)
        self.reason: RejectionReason = reason
        self.detail = detail


def _profile_content(
    raw: object, request: ActivationRequest, received_at: datetime, null_clears: bool, max_audiences: int
) -> tuple[str, dict[str, object], dict[str, AudienceUpdate]]:
    """A raw profile's email, attribute values and audience statuses (see `_attributes` and `_audiences`).

    Raises:
        _Refused: the profile is not a valid one, or has more than `max_audiences` distinct audiences.
    """
    if isinstance(raw, Unreadable):
        raise _Refused(Reason.INVALID_PROFILE, f"profile: {raw.reason}")
    try:
        profile = Profile.model_validate(raw)
    except ValidationError as error:
        location = error.errors()[0]["loc"]
        reason: RejectionReason = (
            Reason.INVALID_MEMBERSHIP if location[:1] == ("segmentMembership",) else Reason.INVALID_PROFILE
        )
        raise _Refused(reason, validation_detail(error, "profile")) from None
    try:
        email = contact_email(profile.identityMap)
    except InvalidEmailError as error:
        raise _Refused(Reason.INVALID_EMAIL, str(error)) from None
    try:
        attributes = _attributes(profile, null_clears)
    except ValueError as error:
        raise _Refused(Reason.INVALID_ATTRIBUTE, str(error)) from None
    # Each distinct audience becomes a HubSpot property: too many are refused before any is checked.
    audience_count = len(
        {audience_id for memberships in profile.segmentMembership.values() for audience_id in memberships}
    )
    if audience_count > max_audiences:
        detail = f"segmentMembership: {audience_count} audiences; at most {max_audiences} per profile"
        raise _Refused(Reason.TOO_MANY_AUDIENCES, detail)
    try:
        audiences = _audiences(profile, request, received_at)
    except ValueError as error:
        raise _Refused(Reason.INVALID_MEMBERSHIP, str(error)) from None
    return email, attributes, audiences


def _encoded(update: ProfileUpdate, limit: int) -> str:
    """`update` encoded for the queue (`encode_profile`), checked to fit a message of `limit` bytes alone.

    Raises:
        _Refused: it does not encode (a lone surrogate such as "\\ud800"), or takes more than `limit` bytes.
    """
    try:
        encoded = encode_profile(update)
        size = message_bytes(encoded)
    except ValueError:
        raise _Refused(Reason.INVALID_PROFILE, "text that is not valid Unicode") from None
    if size > limit:
        raise _Refused(Reason.PROFILE_TOO_LARGE, f"the profile encodes to {size} bytes; at most {limit}")
    return encoded


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

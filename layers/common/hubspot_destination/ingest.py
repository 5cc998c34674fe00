"""Ingest logic: read a request body, and turn one validated activation request into queue messages and
per-index rejections.

The body must be UTF-8 JSON; a profile Python cannot read (too deep, a huge integer) is read around and refused
alone. Checks per profile: an email identity HubSpot would accept (after trimming and lower-casing), known
membership statuses with `lastQualificationTime`s the product can order, attribute values HubSpot can hold, a
bounded number of audiences (also per request), and a size that fits one queue message. Accepted profiles are
packed several to a message. Nothing here calls HubSpot.
"""

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import ValidationError

from hubspot_destination.domain.messages import DEAD_LETTER_ATTRIBUTES_BYTES, encode_message, pack
from hubspot_destination.identity import InvalidEmailError, contact_email
from hubspot_destination.models import (
    ActivationRequest,
    AudienceUpdate,
    Profile,
    ProfileUpdate,
    Rejection,
    RejectionReason,
    excerpt,
)
from hubspot_destination.settings import DEFAULT_MAX_AUDIENCES_PER_PROFILE, DEFAULT_MAX_AUDIENCES_PER_REQUEST

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


class _NotJson(ValueError):
    """A token that Python reads but JSON does not have (NaN, Infinity)."""


def _refuse_constant(name: str) -> float:
    raise _NotJson(f"{name} is not JSON")


@dataclass(frozen=True)
class Unreadable:
    """Stands in the parsed body for a value Python's JSON reader cannot read although it may be valid JSON;
    `reason` says why. Only profiles and other members of the top level's members are replaced so."""

    reason: str


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
_WHITESPACE = re.compile(r"[ \t\n\r]*")
# Runs of brackets, and strings (whose brackets do not count): what `_skip` walks to find where a value ends.
_STRUCTURE = re.compile(r'[\[{]+|[\]}]+|"[^"\\]*(?:\\.[^"\\]*)*"')
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
# Levels read member by member when the body cannot be read whole: the top-level object, then its members
# (`profiles`, `audiences`), so each profile and each `audiences` entry is read, or refused, on its own.
_LEVELS = 2


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

    A profile (or an entry of `audiences`, or any member of a top-level member) that Python cannot read, nested
    deeper than its recursion limit (about 1,000 levels) or an integer of more than 4,300 digits, is returned
    as an `Unreadable` in its place, so it alone is refused.

    Raises:
        BodyEncodingError: not UTF-8 (see `_utf8_text`).
        ValueError: not JSON (`json.JSONDecodeError`, with its position), or NaN or Infinity.
    """
    text = _utf8_text(raw_body)
    try:
        return _DECODER.decode(text)
    except (RecursionError, ValueError) as error:
        if _unreadable_reason(error) is None:
            raise
    value, end = _read(text, 0, _LEVELS)
    end = _WHITESPACE.match(text, end).end()
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return value


def _unreadable_reason(error: Exception) -> str | None:
    """Why Python's JSON reader stopped on text that may be valid JSON; None for text that is not JSON."""
    if isinstance(error, RecursionError):
        return "nested too deeply to read"
    if isinstance(error, json.JSONDecodeError | _NotJson):
        return None
    return "an integer of more than 4,300 digits"  # the one other ValueError of the reader: int()'s digit limit


def _read(text: str, pos: int, levels: int) -> tuple[object, int]:
    """The JSON value at `pos` (after whitespace) and the position after it; an object or array is read
    member by member `levels` deep, and below that a value Python cannot read becomes `Unreadable`.

    Raises:
        ValueError: not JSON, as `parse_json`.
    """
    pos = _WHITESPACE.match(text, pos).end()
    if levels and text.startswith(("{", "["), pos):
        return _read_members(text, pos, levels - 1)
    try:
        return _DECODER.raw_decode(text, pos)
    except (RecursionError, ValueError) as error:
        reason = _unreadable_reason(error)
        if reason is None:
            raise
        return Unreadable(reason), _skip(text, pos)


def _read_members(text: str, pos: int, levels: int) -> tuple[object, int]:
    """The object or array that opens at `pos`, each member read by `_read` with `levels`."""
    is_object = text[pos] == "{"
    closer = "}" if is_object else "]"
    pos = _WHITESPACE.match(text, pos + 1).end()
    if text.startswith(closer, pos):
        return ({} if is_object else []), pos + 1
    members: list[tuple[str | None, object]] = []
    while True:
        key = None
        if is_object:
            key, pos = _read_key(text, pos)
        value, pos = _read(text, pos, levels)
        members.append((key, value))
        pos = _WHITESPACE.match(text, pos).end()
        if text.startswith(closer, pos):
            return (dict(members) if is_object else [value for _, value in members]), pos + 1
        if not text.startswith(",", pos):
            raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
        pos = _WHITESPACE.match(text, pos + 1).end()


def _read_key(text: str, pos: int) -> tuple[str, int]:
    """The object key at `pos` and the position after its `:`."""
    if not text.startswith('"', pos):
        raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, pos)
    key, pos = _DECODER.raw_decode(text, pos)
    pos = _WHITESPACE.match(text, pos).end()
    if not text.startswith(":", pos):
        raise json.JSONDecodeError("Expecting ':' delimiter", text, pos)
    return key, pos + 1


def _skip(text: str, pos: int) -> int:
    """The position after the value at `pos`, found without reading it: past a number, or past an array or
    object by counting its brackets (those in strings aside). Its inside is not checked: it is refused anyway.

    Raises:
        json.JSONDecodeError: the brackets never close.
    """
    if not text.startswith(("[", "{"), pos):  # only an integer fails to read without nesting
        return _NUMBER.match(text, pos).end()
    depth = 0
    for match in _STRUCTURE.finditer(text, pos):
        run = match.group()
        if run[0] in "[{":
            depth += len(run)
        elif run[0] != '"':
            if len(run) >= depth:
                return match.start() + depth
            depth -= len(run)
    raise json.JSONDecodeError("Unterminated array or object", text, pos)


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
    accepted: list[ProfileUpdate] = []
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
            _check_size(update, profile_limit)
            new = audiences.keys() - named
            if len(named) + len(new) > max_audiences_per_request:
                detail = (
                    f"its {len(new)} audiences not named by the profiles before it would make "
                    f"{len(named) + len(new)} in this request; at most {max_audiences_per_request} per request"
                )
                raise _Refused("TOO_MANY_AUDIENCES", detail)
        except _Refused as refused:
            rejections.append(Rejection(index=index, reason=refused.reason, detail=refused.detail))
            continue
        named |= new
        accepted.append(update)
    bodies = pack(accepted, max_profiles_per_message, max_message_bytes)
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
        raise _Refused("INVALID_PROFILE", f"profile: {raw.reason}")
    try:
        profile = Profile.model_validate(raw)
    except ValidationError as error:
        location = error.errors()[0]["loc"]
        reason = "INVALID_MEMBERSHIP" if location[:1] == ("segmentMembership",) else "INVALID_PROFILE"
        raise _Refused(reason, validation_detail(error, "profile")) from None
    try:
        email = contact_email(profile.identityMap)
    except InvalidEmailError as error:
        raise _Refused("INVALID_EMAIL", str(error)) from None
    try:
        attributes = _attributes(profile, null_clears)
    except ValueError as error:
        raise _Refused("INVALID_ATTRIBUTE", str(error)) from None
    # Each distinct audience becomes a HubSpot property: too many are refused before any is checked.
    audience_count = len(
        {audience_id for memberships in profile.segmentMembership.values() for audience_id in memberships}
    )
    if audience_count > max_audiences:
        detail = f"segmentMembership: {audience_count} audiences; at most {max_audiences} per profile"
        raise _Refused("TOO_MANY_AUDIENCES", detail)
    try:
        audiences = _audiences(profile, request, received_at)
    except ValueError as error:
        raise _Refused("INVALID_MEMBERSHIP", str(error)) from None
    return email, attributes, audiences


def _check_size(update: ProfileUpdate, limit: int) -> None:
    """Check that `update` fits a queue message of `limit` bytes.

    Raises:
        _Refused: it does not encode (a lone surrogate such as "\\ud800"), or takes more than `limit` bytes.
    """
    try:
        size = len(encode_message([update]).encode())
    except ValueError:
        raise _Refused("INVALID_PROFILE", "text that is not valid Unicode") from None
    if size > limit:
        raise _Refused("PROFILE_TOO_LARGE", f"the profile encodes to {size} bytes; at most {limit}")


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

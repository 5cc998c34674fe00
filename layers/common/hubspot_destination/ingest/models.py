"""The webhook's shapes: the AEP profile-export request and the ingest answers (the queue message is in
domain/profiles.py).

Request shape (AEP Destination SDK profile export, reference aep-payload.md §1.1 and §5):
`{"profiles": [{"identityMap", "attributes", "segmentMembership"}, ...], "audiences"?: {id: {"name"}}}`.
Each profile is validated on its own, so one bad profile is a per-index rejection, never a failed request.
"""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from hubspot_destination.domain.profiles import AudienceStatus
from hubspot_destination.domain.reasons import Reason

# Answers stay small whatever the sender sent: its keys and values are quoted at most QUOTE_MAX_CHARS long, and
# a whole detail is at most DETAIL_MAX_CHARS.
QUOTE_MAX_CHARS = 100
DETAIL_MAX_CHARS = 300


def excerpt(text: str, limit: int = QUOTE_MAX_CHARS) -> str:
    """`text` as an answer may quote it: at most `limit` characters, cut with a final `…`, and characters that
    are not printable (controls, lone surrogates such as `"\\ud800"`, which no encoder can write) escaped as
    `\\x00`, `\\ud800`, ... Only the first `limit + 1` characters are read, so a 4-MB key costs nothing."""
    head = text[: limit + 1]
    if not head.isprintable():
        head = "".join(char if char.isprintable() else ascii(char)[1:-1] for char in head)
    return head if len(head) <= limit else head[: limit - 1] + "…"


def _bounded_detail(value: object) -> object:
    return excerpt(value, DETAIL_MAX_CHARS) if isinstance(value, str) else value


# A detail of an answer: longer text is cut, so no detail can echo a huge input.
Detail = Annotated[str, Field(max_length=DETAIL_MAX_CHARS), BeforeValidator(_bounded_detail)]


def _usable_name(value: object) -> object:
    # A name that cannot label a property is no name: the audience id names it instead.
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate: no label can hold it
        return None
    return value


# An audience's name: blank, not a string, or text that cannot be encoded counts as absent.
AudienceName = Annotated[
    str | None,
    BeforeValidator(_usable_name),
    Field(description="Blank, not a string or not valid Unicode: treated as absent (the audience id names it)."),
]


class AudienceInfo(BaseModel):
    """An entry of the optional top-level `audiences` map: `{"name": "High Value Customers"}`."""

    model_config = ConfigDict(extra="allow")

    name: AudienceName = None


class ActivationRequest(BaseModel):
    """The request body of `POST /v1/activations`.

    Profiles stay raw JSON values until validated one by one against `Profile`, so anything wrong inside one
    refuses that profile alone (`INVALID_PROFILE`), even a value nested too deeply to read. `audiences` only
    names audiences: an entry that is not an object, or the map itself when it is not one, is ignored.
    """

    model_config = ConfigDict(extra="allow")

    profiles: list[Annotated[Any, Field(description="A profile, validated on its own against `Profile`.")]] = Field(
        min_length=1
    )
    audiences: dict[str, AudienceInfo] = Field(default_factory=dict)

    @field_validator("audiences", mode="before")
    @classmethod
    def _ignore_malformed_audiences(cls, value: object) -> object:
        # Optional metadata for labels: a malformed part never refuses the request, the ids name the audiences.
        if not isinstance(value, dict):
            return {}
        usable = {}
        for audience_id, entry in value.items():
            try:
                usable[audience_id] = AudienceInfo.model_validate(entry)
            except ValidationError:  # not an object, or text no encoder can write (a lone surrogate)
                continue
        return usable


# The earliest `lastQualificationTime` accepted: the contact versions table orders times as microseconds since
# the epoch and drops, as older than anything, a time before it (`domain/versions.epoch_us` and `drop_stale`'s -1).
EARLIEST_QUALIFICATION = datetime(1970, 1, 1, tzinfo=UTC)


class Membership(BaseModel):
    """One audience membership, `segmentMembership.<namespace>.<audienceId>`.

    `lastQualificationTime` accepts every offset style AEP writes (`Z`, `+0000`, `+00:00`, with or
    without fractions); a time without an offset, or before 1970-01-01T00:00:00Z, is refused.
    """

    model_config = ConfigDict(extra="allow")

    status: AudienceStatus
    lastQualificationTime: AwareDatetime
    name: AudienceName = None

    @field_validator("status", mode="before")
    @classmethod
    def _lower_case_status(cls, value: object) -> object:
        # XDM's enum is lower-case; accept "Realized" from hand-written templates too.
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("lastQualificationTime")
    @classmethod
    def _orderable(cls, value: datetime) -> datetime:
        if value < EARLIEST_QUALIFICATION:
            raise ValueError("before 1970-01-01T00:00:00Z, the earliest time audience statuses are ordered from")
        return value


# A value inside a profile. The body was read as JSON (body.py), so every value already is one: checked again
# as pydantic's `JsonValue`, it cost a tenth of ingest's CPU.
ParsedJson = Annotated[Any, Field(description="Any JSON value.")]


class Profile(BaseModel):
    """One exported profile, as AEP sends it."""

    model_config = ConfigDict(extra="allow")

    identityMap: dict[str, list[dict[str, ParsedJson]]]
    attributes: dict[str, ParsedJson] = Field(default_factory=dict)
    segmentMembership: dict[str, dict[str, Membership]] = Field(default_factory=dict)


RejectionReason = Literal[
    Reason.INVALID_EMAIL,
    Reason.INVALID_PROFILE,
    Reason.INVALID_MEMBERSHIP,
    Reason.INVALID_ATTRIBUTE,
    Reason.PROFILE_TOO_LARGE,
    Reason.TOO_MANY_AUDIENCES,
]


class Rejection(BaseModel):
    """A profile refused at ingest: its index in `profiles`, a machine-readable reason and a detail (at most
    `DETAIL_MAX_CHARS` characters; longer text is cut with `…`)."""

    index: int
    reason: RejectionReason
    detail: Detail


class ActivationAccepted(BaseModel):
    """The 202 answer: `{"requestId", "accepted": n, "rejected": [{"index", "reason", "detail"}]}`."""

    requestId: str
    accepted: int
    rejected: list[Rejection]


class ErrorBody(BaseModel):
    """Every whole-request error: `{"error": CODE, "detail": text}` (at most `DETAIL_MAX_CHARS` characters)."""

    error: str
    detail: Detail

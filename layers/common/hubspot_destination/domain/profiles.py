"""The queue contract: what ingest puts on the activation queue for delivery, one profile update per contact.

`attributes` values still have to be coerced by the live property type (domain/coercion.py); `observed_at`
orders the updates of one contact (newest wins field by field), `qualified_at` its audience statuses.
"""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

AudienceStatus = Literal["realized", "existing", "exited"]
NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]
# What HubSpot can take for one property once coerced: a scalar, or a list for multi-select checkboxes.
AttributeValue = str | int | float | bool | list[str | int | float | bool]


class AudienceUpdate(BaseModel):
    """The status of one audience for one contact, as carried on the queue."""

    status: AudienceStatus
    qualified_at: AwareDatetime
    name: NonEmptyStr


class ProfileUpdate(BaseModel):
    """One queue message: what must become true for one HubSpot contact.

    `attributes` maps HubSpot internal property names to values that still have to be coerced by the
    live property type; `""` clears a value, absent names are left untouched. `observed_at` orders
    updates of the same contact (newest wins field by field).
    """

    model_config = ConfigDict(frozen=True)

    email: NonEmptyStr
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)
    audiences: dict[str, AudienceUpdate] = Field(default_factory=dict)
    observed_at: datetime
    request_id: str


class QueueMessage(BaseModel):
    """One SQS message: the updates of up to `MAX_PROFILES_PER_MESSAGE` profiles, and how many delivery
    attempts they have had (a profile retried for a transient fault comes back with `attempt + 1`)."""

    model_config = ConfigDict(frozen=True)

    profiles: list[ProfileUpdate] = Field(min_length=1)
    attempt: int = Field(default=0, ge=0)

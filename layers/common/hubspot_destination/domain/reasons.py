"""Every reason code the product gives, in one place: for refusals at ingest, dead letters, requeues and
retries. The README's tables, the CLI's `--reason` and the tests read them from here.
"""

from enum import StrEnum


class Reason(StrEnum):
    """Why a profile was refused, dead-lettered, requeued or retried."""

    # Refused at ingest (per index of the request), and dead letters HubSpot decided.
    INVALID_EMAIL = "INVALID_EMAIL"
    INVALID_PROFILE = "INVALID_PROFILE"
    INVALID_MEMBERSHIP = "INVALID_MEMBERSHIP"
    INVALID_ATTRIBUTE = "INVALID_ATTRIBUTE"
    PROFILE_TOO_LARGE = "PROFILE_TOO_LARGE"
    TOO_MANY_AUDIENCES = "TOO_MANY_AUDIENCES"
    # Dead letters: what HubSpot will never accept as it is.
    INVALID_VALUE = "INVALID_VALUE"
    PROPERTY_CONFLICT = "PROPERTY_CONFLICT"
    MALFORMED_MESSAGE = "MALFORMED_MESSAGE"
    RETRIES_EXHAUSTED = "RETRIES_EXHAUSTED"
    # Requeued after a delay, without counting an attempt (back-pressure).
    RATE_LIMITED = "RATE_LIMITED"
    DAILY_LIMIT = "DAILY_LIMIT"
    HUBSPOT_AUTH = "HUBSPOT_AUTH"
    TIMEOUT = "TIMEOUT"
    CONTACT_BUSY = "CONTACT_BUSY"
    AUDIENCE_PROPERTIES_PENDING = "AUDIENCE_PROPERTIES_PENDING"
    # Retried with attempt + 1 (transient faults).
    HUBSPOT_UNAVAILABLE = "HUBSPOT_UNAVAILABLE"
    HUBSPOT_MALFORMED_ANSWER = "HUBSPOT_MALFORMED_ANSWER"
    HUBSPOT_ERROR = "HUBSPOT_ERROR"
    UNACCOUNTED = "UNACCOUNTED"
    VERSIONS_UNAVAILABLE = "VERSIONS_UNAVAILABLE"
    UNEXPECTED_ERROR = "UNEXPECTED_ERROR"


# The reasons a dead letter carries (its `reason` message attribute).
DEAD_LETTER_REASONS = (
    Reason.INVALID_EMAIL,
    Reason.INVALID_VALUE,
    Reason.PROPERTY_CONFLICT,
    Reason.MALFORMED_MESSAGE,
    Reason.RETRIES_EXHAUSTED,
)

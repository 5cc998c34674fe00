"""The HubSpot adapter's typed faults: what went wrong with a call, never how HTTP carried it.

| class | when | what the caller does |
|---|---|---|
| `HubSpotAuthError` | 401 (after the token was fetched again) or 403 | a configuration fault: requeue, alarm |
| `HubSpotRateLimited` | 429 (`TEN_SECONDLY_ROLLING`, `DAILY`, `SECONDLY`) | wait for the window, or requeue |
| `HubSpotTransientError` | 423, 477, 5xx, timeouts, resets, after the client's own retry | retry later |
| `HubSpotMalformedAnswer` | not HubSpot's: wrong shape, too large, encoded, a redirect | retry later |
| `HubSpotNoTimeLeft` | not sent: the caller's time would run out first | requeue, no attempt counted |
| `HubSpotRequestError` | any other 4xx (400 validation, 404, 409) | the request itself is wrong |
"""

from hubspot_destination.hubspot.models import ErrorEnvelope
from hubspot_destination.hubspot.pacing import RateLimit


class HubSpotError(Exception):
    """A failed HubSpot call.

    Attributes: `status` (HTTP status, None when no answer was read), `envelope` (HubSpot's JSON error body,
    parsed; empty when there was none), `category`, `message`, `correlation_id`, `rate_limit` (the answer's
    validated `X-HubSpot-RateLimit-*` headers), `retry_after_s` (its `Retry-After` in seconds, validated; None
    when absent or not a number of seconds in range).
    """

    def __init__(
        self,
        status: int | None,
        envelope: ErrorEnvelope | None = None,
        rate_limit: RateLimit | None = None,
        message: str = "",
        retry_after_s: float | None = None,
    ):
        self.status = status
        self.retry_after_s = retry_after_s
        self.envelope = envelope or ErrorEnvelope()
        self.category = self.envelope.category or self.envelope.errorType
        self.message = (self.envelope.message or message)[:500]
        self.correlation_id = self.envelope.correlationId
        self.rate_limit = rate_limit or RateLimit()
        label = " ".join(str(part) for part in ("HubSpot", status, self.category) if part)
        super().__init__(f"{label}: {self.message}")


class HubSpotAuthError(HubSpotError):
    """401 (bad or revoked token) or 403 (a scope is missing): a configuration fault, not the data's."""


# The search API's own 429 (5 requests per second) is known by this exact message; whether it carries a
# `policyName` is unconfirmed (hubspot-api.md §3.3, HubSpot's Node SDK keys on the message too).
SECONDLY_LIMIT_MESSAGE = "You have reached your secondly limit."


class HubSpotRateLimited(HubSpotError):
    """429. `policy_name` is `TEN_SECONDLY_ROLLING`, `DAILY` or `SECONDLY`."""

    @property
    def policy_name(self) -> str | None:
        return self.envelope.policyName

    @property
    def secondly(self) -> bool:
        """The search API's per-second limit (`SECONDLY`, or its message without a `policyName`)."""
        return self.policy_name == "SECONDLY" or (self.policy_name is None and self.message == SECONDLY_LIMIT_MESSAGE)


class HubSpotTransientError(HubSpotError):
    """423, 5xx, timeouts and connection faults that persisted through the client's own retry."""


class HubSpotMalformedAnswer(HubSpotTransientError):
    """An answer that is not what HubSpot sends: a body of the wrong shape or encoding, larger than the cap,
    compressed without being asked to, a redirect, or a status HubSpot does not use. Nothing in it is trusted
    and no contact is blamed: the whole call is retried later."""


class HubSpotNoTimeLeft(HubSpotError):
    """The request was not sent: the caller's time (`time_left_s`) would run out first. Nothing is wrong with
    HubSpot or the data; the caller hands the work back without counting an attempt."""

    def __init__(self, message: str = "no time left for a HubSpot request"):
        super().__init__(None, message=message)


class HubSpotRequestError(HubSpotError):
    """Any other 4xx (400 validation errors, 404, 409): retrying the same request will not help."""

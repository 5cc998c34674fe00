"""Environment variables of each Lambda function, as pydantic models that fail at cold start.

Both functions' settings extend `QueueSettings` (what they share: the activation queue and how its messages
are packed) and `HubSpotSettings` (the portal both read: the ingest function lists its contact properties as
target fields, the deliver function writes them). A missing or malformed variable raises
`pydantic.ValidationError` when the handler module is imported, so a misconfigured deployment fails loudly on
its first invocation instead of half-working.
"""

from pydantic import Field, HttpUrl
from pydantic_settings import BaseSettings, SettingsConfigDict

from hubspot_destination.limits import SQS_MAX_DELAY_S, SQS_MAX_MESSAGE_BYTES

# Each distinct audience becomes one custom HubSpot contact property, of which a portal has a limited number
# (commonly cited: 1,000 per object; hubspot-api.md §2.5); AEP sends the memberships of the audiences mapped to
# the dataflow only (aep-payload.md §1.5), rarely more than a few dozen.
DEFAULT_MAX_AUDIENCES_PER_PROFILE = 100
DEFAULT_MAX_AUDIENCES_PER_REQUEST = 250


class QueueSettings(BaseSettings):
    """What both functions share: the activation queue, the size of its messages (the template sets the queue's
    MaximumMessageSize to the same value), how many profiles one carries, and how long secrets are cached."""

    model_config = SettingsConfigDict(frozen=True)

    queue_url: str = Field(alias="QUEUE_URL", min_length=1, description="The activation queue.")
    max_message_bytes: int = Field(
        default=SQS_MAX_MESSAGE_BYTES, alias="MAX_MESSAGE_BYTES", ge=1024, le=SQS_MAX_MESSAGE_BYTES
    )
    max_profiles_per_message: int = Field(default=50, alias="MAX_PROFILES_PER_MESSAGE", ge=1, le=500)
    secret_max_age_seconds: int = Field(default=300, alias="SECRET_MAX_AGE_SECONDS", ge=0)


class HubSpotSettings(BaseSettings):
    """What both functions know of the HubSpot portal: the private-app token's secret, the API's base URL, the
    audience property group (never a target field, written from memberships only) and how long the portal's
    property definitions are cached, in seconds."""

    model_config = SettingsConfigDict(frozen=True)

    hubspot_token_secret_id: str = Field(alias="HUBSPOT_TOKEN_SECRET_ID", min_length=1)
    hubspot_base_url: HttpUrl = Field(default=HttpUrl("https://api.hubapi.com"), alias="HUBSPOT_BASE_URL")
    audience_property_group: str = Field(
        default="aep_audiences", alias="AUDIENCE_PROPERTY_GROUP", pattern=r"^[a-z][a-z0-9_]{0,99}$"
    )
    property_cache_seconds: int = Field(default=300, alias="PROPERTY_CACHE_SECONDS", ge=0)


class IngestSettings(QueueSettings, HubSpotSettings):
    """Settings of the ingest function (API Gateway → SQS; the portal's target fields)."""

    webhook_secret_id: str = Field(
        alias="WEBHOOK_SECRET_ID",
        min_length=1,
        description='Secrets Manager id whose SecretString is {"bearerTokens": [...], "signingSecrets": [...]}',
    )
    max_body_bytes: int = Field(
        default=5_000_000,
        alias="MAX_BODY_BYTES",
        description=(
            "Largest request body accepted, in bytes. Lambda's synchronous payload limit is 6 MB and the proxy "
            "event carries the body JSON-escaped, so larger bodies never reach the function."
        ),
    )
    max_profiles_per_request: int = Field(default=10_000, alias="MAX_PROFILES_PER_REQUEST", ge=1)
    max_audiences_per_profile: int = Field(
        default=DEFAULT_MAX_AUDIENCES_PER_PROFILE,
        alias="MAX_AUDIENCES_PER_PROFILE",
        ge=1,
        description="Distinct audiences (segmentMembership entries) one profile may carry; more: TOO_MANY_AUDIENCES.",
    )
    max_audiences_per_request: int = Field(
        default=DEFAULT_MAX_AUDIENCES_PER_REQUEST,
        alias="MAX_AUDIENCES_PER_REQUEST",
        ge=1,
        description="Distinct audiences the accepted profiles of one request may carry; a profile past it is refused.",
    )
    signature_tolerance_seconds: int = Field(default=300, alias="SIGNATURE_TOLERANCE_SECONDS", ge=1)
    null_clears: bool = Field(
        default=False,
        alias="NULL_CLEARS",
        description='Mirror mode: a null attribute clears the HubSpot value (sent as ""); off: left untouched.',
    )


class DeliverSettings(QueueSettings, HubSpotSettings):
    """Settings of the deliver function (SQS → HubSpot)."""

    hubspot_requests_per_10s: int = Field(
        default=100,
        alias="HUBSPOT_REQUESTS_PER_10S",
        ge=1,
        description="The portal's burst limit per 10 s (tier); https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines",
    )
    hubspot_timeout_seconds: float = Field(
        default=20.0,
        alias="HUBSPOT_TIMEOUT_SECONDS",
        gt=0,
        description="Read timeout per attempt; a request with its 1 retry stays inside the 60-s function timeout.",
    )
    hubspot_upserts_in_flight: int = Field(
        default=10,
        alias="HUBSPOT_UPSERTS_IN_FLIGHT",
        ge=1,
        le=25,
        description="batch/upsert calls one invocation keeps in flight at once (a batch of 2,500 profiles holds "
        "up to 25), within its allowance; 10 at a 0.4-s answer time is 25 requests/s, more than any tier's share.",
    )
    audience_property_group_label: str = Field(
        default="AEP audiences", alias="AUDIENCE_PROPERTY_GROUP_LABEL", min_length=1
    )
    max_audience_properties: int = Field(
        default=500,
        alias="MAX_AUDIENCE_PROPERTIES",
        ge=1,
        description="Audience properties the group may hold; a new audience beyond it is a PROPERTY_CONFLICT.",
    )
    max_audience_properties_created: int = Field(
        default=25,
        alias="MAX_AUDIENCE_PROPERTIES_CREATED",
        ge=1,
        description="Audience properties created per invocation; contacts waiting for the others are requeued.",
    )
    dead_letter_queue_url: str = Field(alias="DEAD_LETTER_QUEUE_URL", min_length=1)
    max_delivery_attempts: int = Field(default=8, alias="MAX_DELIVERY_ATTEMPTS", ge=1)
    retry_base_delay_seconds: int = Field(default=10, alias="RETRY_BASE_DELAY_SECONDS", ge=0, le=SQS_MAX_DELAY_S)
    max_concurrency: int = Field(default=2, alias="MAX_CONCURRENCY", ge=1)
    strict_properties: bool = Field(
        default=False,
        alias="STRICT_PROPERTIES",
        description="Dead-letter a profile with an unknown, read-only or invalid attribute instead of dropping it.",
    )
    number_decimal_places: int | None = Field(default=None, alias="NUMBER_DECIMAL_PLACES", ge=0, le=20)
    number_thousands_separator: str | None = Field(default=None, alias="NUMBER_THOUSANDS_SEPARATOR", max_length=1)
    throttle_requeue_seconds: int = Field(default=30, alias="THROTTLE_REQUEUE_SECONDS", ge=0, le=SQS_MAX_DELAY_S)
    daily_limit_requeue_seconds: int = Field(default=900, alias="DAILY_LIMIT_REQUEUE_SECONDS", ge=0, le=SQS_MAX_DELAY_S)
    auth_failure_requeue_seconds: int = Field(
        default=300, alias="AUTH_FAILURE_REQUEUE_SECONDS", ge=0, le=SQS_MAX_DELAY_S
    )
    contact_versions_table: str = Field(alias="CONTACT_VERSIONS_TABLE", min_length=1)
    contact_lease_seconds: int = Field(
        default=90, alias="CONTACT_LEASE_SECONDS", ge=1, description="Longer than the function timeout."
    )
    contact_versions_ttl_days: int = Field(default=35, alias="CONTACT_VERSIONS_TTL_DAYS", ge=1)
    contact_versions_concurrency: int = Field(
        default=16, alias="CONTACT_VERSIONS_CONCURRENCY", ge=1, le=64, description="DynamoDB calls in flight at once."
    )

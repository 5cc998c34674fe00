"""The choices an operator makes for delivery (README, "Configuration"), from the deliver settings."""

import random
from dataclasses import dataclass, field

from hubspot_destination.domain.coercion import NumberFormat
from hubspot_destination.limits import SQS_MAX_DELAY_S


@dataclass(frozen=True)
class DeliveryPolicy:
    """How contacts are written.

    `strict`: a profile with an unknown, read-only or invalid attribute is dead-lettered (`INVALID_VALUE`)
    instead of being written without that field. `number_format`: rounding and separators for numbers.
    `audience_group`: the property group of the audience properties. The `*_requeue_s` delays (seconds, at
    most 900, SQS's largest `DelaySeconds`) space out back-pressure: a burst limit hit with no time left to
    wait, the daily limit, a refused token.
    """

    strict: bool = False
    number_format: NumberFormat = field(default_factory=NumberFormat)
    audience_group: str = "aep_audiences"
    throttle_requeue_s: int = 30
    daily_requeue_s: int = 900
    auth_requeue_s: int = 300


@dataclass(frozen=True)
class RetryPolicy:
    """Transient faults: `max_attempts` deliveries per profile, spaced `base_delay_s * 2^(attempt-1)`
    seconds plus up to `base_delay_s` of jitter, capped at 900 s (SQS's largest `DelaySeconds`)."""

    max_attempts: int = 8
    base_delay_s: int = 10

    def delay_s(self, attempt: int) -> int:
        """The delay before delivery attempt number `attempt` (1 = the first retry), in seconds."""
        backoff = self.base_delay_s * 2 ** max(0, attempt - 1)
        return min(SQS_MAX_DELAY_S, backoff + random.randint(0, self.base_delay_s))

"""The time an invocation may still spend calling its peers (HubSpot, DynamoDB), passed to every call."""

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Deadline:
    """When the current invocation must stop calling peers: `at`, in `time.monotonic()` seconds."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> "Deadline":
        return cls(time.monotonic() + seconds)

    def left_s(self) -> float:
        """Seconds until the deadline (negative once it passed)."""
        return self.at - time.monotonic()

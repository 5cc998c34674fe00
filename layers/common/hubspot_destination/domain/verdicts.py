"""Verdicts: the fate of one profile after delivery, which settlement turns into an SQS action.

| kind          | settlement does                                                              |
|---------------|------------------------------------------------------------------------------|
| `delivered`   | nothing: the record is acknowledged                                          |
| `requeue`     | the profile again, hidden `delay_s` seconds, the same attempt (back-pressure) |
| `retry`       | the profile again with attempt + 1 and a backoff (transient faults)          |
| `dead_letter` | the profile to the dead-letter queue with `reason` and `detail`              |
"""

from dataclasses import dataclass
from typing import Literal

from hubspot_destination.domain.reasons import Reason

VerdictKind = Literal["delivered", "requeue", "retry", "dead_letter"]
DETAIL_MAX = 1000  # characters of a verdict's detail (a dead letter's `detail` attribute)


@dataclass(frozen=True)
class Verdict:
    """The fate of one profile: `reason` and `detail` say why (none for `delivered`); `delay_s`, for
    `requeue`, how long the new message stays hidden, in seconds."""

    kind: VerdictKind
    reason: Reason | None = None
    detail: str = ""
    delay_s: int = 0

    def __post_init__(self) -> None:
        if len(self.detail) > DETAIL_MAX:
            object.__setattr__(self, "detail", self.detail[:DETAIL_MAX])


DELIVERED = Verdict("delivered")

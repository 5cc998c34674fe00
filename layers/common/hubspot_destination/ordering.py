"""Order across batches: a DynamoDB table of what was last written per contact, with per-contact leases.

SQS standard queues deliver at least once and in no particular order, and AEP retries; so a late or
replayed message could turn `exited` back into `realized`. The table keeps, per contact (keyed by the
SHA-256 of its email), the time of the newest value written for each attribute (when it was observed at
ingest) and for each audience (its `lastQualificationTime`). Before a write the deliver function takes a
lease on the contact (a conditional update, so two concurrent invocations never write the same contact at
once) and drops every field older than the table's; after HubSpot accepted the write it records the new
times and releases the lease. A crashed invocation's lease expires after `lease_s`.

Item: `{"contact": <sha256 hex>, "attrs": {name: epoch µs}, "auds": {audience id: epoch µs},
"lease_owner": str, "lease_until": epoch ms, "expires": epoch s (TTL)}`.
"""

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from botocore.exceptions import ClientError

from hubspot_destination.observability import logger

_CONDITION_FAILED = "ConditionalCheckFailedException"


def epoch_us(moment: datetime) -> int:
    """A timezone-aware datetime as integer microseconds since the epoch (exact, unlike float seconds)."""
    delta = moment - datetime(1970, 1, 1, tzinfo=moment.tzinfo)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def contact_key(email: str) -> str:
    """The table's partition key for a contact: the SHA-256 of its normalised email (no raw emails stored)."""
    return hashlib.sha256(email.encode()).hexdigest()


@dataclass(frozen=True)
class WrittenVersions:
    """What was last written for one contact: `{attribute: epoch µs}` and `{audience id: epoch µs}`."""

    attributes: Mapping[str, int]
    audiences: Mapping[str, int]


class ContactVersions:
    """The contact versions table (a boto3 `Table` resource).

    Args:
        table: `boto3.resource("dynamodb").Table(name)`.
        lease_s: how long a lease holds, in seconds (longer than the deliver function's timeout).
        ttl_days: items expire this many days after their last write (AEP forgets exited memberships
            after 30 days, so older versions no longer matter).
        clock: current time in seconds since the epoch.
    """

    def __init__(self, table, lease_s: int, ttl_days: int, clock: Callable[[], float] = time.time):
        self._table = table
        self._lease_s = lease_s
        self._ttl_s = ttl_days * 86_400
        self._clock = clock

    def acquire(self, email: str, owner: str) -> WrittenVersions | None:
        """Lease the contact for `owner` and return what was last written; None when another invocation
        holds an unexpired lease.

        Raises:
            botocore.exceptions.ClientError: DynamoDB failed (other than the lease being held).
        """
        now = self._clock()
        try:
            item = self._table.update_item(
                Key={"contact": contact_key(email)},
                UpdateExpression=(
                    "SET lease_owner = :me, lease_until = :until, expires = :expires, "
                    "attrs = if_not_exists(attrs, :empty), auds = if_not_exists(auds, :empty)"
                ),
                ConditionExpression="attribute_not_exists(lease_until) OR lease_until < :now OR lease_owner = :me",
                ExpressionAttributeValues={
                    ":me": owner,
                    ":now": int(now * 1000),
                    ":until": int((now + self._lease_s) * 1000),
                    ":expires": int(now + self._ttl_s),
                    ":empty": {},
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if error.response["Error"]["Code"] == _CONDITION_FAILED:
                return None
            raise
        return WrittenVersions(
            attributes={k: int(v) for k, v in item.get("attrs", {}).items()},
            audiences={k: int(v) for k, v in item.get("auds", {}).items()},
        )

    def commit(self, email: str, owner: str, attributes: Mapping[str, int], audiences: Mapping[str, int]) -> None:
        """Record the times of the values just written and release the lease.

        If the lease expired and another invocation took it, nothing is recorded (that invocation
        decides); a warning is logged.

        Raises:
            botocore.exceptions.ClientError: DynamoDB failed.
        """
        names: dict[str, str] = {}
        values: dict[str, object] = {":me": owner, ":expires": int(self._clock() + self._ttl_s)}
        sets = ["expires = :expires"]
        for prefix, field, times in (("a", "attrs", attributes), ("u", "auds", audiences)):
            for index, (name, stamp) in enumerate(times.items()):
                names[f"#{prefix}{index}"] = name
                values[f":{prefix}{index}"] = stamp
                sets.append(f"{field}.#{prefix}{index} = :{prefix}{index}")
        self._update_own(email, "SET " + ", ".join(sets) + " REMOVE lease_owner, lease_until", names, values)

    def release(self, email: str, owner: str) -> None:
        """Release the lease without recording anything (the write did not happen)."""
        self._update_own(email, "REMOVE lease_owner, lease_until", {}, {":me": owner})

    def _update_own(self, email: str, expression: str, names: dict, values: dict) -> None:
        arguments = {
            "Key": {"contact": contact_key(email)},
            "UpdateExpression": expression,
            "ConditionExpression": "lease_owner = :me",
            "ExpressionAttributeValues": values,
        }
        if names:
            arguments["ExpressionAttributeNames"] = names
        try:
            self._table.update_item(**arguments)
        except ClientError as error:
            if error.response["Error"]["Code"] != _CONDITION_FAILED:
                raise
            logger.warning("contact lease expired before the write was recorded")

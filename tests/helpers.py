"""Helpers the tests share.

First the invariant every test that pushes profiles through a `LocalPipeline` checks, once delivery is over:
each profile sent was refused at ingest, written to HubSpot or dead-lettered, and nothing is left on the queue.
It is checked before the test's own assertions so that a fault of the harness (a drain that ended with
messages still on the queue) is reported as such, not as a profile the product lost. Then a lease race the
DynamoDB stand-ins both run, and the bad sender credentials both routes of the ingest function refuse.
"""

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from hubspot_destination.ingest.signature import sign
from hubspot_local.accounting import Accounting
from hubspot_local.pipeline import LocalPipeline

if TYPE_CHECKING:
    from hubspot_destination.aws.dynamodb import ContactVersions
    from hubspot_destination.domain.versions import Leasing


def assert_all_accounted_for(pipeline: LocalPipeline, *, also_sent: Sequence[str] = (), queued: int = 0) -> Accounting:
    """Assert that written + dead-lettered + refused = sent, with nothing left on the activation queue.

    Args:
        pipeline: the pipeline the test used; every profile it ingested counts as sent.
        also_sent: message bodies the test put on the queue or handed to the handler itself (a body that is
            not a queue message must end dead-lettered as malformed).
        queued: profiles the test expects to be still on the queue (requeued with a long delay, say).

    Returns:
        The accounting, for further assertions.

    Raises:
        AssertionError: "harness fault" when the queue holds other than `queued` profiles; "lost" when a
            profile is neither written, dead-lettered nor queued.
    """
    accounting = pipeline.accounting(also_sent)
    left = [email for message in pipeline.messages_on(pipeline.queue_url) for email in message.emails]
    assert len(left) == queued == len(accounting.queued), (
        f"harness fault: {len(left)} profile(s) on the queue after the drain ({sorted(left, key=str)[:5]}), "
        f"{queued} expected"
    )
    assert not accounting.lost, f"lost: profile(s) neither written, dead-lettered nor queued: {accounting.lost}"
    return accounting


def assert_replay_accounted_for(result: dict) -> None:
    """The same invariant for the output of `replay --json`: its `profiles` counts."""
    profiles = result["profiles"]
    assert profiles["still_queued"] == 0, f"harness fault: profiles left on the queue: {result['still_queued']}"
    assert profiles["lost"] == 0, f"lost: {result['lost']}"
    assert profiles["written"] + profiles["dead_lettered"] + profiles["refused"] == profiles["sent"], profiles


class HookedClient:
    """A real (moto) boto3 client with chosen calls changed: `hooks` maps a method name to
    `hook(real_method, **arguments)`, which may fail the call, send it twice or pause around it."""

    def __init__(self, real, **hooks: Callable):
        self._real, self._hooks = real, hooks

    def __getattr__(self, name):
        real, hook = getattr(self._real, name), self._hooks.get(name)
        return (lambda **arguments: hook(real, **arguments)) if hook else real


def lease_while_a_rival_takes_two(
    versions: Callable[..., "ContactVersions"], rival: "ContactVersions"
) -> tuple["Leasing", list[int], set[str], set[str]]:
    """Lease ten contacts with `versions(transact_write_items=hook)` (a table whose client calls `hook`) while,
    between its read and its first transaction, `rival` (another invocation) leases two of them.

    Returns:
        `(leasing, the size of each TransactWriteItems sent, the ten emails, the two the rival holds)`.
    """
    held = {f"u{i}@example.com" for i in (3, 7)}
    sizes: list[int] = []

    def transact_write_items(real, **arguments):
        if not sizes:
            assert set(rival.acquire(sorted(held)).leases) == held
        sizes.append(len(arguments["TransactItems"]))
        return real(**arguments)

    emails = [f"u{i}@example.com" for i in range(10)]
    return versions(transact_write_items=transact_write_items).acquire(emails), sizes, set(emails), held


def _signed_now(event: dict, secret: str, age_s: int = 0) -> None:
    body = (event.get("body") or "").encode()
    event["headers"]["X-Signature"] = sign(secret, int(time.time()) - age_s, body)


# The ways a sender's credentials fail, which both routes of the ingest function answer with 401: `(id,
# change)`, `change(event, signing_secret)` altering an API Gateway event `proxy_event` signed with the secret.
BAD_CREDENTIALS: list[tuple[str, Callable[[dict, str], object]]] = [
    ("missing", lambda event, secret: event["headers"].pop("X-Signature")),
    ("wrong-signature", lambda event, secret: event["headers"].update(
        {"X-Signature": event["headers"]["X-Signature"].replace("v1=", "v1=0")}
    )),
    ("wrong-bearer", lambda event, secret: event["headers"].update({"Authorization": "Bearer guess"})),
    ("wrong-secret", lambda event, secret: _signed_now(event, "not-the-secret-0123456789")),
    ("stale", lambda event, secret: _signed_now(event, secret, age_s=301)),
    ("body-not-signed", lambda event, secret: event.update({"body": (event.get("body") or "") + " "})),
]  # fmt: skip

"""Settlement: what happens to each SQS message once its profiles have verdicts.

A queue message carries several profiles (domain/messages.py), and each profile gets its own verdict from
the delivery pipeline (pipeline.py). The message is acknowledged once every one of its profiles is settled:

| profile verdict | what is sent before the message is acknowledged                                         |
|-----------------|------------------------------------------------------------------------------------------|
| `delivered`     | nothing                                                                                  |
| `dead_letter`   | a one-profile message to the dead-letter queue, with `reason` and `detail` attributes   |
| `requeue`       | the profile again on the source queue, hidden for the verdict's delay, same `attempt`   |
| `retry`         | the profile again with `attempt + 1` and an exponential backoff with jitter; after      |
|                 | `max_attempts` it is dead-lettered as `RETRIES_EXHAUSTED` with its last reason           |

Re-sending a profile as a new message (instead of failing the record) means waiting never burns the
queue's `maxReceiveCount`. If SQS refuses a send, the original message is reported as a batch item
failure instead and comes back whole: a profile may be written twice (upserts are idempotent and the
versions table skips stale values) but is never lost. The redrive policy stays the backstop for
invocations that crash.
"""

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from hubspot_destination.aws.sqs import DeadLetter, EnqueueError
from hubspot_destination.deliver.policy import RetryPolicy
from hubspot_destination.deliver.ports import Deliverer, Outbox
from hubspot_destination.domain.deadline import Deadline
from hubspot_destination.domain.messages import decode_message, encode_message, pack
from hubspot_destination.domain.profiles import ProfileUpdate
from hubspot_destination.domain.reasons import Reason
from hubspot_destination.domain.verdicts import Verdict
from hubspot_destination.observability import logger, metrics

_METRICS = {
    "delivered": "ProfilesDelivered",
    "requeue": "ProfilesRequeued",
    "retry": "ProfilesRetried",
    "dead_letter": "ProfilesDeadLettered",
}


@dataclass(frozen=True)
class QueueRecord:
    """One SQS record as the deliver function sees it."""

    message_id: str
    body: str


@dataclass
class _Profile:
    message_id: str
    update: ProfileUpdate
    attempt: int


def settle_batch(
    records: Sequence[QueueRecord],
    delivery: Deliverer,
    deadline: Deadline,
    outbox: Outbox,
    retry: RetryPolicy,
    max_profiles_per_message: int,
    max_message_bytes: int,
) -> set[str]:
    """Deliver the profiles of a batch of records by `deadline` and settle every record.

    Returns:
        The message ids to report as batch item failures (their profiles could not all be settled).
    """
    profiles: dict[str, _Profile] = {}
    letters: dict[str, list[DeadLetter]] = defaultdict(list)
    for record in records:
        try:
            message = decode_message(record.body)
        except ValidationError as error:
            letters[record.message_id].append(DeadLetter(record.body, Reason.MALFORMED_MESSAGE, str(error)[:1000]))
            continue
        for index, update in enumerate(message.profiles):
            profiles[f"{record.message_id}#{index}"] = _Profile(record.message_id, update, message.attempt)

    try:
        verdicts = delivery.deliver([(ref, profile.update) for ref, profile in profiles.items()], deadline)
    except Exception as error:  # a bug or an unforeseen fault must not crash-loop the batch into the DLQ
        logger.exception("delivery failed unexpectedly; the profiles are retried")
        verdicts = {
            ref: Verdict("retry", Reason.UNEXPECTED_ERROR, f"{type(error).__name__}: {error}") for ref in profiles
        }
    resend: dict[tuple[int, int], list[_Profile]] = defaultdict(list)  # (delay s, attempt) -> profiles
    counts = dict.fromkeys(_METRICS, 0)
    reasons: Counter[Reason] = Counter(letter.reason for group in letters.values() for letter in group)  # for the log
    for ref, profile in profiles.items():
        verdict = verdicts.get(ref) or Verdict("retry", Reason.UNACCOUNTED, "no verdict")
        if verdict.kind == "retry" and profile.attempt + 1 >= retry.max_attempts:
            detail = f"{verdict.reason}: {verdict.detail}"
            verdict = Verdict("dead_letter", Reason.RETRIES_EXHAUSTED, detail)
        if verdict.kind != "dead_letter":
            counts[verdict.kind] += 1  # dead letters are counted once the DLQ took them
        if verdict.reason:
            reasons[verdict.reason] += 1
        if verdict.kind == "dead_letter" and verdict.reason is not None:
            body = encode_message([profile.update], profile.attempt)
            letters[profile.message_id].append(DeadLetter(body, verdict.reason, verdict.detail))
        elif verdict.kind == "requeue":
            resend[(verdict.delay_s, profile.attempt)].append(profile)
        elif verdict.kind == "retry":
            attempt = profile.attempt + 1
            resend[(retry.delay_s(attempt), attempt)].append(profile)
    failed: set[str] = set()
    if letters:
        sent = [letter for group in letters.values() for letter in group]
        try:
            outbox.dead_letter(sent)
            counts["dead_letter"] = len(sent)
        except (EnqueueError, BotoCoreError, ClientError) as error:
            logger.error("the dead-letter queue refused messages; they come back", extra={"error": str(error)})
            failed.update(letters)
    for kind, name in _METRICS.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=counts[kind])
    for (delay_s, attempt), group in resend.items():
        bodies = pack([p.update for p in group], max_profiles_per_message, max_message_bytes, attempt)
        try:
            outbox.requeue([(body, delay_s) for body in bodies])
        except (EnqueueError, BotoCoreError, ClientError) as error:
            logger.error("the queue refused requeued profiles; they come back", extra={"error": str(error)})
            failed.update(p.message_id for p in group)
    extra = {"records": len(records), "failed_records": len(failed), **counts, "reasons": dict(reasons)}
    logger.info("batch settled", extra=extra)
    return failed

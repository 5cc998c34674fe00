"""Settlement: each SQS record acknowledged once every one of its profiles is settled (Given / When / Then),
with a scripted deliverer and an in-memory outbox."""

import json
from datetime import UTC, datetime

import pytest

from hubspot_destination.deliver.policy import RetryPolicy
from hubspot_destination.deliver.settlement import QueueRecord, settle_batch
from hubspot_destination.domain.deadline import Deadline
from hubspot_destination.domain.messages import encode_message
from hubspot_destination.domain.profiles import ProfileUpdate
from hubspot_destination.domain.reasons import Reason
from hubspot_destination.domain.verdicts import DELIVERED, Verdict
from tests.unit.fakes import FakeOutbox

T0 = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
RETRY = RetryPolicy(max_attempts=3, base_delay_s=10)


def profile(n: int) -> ProfileUpdate:
    return ProfileUpdate(email=f"user{n}@example.com", attributes={"city": "York"}, observed_at=T0, request_id="r")


class ScriptedDeliverer:
    """Gives each profile the verdict its email's number picks from `verdicts`; `error` makes it raise."""

    def __init__(self, *verdicts: Verdict, error: Exception | None = None):
        self.verdicts, self.error = verdicts, error

    def deliver(self, updates, deadline):
        if self.error is not None:
            raise self.error
        return {ref: self.verdicts[int(u.email[4]) % len(self.verdicts)] for ref, u in updates}


def settle(deliverer, outbox, *bodies: str):
    records = [QueueRecord(f"msg-{index}", body) for index, body in enumerate(bodies)]
    return settle_batch(records, deliverer, Deadline.after(60), outbox, RETRY, 50, 1_048_576)


def test_a_delivered_batch_sends_nothing_and_acknowledges_every_record():
    outbox = FakeOutbox()
    assert settle(ScriptedDeliverer(DELIVERED), outbox, encode_message([profile(0), profile(1)])) == set()
    assert (outbox.requeued, outbox.letters) == ([], [])


def test_each_profile_of_a_message_is_settled_on_its_own():
    requeue = Verdict("requeue", Reason.RATE_LIMITED, "429", 30)
    retry = Verdict("retry", Reason.HUBSPOT_UNAVAILABLE, "503")
    dead = Verdict("dead_letter", Reason.INVALID_EMAIL, "HubSpot: INVALID_EMAIL")
    outbox = FakeOutbox()
    failed = settle(
        ScriptedDeliverer(DELIVERED, requeue, retry, dead), outbox, encode_message([profile(n) for n in range(4)])
    )
    assert failed == set()
    by_delay = {delay: json.loads(body) for body, delay in outbox.requeued}
    assert by_delay[30]["attempt"] == 0  # back-pressure: the same attempt
    assert [p["email"] for p in by_delay[30]["profiles"]] == ["user1@example.com"]
    [retried] = [body for delay, body in by_delay.items() if delay != 30]
    assert retried["attempt"] == 1  # a transient fault counts an attempt
    [letter] = outbox.letters
    assert (letter.reason, json.loads(letter.body)["profiles"][0]["email"]) == ("INVALID_EMAIL", "user3@example.com")


def test_a_profile_out_of_attempts_is_dead_lettered_with_its_last_reason():
    outbox = FakeOutbox()
    body = encode_message([profile(0)], attempt=RETRY.max_attempts - 1)
    settle(ScriptedDeliverer(Verdict("retry", Reason.HUBSPOT_MALFORMED_ANSWER, "results: not a list")), outbox, body)
    [letter] = outbox.letters
    assert letter.reason == Reason.RETRIES_EXHAUSTED
    assert letter.detail == "HUBSPOT_MALFORMED_ANSWER: results: not a list"
    assert outbox.requeued == []


def test_a_message_that_is_not_a_queue_message_is_dead_lettered_whole():
    outbox = FakeOutbox()
    assert settle(ScriptedDeliverer(DELIVERED), outbox, "not a queue message") == set()
    [letter] = outbox.letters
    assert (letter.body, letter.reason) == ("not a queue message", "MALFORMED_MESSAGE")


@pytest.mark.parametrize(
    "verdict", [Verdict("requeue", Reason.TIMEOUT), Verdict("dead_letter", Reason.INVALID_VALUE, "x")]
)
def test_when_sqs_refuses_the_record_comes_back_whole_so_nothing_is_lost(verdict):
    bodies = [encode_message([profile(0)]), encode_message([profile(1)])]
    assert settle(ScriptedDeliverer(verdict), FakeOutbox(refuse=True), *bodies) == {"msg-0", "msg-1"}


def test_an_unexpected_error_in_delivery_retries_every_profile_instead_of_crashing():
    outbox = FakeOutbox()
    assert settle(ScriptedDeliverer(error=KeyError("bug")), outbox, encode_message([profile(0)])) == set()
    [(body, _)] = outbox.requeued
    assert json.loads(body)["attempt"] == 1

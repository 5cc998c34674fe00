"""The event source mapping stand-in never ends a drain while a message is on the queue, in whatever state, and
a drain that gives up says what it left. Against moto's SQS; a hooked client pauses at chosen points so a
message's delay or visibility timeout ends exactly where the mapping could miss it."""

import threading
import time

import boto3
import pytest
from moto import mock_aws

from hubspot_local.event_source_mapping import DrainStats, EventSourceMapping, QueueDepth, queue_depth
from hubspot_local.harness import thread_safe_moto
from tests.helpers import HookedClient

HIDDEN_S = 1  # how long the message is delayed or in flight when the drain starts
PAST_IT_S = HIDDEN_S + 0.3


@pytest.fixture
def sqs():
    with mock_aws(), thread_safe_moto():
        yield boto3.client("sqs", region_name="us-east-1")


def hidden_message(sqs, state: str) -> str:
    """A queue holding one message that cannot be received for `HIDDEN_S`: delayed, or in flight (another
    consumer received it). Returns the queue URL."""
    url = sqs.create_queue(QueueName="activations")["QueueUrl"]
    if state == "delayed":
        sqs.send_message(QueueUrl=url, MessageBody="m", DelaySeconds=HIDDEN_S)
    else:
        sqs.send_message(QueueUrl=url, MessageBody="m")
        assert sqs.receive_message(QueueUrl=url, VisibilityTimeout=HIDDEN_S)["Messages"]
    return url


def after_an_empty_receive(sqs):
    """The message becomes visible between the mapping's empty receive and its look at the queue."""

    def receive_message(call, **arguments):
        answer = call(**arguments)
        if not answer.get("Messages"):
            time.sleep(PAST_IT_S)
        return answer

    return HookedClient(sqs, receive_message=receive_message)


def during_the_count(sqs):
    """The message becomes visible while SQS counts the states, after it counted the visible ones (moto counts
    them one after the other), the first time the queue is counted."""
    first_count = [True]

    def get_queue_attributes(call, **arguments):
        names = arguments.pop("AttributeNames")
        if "ApproximateNumberOfMessages" not in names:  # not a count (the queue's ARN, say)
            return call(AttributeNames=names, **arguments)
        counts = call(AttributeNames=names[:1], **arguments)["Attributes"]
        if first_count:
            first_count.clear()
            time.sleep(PAST_IT_S)
        counts.update(call(AttributeNames=names[1:], **arguments)["Attributes"])
        return {"Attributes": counts}

    return HookedClient(sqs, get_queue_attributes=get_queue_attributes)


@pytest.mark.parametrize("state", ["delayed", "in_flight"])
@pytest.mark.parametrize("moment", [after_an_empty_receive, during_the_count])
def test_a_message_that_becomes_visible_while_the_mapping_looks_is_still_delivered(sqs, state, moment):
    url = hidden_message(sqs, state)
    handled = []
    mapping = EventSourceMapping(
        moment(sqs), url, lambda event, _: handled.extend(r["body"] for r in event["Records"]), max_wait_s=10
    )
    stats = mapping.drain()
    assert handled == ["m"]
    assert stats.left_on_queue == QueueDepth()
    assert queue_depth(sqs, url) == QueueDepth()


def test_a_drain_past_its_time_limit_stops_and_says_what_it_left(sqs):
    url = sqs.create_queue(QueueName="activations")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
    sqs.send_message(QueueUrl=url, MessageBody="now")
    handled = []
    mapping = EventSourceMapping(
        sqs, url, lambda event, _: handled.extend(r["body"] for r in event["Records"]), max_wait_s=120, time_limit_s=1
    )
    stats = mapping.drain()
    assert handled == ["now"]
    assert stats.left_on_queue == QueueDepth(delayed=1)


@pytest.mark.parametrize("state", ["delayed", "in_flight"])
def test_a_count_that_misses_a_message_changing_state_is_made_again(sqs, state):
    url = hidden_message(sqs, state)
    assert queue_depth(during_the_count(sqs), url) == QueueDepth(visible=1)


def drain_in_background(mapping: EventSourceMapping, inputs_done: threading.Event) -> tuple[threading.Thread, list]:
    """Run `mapping.drain(inputs_done)` in a daemon thread (a drain that never returns cannot hold the test
    run); the list receives its stats."""
    stats: list = []
    thread = threading.Thread(target=lambda: stats.append(mapping.drain(inputs_done)), daemon=True)
    thread.start()
    return thread, stats


def test_stop_ends_a_drain_still_waiting_for_input(sqs):
    url = sqs.create_queue(QueueName="activations")["QueueUrl"]
    mapping = EventSourceMapping(sqs, url, lambda event, _: None)
    inputs_done = threading.Event()  # never set: input keeps arriving, as behind `serve`
    thread, stats = drain_in_background(mapping, inputs_done)
    mapping.stop()
    thread.join(timeout=30)
    assert stats == [DrainStats()]


def test_a_drain_stopped_during_an_invocation_starts_no_other_and_says_what_it_left(sqs):
    url = sqs.create_queue(QueueName="activations")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
    sqs.send_message(QueueUrl=url, MessageBody="now")
    handled = []

    def handler(event, _context):
        handled.extend(record["body"] for record in event["Records"])
        sqs.send_message(QueueUrl=url, MessageBody="sent by the invocation")
        mapping.stop()

    mapping = EventSourceMapping(sqs, url, handler)
    thread, stats = drain_in_background(mapping, threading.Event())
    thread.join(timeout=30)
    assert handled == ["now"]
    [drained] = stats
    assert (drained.invocations, drained.left_on_queue) == (1, QueueDepth(visible=1, delayed=1))

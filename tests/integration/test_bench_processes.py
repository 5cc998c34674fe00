"""The processes `bench` runs: moto's server, the deliver execution environments as workers of their own (as
Lambda runs them, failures included), the AWS calls counted on the client side as moto counts them in
process, and no process left behind by a run that fails or is interrupted."""

import io

import pytest

from hubspot_local.event_source_mapping import EventSourceMapping
from hubspot_local.harness import thread_safe_moto
from hubspot_local.pipeline import LocalPipeline
from hubspot_local.stand_ins import moto_server
from hubspot_local.usage import ClientMeter, metering
from tests.helpers import assert_all_accounted_for


@pytest.fixture
def aws_pipeline(pipeline_env):
    """A local pipeline whose AWS services are moto's server, a process of its own."""
    with moto_server() as aws, LocalPipeline(aws_url=aws.url, handler_output=io.StringIO()) as pipeline:
        yield pipeline


def test_the_client_side_count_of_aws_calls_is_moto_s_in_process_count(pipeline_env, activation_body):
    """The same calls, counted by the bench's botocore hooks and by the in-process harness as moto answers
    them: equal units."""
    with (
        thread_safe_moto() as moto,
        metering(ClientMeter()) as meter,
        LocalPipeline(handler_output=io.StringIO()) as pipeline,
    ):
        pipeline.ingest(activation_body)
        pipeline.drain()
        assert_all_accounted_for(pipeline)
    assert meter.usage.units == moto.usage.units
    assert meter.usage.units["sqs_requests"] > 0
    assert meter.usage.units["dynamodb_read_units"] == 5  # one per contact (the sample's five accepted)
    assert meter.usage.units["dynamodb_write_units"] >= 10  # a lease and a record each


def test_moto_s_server_runs_the_pipeline_s_aws_as_a_process_of_its_own(aws_pipeline, activation_body):
    assert aws_pipeline.sqs.meta.endpoint_url.startswith("http://127.0.0.1:")
    assert aws_pipeline.ingest(activation_body)["status"] == 202
    stats = EventSourceMapping(
        aws_pipeline.sqs, aws_pipeline.queue_url, aws_pipeline.deliver_module.lambda_handler, max_wait_s=5
    ).drain()
    assert stats.invocations >= 1
    accounting = assert_all_accounted_for(aws_pipeline)  # the queues read through the server
    assert len(accounting.written) == 5

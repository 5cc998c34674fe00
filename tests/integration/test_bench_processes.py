"""The processes `bench` runs: moto's server, the deliver execution environments as workers of their own (as
Lambda runs them, failures included), the AWS calls counted on the client side as moto counts them in
process, and no process left behind by a run that fails or is interrupted."""

import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hubspot_local.bench import run_bench
from hubspot_local.event_source_mapping import EventSourceMapping, InvocationKilled
from hubspot_local.function_worker import InvocationError, function_environments, invocations_cpu_s, total_units
from hubspot_local.harness import thread_safe_moto
from hubspot_local.lambda_runtime import LambdaContext
from hubspot_local.pipeline import DEPLOYED, LocalPipeline
from hubspot_local.stand_ins import moto_server, process_cpu_s
from hubspot_local.usage import ClientMeter, metering
from tests.helpers import assert_all_accounted_for

CLI = Path(sys.executable).with_name("hubspot-destination")
EMPTY_BATCH: dict = {"Records": []}


def running(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def children(pid: int) -> set[int]:
    """The processes `pid` has started that are still its children (any of its threads')."""
    tasks = Path(f"/proc/{pid}/task")
    return {int(child) for task in tasks.iterdir() for child in (task / "children").read_text().split()}


@pytest.fixture
def aws_pipeline(pipeline_env):
    """A local pipeline whose AWS services are moto's server, a process of its own."""
    with moto_server() as aws, LocalPipeline(aws_url=aws.url, handler_output=io.StringIO()) as pipeline:
        yield pipeline


def wait_until_waiting_for_the_worker(thread: threading.Thread, timeout_s: float = 30.0) -> None:
    """Wait until `thread` is in `Connection.poll`: it has sent its invocation and waits for the answer."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        frame = sys._current_frames().get(thread.ident or 0)
        while frame is not None:
            if frame.f_code.co_name == "poll" and frame.f_code.co_filename.endswith("connection.py"):
                return
            frame = frame.f_back
        time.sleep(0.01)
    raise AssertionError("the invocation did not begin")


def context(timeout_s: float = 30.0) -> LambdaContext:
    return LambdaContext("DeliverFunction", timeout_s)


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
    assert meter.usage.units == moto.units
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


def test_each_deliver_environment_is_a_process_of_its_own_that_loads_once(aws_pipeline, activation_body):
    aws_pipeline.ingest(activation_body)
    with function_environments(2, "deliver", "ours", dict(os.environ)) as environments:
        pids = [environment.pid for environment in environments]
        mapping = EventSourceMapping(
            aws_pipeline.sqs,
            aws_pipeline.queue_url,
            environments,
            DEPLOYED.batch_size,
            max_wait_s=5,
            cpu_clock=invocations_cpu_s,
        )
        stats = mapping.drain()
        # Their CPU and their AWS units came back with the results.
        assert stats.handler_cpu_s == pytest.approx(sum(environment.cpu_s for environment in environments))
        assert stats.handler_cpu_s > 0
        assert total_units(environments)["dynamodb_read_units"] == 5
        assert [environment.pid for environment in environments] == pids  # loaded once, still the same
        assert all(running(pid) for pid in pids)
        assert environments[0](EMPTY_BATCH, context()) == {"batchItemFailures": []}
    assert len(set(pids)) == 2
    assert os.getpid() not in pids
    assert not any(running(pid) for pid in pids)  # stopped with the context
    assert len(assert_all_accounted_for(aws_pipeline).written) == 5


def test_a_frozen_environment_is_killed_at_its_timeout_and_the_next_invocation_gets_a_new_one(aws_pipeline):
    with function_environments(1, "deliver", "ours", dict(os.environ)) as [environment]:
        frozen = environment.pid
        assert frozen is not None
        os.kill(frozen, signal.SIGSTOP)
        with pytest.raises(InvocationKilled, match="timed out"):
            environment(EMPTY_BATCH, context(timeout_s=0.5))
        assert not running(frozen)
        assert environment(EMPTY_BATCH, context()) == {"batchItemFailures": []}
        assert environment.pids == [frozen, environment.pid]


def test_an_environment_that_dies_during_an_invocation_fails_it_and_the_next_gets_a_new_one(aws_pipeline):
    with function_environments(1, "deliver", "ours", dict(os.environ)) as [environment]:
        dying = environment.pid
        assert dying is not None
        os.kill(dying, signal.SIGSTOP)  # so that it is still in the invocation when it dies
        failures: list[BaseException] = []

        def invoke() -> None:
            try:
                environment(EMPTY_BATCH, context())
            except BaseException as error:
                failures.append(error)

        invocation = threading.Thread(target=invoke)
        invocation.start()
        wait_until_waiting_for_the_worker(invocation)  # the event sent: the invocation has begun
        os.kill(dying, signal.SIGKILL)
        invocation.join(timeout=30)
        assert [type(error) for error in failures] == [RuntimeError]
        assert "exited during the invocation: signal SIGKILL" in str(failures[0])
        assert environment(EMPTY_BATCH, context()) == {"batchItemFailures": []}
        assert environment.pid != dying


def test_a_handler_that_raises_in_its_environment_is_an_invocation_error_and_the_environment_stays(aws_pipeline):
    with function_environments(1, "deliver", "ours", dict(os.environ)) as [environment]:
        before = environment.pid
        with pytest.raises(InvocationError, match="KeyError"):
            environment({"Records": [{"body": "no message id"}]}, context())
        assert environment(EMPTY_BATCH, context()) == {"batchItemFailures": []}
        assert environment.pid == before


def test_a_bench_that_fails_leaves_no_process_behind(pipeline_env, monkeypatch):
    before = children(os.getpid())
    monkeypatch.setenv("MAX_DELIVERY_ATTEMPTS", "0")  # the deliver function's settings refuse it at load
    with pytest.raises(ValueError, match="MAX_DELIVERY_ATTEMPTS"):
        run_bench(profiles=100, tier="addon", latency_ms=0)
    assert children(os.getpid()) <= before


# Runs a command with SIGINT ignored (kept across exec), as a shell without job control starts one with `&`.
IGNORING_SIGINT = [
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); os.execv(sys.argv[1], sys.argv[1:])",
]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT started ignored"])
def test_an_interrupted_bench_leaves_no_process_behind(pipeline_env, signum):
    command = [str(CLI), "bench", "--profiles", "3000", "--tier", "addon", "--dynamodb", "moto"]
    bench = subprocess.Popen(
        (IGNORING_SIGINT if signum == signal.SIGINT else []) + command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert bench.stderr is not None
        assert bench.stderr.readline().startswith("bench ours: ")  # the first progress line: 5 s into the run
        started = children(bench.pid)
        assert len(started) >= 3  # moto's server and the two deliver environments
        bench.send_signal(signum)
        _, error = bench.communicate(timeout=120)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
    assert bench.returncode == 130, error
    assert "interrupted" in error
    assert not [pid for pid in started if running(pid)]
    assert all(process_cpu_s(pid) is None for pid in started)

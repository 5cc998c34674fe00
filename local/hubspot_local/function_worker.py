"""The functions' execution environments as processes of their own, as Lambda runs them (`bench`).

Each `FunctionEnvironment` is a Python process started as `python -m hubspot_local.function_worker --function
deliver|ingest` (a fresh interpreter, as at a cold start: nothing is forked from the bench, whose threads are
running by then) that loads the function's handler module once, then runs the invocations sent to it one at
a time, over a socketpair (`multiprocessing.connection`, pickled messages). The bench calls a
`FunctionEnvironment` as it would call the handler: the event source mapping stand-in sends a deliver
environment each batch event, the local pipeline sends the ingest environment each API Gateway event, with
the time left before the function's timeout (the worker's `LambdaContext.get_remaining_time_in_millis()`
counts down from it), and gets back the handler's response. So no stand-in shares an interpreter with a
function: in AWS the ingest function never waits for the deliver functions' CPU, or for the bench's.

A failing environment is treated as Lambda treats one: an invocation that outlives its timeout (by more than
`TIMEOUT_GRACE_S`, for the exchange) has its process killed and raises `InvocationKilled` (the mapping then
counts it as died, and the whole batch comes back); a process that exits during an invocation raises
`RuntimeError` (an invocation error: the whole batch comes back); either way the next invocation gets a
new process (a cold start). An invocation cut short by `close` raises `InvocationKilled` too. A
handler that raises inside the worker raises `InvocationError` here, with the worker's traceback.

Each worker counts its AWS calls client side (`usage.ClientMeter`) and measures its CPU time during each
invocation (`time.process_time()`: every thread of the process, the handler's and its pools', less what
the counting took) and the wall time of its SQS calls; all of it comes back with each result. Its stdout
(Powertools' logs and metrics) goes to `/dev/null`; its stderr is the bench's.

Messages: to the worker `(event, remaining_s, aws_request_id)` per invocation, `None` to stop; from it
`("ready", pid)` once loaded (or `("failed", traceback)`), then per invocation `(outcome, response,
cpu_s, sqs_s, units)`: outcome `ok` (response: the handler's return value) or `raised` (response: the
traceback), `cpu_s` and `sqs_s` in seconds, `units` the `AwsUsage` units of its calls (`sqs_requests`, ...).
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from multiprocessing.connection import Connection

from hubspot_local.event_source_mapping import InvocationKilled
from hubspot_local.lambda_runtime import LambdaContext, load_handler_module
from hubspot_local.usage import ClientMeter, metering

FUNCTIONS = ("deliver", "ingest")
STRATEGIES = ("ours", "peer")  # bench.py: `peer` turns the deliver function's HubSpot pacer off
LOAD_TIMEOUT_S = 120.0  # a cold start: imports and the handler module's load, on a busy machine
TIMEOUT_GRACE_S = 1.0  # past the function's timeout, for the exchange with the worker, before it is killed
STOP_TIMEOUT_S = 5.0

_charged = threading.local()  # per mapping thread: CPU seconds of the invocations it has made in workers


class InvocationError(Exception):
    """The handler raised inside its execution environment; the message holds the worker's traceback."""


def invocations_cpu_s() -> float:
    """CPU seconds the calling thread's invocations have spent in their workers so far: the event source
    mapping's `cpu_clock` for handlers that are `FunctionEnvironment`s."""
    return getattr(_charged, "cpu_s", 0.0)


class FunctionEnvironment:
    """One execution environment of a function in a process of its own; call it as the handler (module doc).

    Args:
        function: `deliver` or `ingest`.
        strategy: `ours`, or `peer` (the deliver function's HubSpot pacer off, `bench.py`).
        env: the worker's environment variables (the handler reads its settings from them at load).

    `cpu_s`, `sqs_s` and `units`: the CPU seconds, seconds in SQS calls and AWS units of every invocation
    that returned, so far. `pids`: every process it has run, the current one last (a new one after a
    failure). Call `close` when done.
    """

    def __init__(self, function: str, strategy: str, env: dict[str, str]) -> None:
        if function not in FUNCTIONS or strategy not in STRATEGIES:
            raise ValueError(f"unknown function {function!r} or strategy {strategy!r}")
        self._function, self._strategy, self._env = function, strategy, dict(env)
        self._process: subprocess.Popen | None = None
        self._connection: Connection | None = None
        self._lock = threading.Lock()  # one invocation at a time
        self._process_lock = threading.Lock()  # starting and stopping the process
        self._closed = False
        self.cpu_s = 0.0
        self.sqs_s = 0.0
        self.units: Counter[str] = Counter()
        self.pids: list[int] = []

    def start(self) -> None:
        """Start its process (a cold start) without waiting for it to load (`wait_ready`).

        Raises:
            RuntimeError: it was closed.
        """
        with self._process_lock:
            if self._closed:
                raise RuntimeError(f"the {self._function} execution environment was closed")
            ours, theirs = socket.socketpair()
            with theirs:
                fd = theirs.fileno()
                command = [sys.executable, "-m", __name__, "--fd", str(fd), "--function", self._function]
                command += ["--strategy", self._strategy]
                self._process = subprocess.Popen(  # noqa: S603 - this interpreter, our own module
                    command, pass_fds=[fd], env=self._env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
                )
            self._connection = Connection(ours.detach())
            self.pids.append(self._process.pid)

    def wait_ready(self, timeout_s: float = LOAD_TIMEOUT_S) -> None:
        """Wait until its process has loaded the handler module.

        Raises:
            RuntimeError: the module failed to load (with the worker's traceback), the process exited, or it
                did not load within `timeout_s`.
        """
        assert self._connection is not None, "start() first"
        try:
            if not self._connection.poll(timeout_s):
                raise RuntimeError(f"the {self._function} execution environment did not load within {timeout_s:.0f} s")
            message = self._connection.recv()
        except (EOFError, OSError):
            ended = self._ended()
            raise RuntimeError(f"the {self._function} execution environment exited while loading: {ended}") from None
        if message[0] != "ready":
            raise RuntimeError(f"the {self._function} handler failed to load:\n{message[1]}")

    @property
    def pid(self) -> int | None:
        """The current process's id (None before `start`)."""
        return self._process.pid if self._process is not None else None

    def __call__(self, event: dict, context: LambdaContext) -> dict | None:
        """Run one invocation in the worker and return the handler's response (module doc for failures)."""
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._restart()  # gone since the last invocation: this one gets a new sandbox
            connection = self._connection
            remaining_s = context.get_remaining_time_in_millis() / 1000
            try:
                if connection is None:
                    raise OSError("closed")
                connection.send((event, remaining_s, context.aws_request_id))
                if not connection.poll(remaining_s + TIMEOUT_GRACE_S):
                    self._kill()
                    raise InvocationKilled("the invocation timed out")
                outcome, response, cpu_s, sqs_s, units = connection.recv()
            except (EOFError, OSError):
                if self._closed:  # stopped by `close`: the run is ending
                    raise InvocationKilled("its execution environment was stopped") from None
                ended = self._ended()
                self._kill()
                raise RuntimeError(
                    f"the {self._function} execution environment exited during the invocation: {ended}"
                ) from None
            self.cpu_s += cpu_s
            self.sqs_s += sqs_s
            self.units.update(units)
            _charged.cpu_s = invocations_cpu_s() + cpu_s
            if outcome != "ok":
                raise InvocationError(response)
            return response

    def _ended(self) -> str:
        """How its process ended: `status N` or `signal NAME` (`still running` if it has not within 5 s)."""
        try:
            code = self._process.wait(timeout=STOP_TIMEOUT_S) if self._process is not None else None
        except subprocess.TimeoutExpired:
            return "still running"
        return f"status {code}" if code is None or code >= 0 else f"signal {signal.Signals(-code).name}"

    def _restart(self) -> None:
        self._kill()
        self.start()
        self.wait_ready()

    def _kill(self) -> None:
        """Stop its process at once (SIGKILL) and reap it."""
        with self._process_lock:
            connection, process, self._connection, self._process = self._connection, self._process, None, None
        if connection is not None:
            connection.close()
        if process is not None:
            with suppress(ProcessLookupError):
                process.kill()
            process.wait()

    def close(self) -> None:
        """Stop its process: asked to (it exits once loaded, within 5 s, or is killed) when no invocation runs,
        killed at once when one does (that invocation then fails). No invocation starts after."""
        with self._process_lock:
            self._closed = True
        if self._lock.acquire(blocking=False):
            try:
                if self._connection is not None:
                    with suppress(OSError):
                        self._connection.send(None)
                if self._process is not None:
                    with suppress(subprocess.TimeoutExpired):
                        self._process.wait(timeout=STOP_TIMEOUT_S)
            finally:
                self._lock.release()
        self._kill()


@contextmanager
def function_environments(
    count: int, function: str, strategy: str, env: dict[str, str]
) -> Iterator[list[FunctionEnvironment]]:
    """`count` execution environments of `function`, loaded (in parallel) and ready; all stopped at the end,
    however it ends.

    Raises:
        RuntimeError: one of them failed to load (`FunctionEnvironment.wait_ready`).
    """
    environments = [FunctionEnvironment(function, strategy, env) for _ in range(count)]
    try:
        for environment in environments:
            environment.start()
        for environment in environments:
            environment.wait_ready()
        yield environments
    finally:
        for environment in environments:
            environment.close()


def total_units(environments: Sequence[FunctionEnvironment]) -> Counter[str]:
    """The AWS units of every invocation of `environments` that returned."""
    return sum((environment.units for environment in environments), Counter())


def _serve(connection: Connection, function: str, strategy: str) -> None:
    """The worker: load the handler once, then run invocations until told to stop or the bench is gone."""
    meter = ClientMeter()
    warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)
    with metering(meter):
        try:
            module = load_handler_module(function)
            if function == "deliver" and strategy == "peer":
                from hubspot_destination.hubspot.pacing import Pacer

                module._client().pacer = Pacer(None)  # no pacing: as fast as the calls in flight allow
        except BaseException:
            connection.send(("failed", traceback.format_exc()))
            return
        connection.send(("ready", os.getpid()))
        while True:
            try:
                message = connection.recv()
            except (EOFError, OSError):
                return  # the bench is gone
            if message is None:
                return
            event, remaining_s, request_id = message
            context = LambdaContext(f"{function.capitalize()}Function", remaining_s, aws_request_id=request_id)
            units_before, counting_before = meter.usage.units.copy(), meter.counting_cpu_s()
            sqs_before = meter.thread_sqs_s()
            cpu_before = time.process_time()
            try:
                outcome, response = "ok", module.lambda_handler(event, context)
            except Exception:
                outcome, response = "raised", traceback.format_exc()
            cpu_s = time.process_time() - cpu_before - (meter.counting_cpu_s() - counting_before)
            sqs_s = meter.thread_sqs_s() - sqs_before  # the handler's own thread (ingest sends from it)
            connection.send((outcome, response, cpu_s, sqs_s, dict(meter.usage.units - units_before)))


def main(argv: list[str] | None = None) -> None:
    """`python -m hubspot_local.function_worker --fd N --function deliver|ingest --strategy ours|peer`
    (started by `FunctionEnvironment`)."""
    parser = argparse.ArgumentParser(prog="hubspot_local.function_worker")
    parser.add_argument("--fd", type=int, required=True, help="this end of the socketpair")
    parser.add_argument("--function", choices=FUNCTIONS, required=True)
    parser.add_argument("--strategy", choices=STRATEGIES, default="ours")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the bench stops its workers
    connection = Connection(args.fd)
    try:
        _serve(connection, args.function, args.strategy)
    finally:
        connection.close()


if __name__ == "__main__":
    main()

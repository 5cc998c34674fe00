"""`hubspot-destination bench`: throughput of the whole local pipeline at a HubSpot tier's rate limit.

Ingest requests (1,000 profiles each, as AEP sends them) go one after another, from this thread, to the
ingest function, while the event source mapping drains the queue with the template's `MaximumConcurrency`:
one deliver execution environment per concurrent invocation, each with its own HubSpot client pacing itself
to its share of the budget, against the emulator (threads of this process) enforcing the tier's limits in
real time and answering after a seeded lognormal time (`latency_ms`, its median for a 100-input upsert: an
assumption, docs/emulator.md). Each function's execution environment is a process of its own
(`function_worker.py`: one ingest, `MaximumConcurrency` deliver), as in Lambda, and so are the AWS stand-ins
(`stand_ins.py`): SQS and Secrets Manager are moto's server, DynamoDB dynalite or moto's server; the
functions reach them through botocore's service endpoints, as they would reach AWS. So the functions'
interpreters do the functions' work only, and this one the stand-ins' (the API Gateway stand-in, the
mapping, the emulator: `harness.stand_ins_share_fairly`). Delivery starts with the first request, so the
queue stays shallow (moto's SQS costs O(queue depth) per call).

AWS calls are counted (`usage.ClientMeter`) where they are made: here (the mapping's), and in each function
worker, which returns its units, its CPU time and its time in SQS calls with each invocation's result.

`strategy="peer"` runs what integrations without pacing do, on the same input and emulator: the same
pipeline with the pacer off, so each invocation sends its batches of 100 as fast as its calls in flight
allow, and a 429 is waited out (`Retry-After`, else the window the rate-limit headers name: 10 s, what
HubSpot's Node SDK waits) and sent again.
"""

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from hubspot_local.emulator import PRODUCT_SCOPES, FaultConfig, HubSpotEmulator
from hubspot_local.emulator.faults import Latency
from hubspot_local.emulator.ratelimit import TIERS
from hubspot_local.event_source_mapping import EventSourceMapping
from hubspot_local.function_worker import function_environments, invocations_cpu_s, total_units
from hubspot_local.harness import environment, feed_and_drain, percentile, stand_ins_share_fairly
from hubspot_local.pipeline import DEPLOYED, EMULATOR_TOKEN, LocalPipeline
from hubspot_local.stand_ins import StandIn, dynalite, moto_server
from hubspot_local.usage import Bill, ClientMeter, metering

MAX_CONCURRENCY = DEPLOYED.max_concurrency  # template.yaml: DeliverMaximumConcurrency's default
PROFILES_PER_REQUEST = 1000
MAX_PROFILES = 1_000_000  # about 0.4 KB of request body each, all built before the run starts
HUBSPOT_LATENCY_MS = 400.0  # median answer time of a 100-input upsert: an assumption (docs/emulator.md)
UPSERT_PATH = "/crm/v3/objects/contacts/batch/upsert"
# HubSpot's burst window: a run shorter than one is measured over one, so a burst is not read as a rate.
WINDOW_S = 10.0
AUDIENCES = {"bench-high-value": "High Value Customers", "bench-newsletter": "Newsletter Subscribers"}
PROGRESS_INTERVAL_S = 5.0


@dataclass
class BenchResult:
    """What `bench` prints (README, "Throughput: bench").

    `seconds`: wall time from the first ingest request to the last deliver invocation's end.
    `contacts_per_second`: profiles ÷ `seconds`. `hubspot_requests`: every request the emulator received.
    `contacts_per_request`: inputs per accepted `batch/upsert` (2xx). `throttled_requests`: 429 answers.
    `limit_utilization`: requests per 10 s the emulator counted against the limit (429s excluded) from the
    first HubSpot request to 10 s after the last (n requests in the span + 10 s: the last request's window
    counts too, so a run that sends in bursts is not credited with the idle end of its last window, and a
    run without 429s is at most 1) ÷ the tier's burst limit.
    `ingest_ms_p50`/`_p99`: wall time of each 1,000-profile ingest request, in ms; `ingest_sqs_ms_p50`/`_p99`:
    the part of it spent in SQS calls (`SendMessageBatch`, client side and moto's server's answer).
    `ingest_ms_empty_queue`: the first request, sent into an empty queue before delivery starts.
    `contacts_written`, `dead_letters`, `still_queued` and `lost` account for every profile (see
    `accounting.Accounting`). Where the time went, in seconds: `deliver_busy_s` (deliver invocations' wall
    time, all environments together); CPU seconds during the run of `bench_process_cpu_s` (this process:
    the API Gateway and mapping stand-ins, the emulator), `moto_server_cpu_s` and `dynalite_cpu_s` (None:
    not measurable here, `/proc` being Linux's, or no dynalite). `cpu_ms_per_contact`: CPU time of the
    functions alone per profile, in ms, the sum of `ingest_cpu_ms_per_contact` and
    `deliver_cpu_ms_per_contact`: their invocations' (every thread of their worker process), the counting
    of their AWS calls left out. `sqs_requests`,
    `dynamodb_read_units`, `dynamodb_write_units`: the AWS units counted (`usage.AwsUsage`), and
    `cost_per_million_usd` what the run would cost on AWS per million profiles (`usage.Bill`).
    `hubspot_latency_ms`: the emulator's median answer time for a 100-input upsert (0: none).
    `timeline`: `(seconds since the first request, status, inputs)` of every HubSpot request, for the plot.
    `processes`: the ids of the run's processes by role (`bench`, `deliver` and `ingest`: every worker they ran,
    `moto_server`, `dynalite`), all of them gone once `run_bench` returns but `bench`.
    """

    profiles: int
    tier: str
    seconds: float
    contacts_per_second: float
    hubspot_requests: int
    contacts_per_request: float
    throttled_requests: int
    limit_utilization: float
    ingest_ms_p50: float
    ingest_ms_p99: float
    ingest_sqs_ms_p50: float
    ingest_sqs_ms_p99: float
    ingest_ms_empty_queue: float
    deliver_invocations: int
    contacts_written: int
    dead_letters: int
    still_queued: int
    lost: int
    deliver_busy_s: float
    bench_process_cpu_s: float
    moto_server_cpu_s: float | None
    dynalite_cpu_s: float | None
    cpu_ms_per_contact: float
    ingest_cpu_ms_per_contact: float
    deliver_cpu_ms_per_contact: float
    sqs_requests: float
    dynamodb_read_units: int
    dynamodb_write_units: int
    cost_per_million_usd: float
    hubspot_latency_ms: float
    timeline: list[tuple[float, int | None, int | None]] = field(default_factory=list)
    processes: dict[str, list[int]] = field(default_factory=dict)

    @property
    def all_settled(self) -> bool:
        """Every profile was written or dead-lettered: none lost, none left on the queue."""
        return not self.still_queued and not self.lost

    def as_dict(self) -> dict:
        """The `--json` object (without `timeline` and `processes`)."""
        figures = asdict(self)
        del figures["timeline"], figures["processes"]
        return figures


def request_bodies(profiles: int, per_request: int = PROFILES_PER_REQUEST) -> list[bytes]:
    """AEP profile exports of `per_request` profiles each (the last one shorter), `profiles` in all: one
    contact each, three attributes and two audience memberships."""
    bodies = []
    for start in range(0, profiles, per_request):
        batch = [
            {
                "identityMap": {"email": [{"id": f"bench.user{i}@example.com"}]},
                "attributes": {
                    "firstname": {"value": f"First{i}"},
                    "lastname": {"value": f"Last{i}"},
                    "city": {"value": "Lisbon"},
                },
                "segmentMembership": {
                    "ups": {
                        audience_id: {
                            "status": "realized" if (i + n) % 3 else "exited",
                            "lastQualificationTime": "2025-03-04T10:15:22Z",
                            "name": name,
                        }
                        for n, (audience_id, name) in enumerate(AUDIENCES.items())
                    }
                },
            }
            for i in range(start, min(start + per_request, profiles))
        ]
        bodies.append(json.dumps({"profiles": batch}).encode())
    return bodies


@contextlib.contextmanager
def _progress(emulator: HubSpotEmulator, label: str, show: bool) -> Iterator[None]:
    """Every 5 s, one line on stderr: contacts written, HubSpot requests and 429s so far, elapsed seconds."""
    stopped, started = threading.Event(), time.monotonic()

    def report() -> None:
        while not stopped.wait(PROGRESS_INTERVAL_S):
            requests = list(emulator.requests)
            written = sum(r["inputs"] or 0 for r in requests if r["path"] == UPSERT_PATH and (r["status"] or 0) < 300)
            throttled = sum(1 for r in requests if r["status"] == 429)
            elapsed = time.monotonic() - started
            print(
                f"bench {label}: {written} written, {len(requests)} requests, {throttled} 429s, {elapsed:.0f} s",
                file=sys.stderr,
            )

    reporter = threading.Thread(target=report, name="bench-progress", daemon=True)
    if show:
        reporter.start()
    try:
        yield
    finally:
        stopped.set()
        if show:
            reporter.join()


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While active, SIGTERM and SIGINT interrupt the run as Ctrl-C does (in the main thread), so that the run's
    processes are stopped on the way out, also when the shell that started the bench in the background made it
    ignore SIGINT; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _cpu_used(stand_in: StandIn | None, before: float | None) -> float | None:
    """CPU seconds `stand_in` used since it had used `before`; None when not measurable (or no stand-in)."""
    now = stand_in.cpu_s() if stand_in is not None else None
    return round(now - before, 1) if now is not None and before is not None else None


def run_bench(
    profiles: int = 20_000,
    tier: str = "professional",
    latency_ms: float = HUBSPOT_LATENCY_MS,
    *,
    dynamodb: str = "moto",
    strategy: str = "ours",
    progress: bool = False,
) -> BenchResult:
    """Run the benchmark once and return its figures. Every process it starts is stopped before it returns
    or raises (SIGTERM included: it raises KeyboardInterrupt then).

    Args:
        latency_ms: the emulator's median answer time for a 100-input upsert, in ms (0: answers at once).
        dynamodb: `dynalite` (a process of its own; `make bench` installs it) or `moto` (in moto's server).
        strategy: `ours`, or `peer` (no pacing; module doc).
        progress: report on stderr every 5 s.

    Raises:
        ValueError: an unknown tier, strategy or DynamoDB, or fewer than one profile.
        FileNotFoundError: dynalite is asked for and not installed.
        RuntimeError: a stand-in or a deliver execution environment did not start.
    """
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}; expected one of {', '.join(TIERS)}")
    if not 1 <= profiles <= MAX_PROFILES:
        raise ValueError(f"--profiles must be 1 to {MAX_PROFILES:,} (the request bodies are built before the run)")
    if strategy not in ("ours", "peer") or dynamodb not in ("dynalite", "moto"):
        raise ValueError(f"unknown strategy {strategy!r} or DynamoDB {dynamodb!r}")
    burst_limit = TIERS[tier][0]
    bodies = request_bodies(profiles)
    ingest_ms: list[float] = []
    ingest_sqs_ms: list[float] = []
    ingest_cpu_s: list[float] = []
    faults = FaultConfig(seed=1, latency=Latency(median_ms=latency_ms)) if latency_ms else None
    with contextlib.ExitStack() as stack:
        stack.enter_context(_sigterm_interrupts())
        output = stack.enter_context(open(os.devnull, "w"))
        stack.enter_context(stand_ins_share_fairly())
        meter = stack.enter_context(metering(ClientMeter()))  # this process's calls: ingest's, the mapping's
        aws = stack.enter_context(moto_server())
        dynalite_server = stack.enter_context(dynalite()) if dynamodb == "dynalite" else None
        stack.enter_context(
            environment(HUBSPOT_REQUESTS_PER_10S=str(burst_limit), MAX_CONCURRENCY=str(MAX_CONCURRENCY))
        )
        emulator = stack.enter_context(
            HubSpotEmulator(tokens={EMULATOR_TOKEN: PRODUCT_SCOPES}, tier=tier, faults=faults)
        )
        pipeline = stack.enter_context(
            LocalPipeline(
                emulator=emulator,
                handler_output=output,
                dynamodb_url=dynalite_server.url if dynalite_server is not None else None,
                aws_url=aws.url,
            )
        )
        # Started once the pipeline has set the functions' environment (the handler reads it at load).
        environments = stack.enter_context(
            function_environments(MAX_CONCURRENCY, "deliver", strategy, dict(os.environ))
        )
        [ingest_function] = stack.enter_context(function_environments(1, "ingest", strategy, dict(os.environ)))
        pipeline.ingest_handler = ingest_function
        usage_before = meter.usage.units.copy()

        mapping = EventSourceMapping(
            pipeline.sqs,
            pipeline.queue_url,
            environments,
            DEPLOYED.batch_size,
            DEPLOYED.timeout_s,
            max_invocations=10 * (profiles // DEPLOYED.batch_size + 10),
            batching_window_s=DEPLOYED.batching_window_s,
            cpu_clock=invocations_cpu_s,
        )

        def stop_workers() -> None:  # an interrupted run: their invocations end at once
            for environment in environments:
                environment.close()

        def ingest(body: bytes) -> None:
            started, sqs_before, cpu_before = time.perf_counter(), ingest_function.sqs_s, ingest_function.cpu_s
            answer = pipeline.ingest(body)
            if answer["status"] != 202 or answer["body"]["rejected"]:
                raise RuntimeError(f"ingest refused bench profiles: {answer}")
            ingest_ms.append((time.perf_counter() - started) * 1000)
            ingest_sqs_ms.append((ingest_function.sqs_s - sqs_before) * 1000)
            ingest_cpu_s.append(ingest_function.cpu_s - cpu_before)

        with _progress(emulator, strategy, progress):
            moto_cpu_before = aws.cpu_s()
            dynalite_cpu_before = dynalite_server.cpu_s() if dynalite_server is not None else None
            bench_cpu_before = time.process_time()
            started = time.monotonic()
            ingest(bodies[0])
            stats = feed_and_drain(mapping, lambda: [ingest(body) for body in bodies[1:]], output, abort=stop_workers)
            bench_cpu_s = time.process_time() - bench_cpu_before
            moto_cpu_s = _cpu_used(aws, moto_cpu_before)
            dynalite_cpu_s = _cpu_used(dynalite_server, dynalite_cpu_before)
        cpu_s = sum(ingest_cpu_s) + stats.handler_cpu_s
        units = meter.usage.units - usage_before + total_units([*environments, ingest_function])
        requests = list(emulator.requests)
        accounting = pipeline.accounting()
        processes = {
            "bench": [os.getpid()],
            "deliver": [pid for environment in environments for pid in environment.pids],
            "ingest": list(ingest_function.pids),
            "moto_server": [aws.pid],
            "dynalite": [dynalite_server.pid] if dynalite_server is not None else [],
        }
    bill = Bill(
        lambda_gb_seconds=stats.invocation_seconds * DEPLOYED.deliver_memory_mb / 1024
        + sum(ingest_ms) / 1000 * DEPLOYED.ingest_memory_mb / 1024,
        lambda_requests=stats.invocations + len(bodies),
        api_gateway_requests=len(bodies),
        units=units,
    )
    first_at = requests[0]["at"] if requests else 0.0
    upserts = [r for r in requests if r["path"] == UPSERT_PATH and r["status"] is not None and r["status"] < 300]
    counted = [r for r in requests if r["status"] != 429]
    span_s = counted[-1]["at"] - counted[0]["at"] if len(counted) > 1 else 0.0
    seconds = stats.last_invocation_end_at - started
    return BenchResult(
        profiles=profiles,
        tier=tier,
        seconds=round(seconds, 2),
        contacts_per_second=round(profiles / seconds, 1),
        hubspot_requests=len(requests),
        contacts_per_request=round(sum(r["inputs"] for r in upserts) / max(len(upserts), 1), 1),
        throttled_requests=sum(1 for r in requests if r["status"] == 429),
        limit_utilization=round((len(counted) - 1) * 10 / max(span_s, WINDOW_S) / burst_limit, 3) if span_s else 0.0,
        ingest_ms_p50=round(percentile(ingest_ms, 0.5), 1),
        ingest_ms_p99=round(percentile(ingest_ms, 0.99), 1),
        ingest_sqs_ms_p50=round(percentile(ingest_sqs_ms, 0.5), 1),
        ingest_sqs_ms_p99=round(percentile(ingest_sqs_ms, 0.99), 1),
        ingest_ms_empty_queue=round(ingest_ms[0], 1),
        deliver_invocations=stats.invocations,
        contacts_written=len(accounting.written),
        dead_letters=len(accounting.dead_lettered),
        still_queued=len(accounting.queued),
        lost=len(accounting.lost),
        deliver_busy_s=round(stats.invocation_seconds, 1),
        bench_process_cpu_s=round(bench_cpu_s, 1),
        moto_server_cpu_s=moto_cpu_s,
        dynalite_cpu_s=dynalite_cpu_s,
        cpu_ms_per_contact=round(cpu_s * 1000 / profiles, 3),
        ingest_cpu_ms_per_contact=round(sum(ingest_cpu_s) * 1000 / profiles, 3),
        deliver_cpu_ms_per_contact=round(stats.handler_cpu_s * 1000 / profiles, 3),
        sqs_requests=round(units["sqs_requests"], 1),
        dynamodb_read_units=units["dynamodb_read_units"],
        dynamodb_write_units=units["dynamodb_write_units"],
        cost_per_million_usd=round(bill.usd() * 1e6 / profiles, 2),
        hubspot_latency_ms=latency_ms,
        timeline=[(r["at"] - first_at, r["status"], r["inputs"]) for r in requests],
        processes=processes,
    )


def compare(
    profiles: int, tier: str, latency_ms: float, *, dynamodb: str = "moto", progress: bool = False
) -> tuple[BenchResult, BenchResult]:
    """Run the bench with our strategy, then the peer's on the same input and emulator: `(ours, peer)`."""
    ours = run_bench(profiles, tier, latency_ms, dynamodb=dynamodb, progress=progress)
    peer = run_bench(profiles, tier, latency_ms, dynamodb=dynamodb, strategy="peer", progress=progress)
    return ours, peer

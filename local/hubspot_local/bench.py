"""`hubspot-destination bench`: throughput of the whole local pipeline at a HubSpot tier's rate limit.

Ingest (1,000-profile requests, as AEP sends them) runs in this thread while the event source mapping drains
the queue with the template's `MaximumConcurrency` (one deliver execution environment per concurrent
invocation, each pacing itself to its share of the budget), against the emulator enforcing the tier's
limits in real time. Delivery starts with the first request, so the queue stays shallow (moto's SQS costs
O(queue depth) per call; see `load`). The interpreter shares its time among the functions as separate
execution environments would (`load.functions_share_fairly`), so ingest latency is not that of a thread
starved by its neighbours.
"""

import json
import os
import time
from dataclasses import asdict, dataclass

from hubspot_local.emulator import PRODUCT_SCOPES, HubSpotEmulator
from hubspot_local.emulator.ratelimit import TIERS
from hubspot_local.event_source_mapping import EventSourceMapping
from hubspot_local.harness import (
    environment,
    feed_and_drain,
    functions_share_fairly,
    load_deliver_environments,
    percentile,
    thread_safe_moto,
)
from hubspot_local.pipeline import DEPLOYED, EMULATOR_TOKEN, LocalPipeline

# template.yaml: DeliverMaximumConcurrency's default and the mapping's MaximumBatchingWindowInSeconds.
MAX_CONCURRENCY = 2
PROFILES_PER_REQUEST = 1000
UPSERT_PATH = "/crm/v3/objects/contacts/batch/upsert"
AUDIENCES = {"bench-high-value": "High Value Customers", "bench-newsletter": "Newsletter Subscribers"}


class RequestClock:
    """The emulator's clock (`time.monotonic`), remembering when it was first and last read once `start`
    was called: its rate limiter reads the clock for every request it counts, so these are the times of the
    first and the last HubSpot request."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last: float | None = None
        self._started = False

    def start(self) -> None:
        """Begin recording (the emulator reads the clock once when it is built)."""
        self._started = True

    def __call__(self) -> float:
        now = time.monotonic()
        if self._started:
            self.first = self.first or now
            self.last = now
        return now


@dataclass
class BenchResult:
    """What `bench` prints.

    `seconds`: wall time from the first ingest request to the last deliver invocation's end.
    `contacts_per_second`: profiles ÷ `seconds`. `hubspot_requests`: every request the emulator received.
    `contacts_per_request`: inputs per accepted `batch/upsert` (2xx). `throttled_requests`: 429 answers.
    `limit_utilization`: requests per 10 s the emulator counted against the limit (429s excluded) from the
    first HubSpot request to the last (n requests, n - 1 intervals) ÷ the tier's burst limit.
    `ingest_ms_p50`/`_p99`: wall time of each 1,000-profile ingest request, in ms; `ingest_sqs_ms_p50`/`_p99`:
    the part of it spent in moto's SQS (SendMessageBatch, waiting for the delivery threads' moto calls
    included). `ingest_ms_empty_queue`: the first request, sent into an empty queue before delivery starts.
    `contacts_written`, `dead_letters`, `still_queued` and `lost` account for every profile (see
    `accounting.Accounting`: written means its contact was written during the run). Where the time went, in
    seconds: `deliver_busy_s` (deliver invocations' wall time, all environments together), and
    `moto_dynamodb_s` / `moto_sqs_s` (moto's own work in DynamoDB, all of it the deliver function's contact
    versions, and in SQS, ingest included).
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
    moto_dynamodb_s: float
    moto_sqs_s: float

    @property
    def all_settled(self) -> bool:
        """Every profile was written or dead-lettered: none lost, none left on the queue."""
        return not self.still_queued and not self.lost

    def as_dict(self) -> dict:
        """The `--json` object."""
        return asdict(self)


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


def run_bench(profiles: int = 20_000, tier: str = "professional", concurrency: int = MAX_CONCURRENCY) -> BenchResult:
    """Run the benchmark and return its figures.

    Raises:
        ValueError: an unknown tier, or fewer than one profile.
    """
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}; expected one of {', '.join(TIERS)}")
    if profiles < 1:
        raise ValueError("--profiles must be at least 1")
    burst_limit = TIERS[tier][0]
    bodies = request_bodies(profiles)
    ingest_ms: list[float] = []
    ingest_sqs_ms: list[float] = []
    clock = RequestClock()
    with (
        open(os.devnull, "w") as output,
        thread_safe_moto() as moto_timer,
        functions_share_fairly(),
        environment(HUBSPOT_REQUESTS_PER_10S=str(burst_limit), MAX_CONCURRENCY=str(concurrency)),
        HubSpotEmulator(tokens={EMULATOR_TOKEN: PRODUCT_SCOPES}, tier=tier, clock=clock) as emulator,
        LocalPipeline(emulator=emulator, handler_output=output) as pipeline,
    ):
        handlers = [module.lambda_handler for module in load_deliver_environments(concurrency, output)]
        clock.start()
        mapping = EventSourceMapping(
            pipeline.sqs,
            pipeline.queue_url,
            handlers,
            DEPLOYED.batch_size,
            DEPLOYED.timeout_s,
            max_invocations=10 * (profiles // DEPLOYED.batch_size + 10),
            batching_window_s=DEPLOYED.batching_window_s,
        )

        def ingest(body: bytes) -> None:
            started, moto_before = time.perf_counter(), moto_timer.seconds()
            answer = pipeline.ingest(body)
            if answer["status"] != 202 or answer["body"]["rejected"]:
                raise RuntimeError(f"ingest refused bench profiles: {answer}")
            ingest_ms.append((time.perf_counter() - started) * 1000)
            ingest_sqs_ms.append((moto_timer.seconds() - moto_before) * 1000)

        started = time.monotonic()
        ingest(bodies[0])
        stats = feed_and_drain(mapping, lambda: [ingest(body) for body in bodies[1:]], output)
        snapshot = emulator.snapshot()
        accounting = pipeline.accounting()
    requests = snapshot["requests"]
    upserts = [r for r in requests if r["path"] == UPSERT_PATH and r["status"] is not None and r["status"] < 300]
    accepted = [r for r in requests if r["status"] != 429]
    span_s = (clock.last - clock.first) if len(accepted) > 1 else 0.0
    utilization = (len(accepted) - 1) * 10 / span_s / burst_limit if span_s else 0.0
    seconds = stats.last_invocation_end_at - started
    return BenchResult(
        profiles=profiles,
        tier=tier,
        seconds=round(seconds, 2),
        contacts_per_second=round(profiles / seconds, 1),
        hubspot_requests=len(requests),
        contacts_per_request=round(sum(r["inputs"] for r in upserts) / max(len(upserts), 1), 1),
        throttled_requests=sum(1 for r in requests if r["status"] == 429),
        limit_utilization=round(utilization, 3),
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
        moto_dynamodb_s=round(moto_timer.service_seconds("dynamodb"), 1),
        moto_sqs_s=round(moto_timer.service_seconds("sqs"), 1),
    )

"""`hubspot-destination serve`: the webhook on loopback HTTP, with the whole pipeline behind it, until stopped.

The ingest handler answers behind the API Gateway stand-in (`api_gateway`), SQS, DynamoDB and Secrets Manager
run in-process (`LocalPipeline`, moto), and the event source mapping stand-in drains the queue into the
deliver handler in a background thread for as long as the server runs, against the HubSpot emulator or a real
portal. When it stops, the accounting of `replay` (`LocalPipeline.accounting`) says where every profile sent
to it went.
"""

import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from hubspot_local.accounting import Accounting
from hubspot_local.api_gateway import ApiGateway
from hubspot_local.event_source_mapping import EventSourceMapping, QueueDepth
from hubspot_local.harness import feed_and_drain
from hubspot_local.pipeline import DEPLOYED, EMULATOR_TOKEN, LocalPipeline


@dataclass(frozen=True)
class ServeResult:
    """What a `serve` run did: `requests` handed to the ingest handler, deliver `invocations`, what was
    `left_on_queue` when delivery stopped (messages by state), and the `accounting` of every profile sent."""

    requests: int
    invocations: int
    left_on_queue: QueueDepth
    accounting: Accounting

    @property
    def ok(self) -> bool:
        """Every profile ingest accepted was written."""
        return self.accounting.all_written


def serve(
    ready: Callable[[dict], None],
    wait: Callable[[], None],
    *,
    port: int = 0,
    hubspot_url: str | None = None,
    portal: dict | None = None,
    handler_output: TextIO,
) -> ServeResult:
    """Serve the webhook until `wait` returns, then stop delivery and account for every profile.

    Args:
        ready: called once the server listens, with `{"api_url", "bearer_token", "hubspot_url",
            "hubspot_token"}`: the base URL of the routes (`{api_url}/v1/activations`), the bearer key set in
            the webhook secret for this run, HubSpot's base URL and the emulator's token (None for a real
            portal, whose token is the caller's).
        wait: blocks for as long as the server should run.
        port: the port on 127.0.0.1; 0 for a free one.
        hubspot_url: a real HubSpot to write to (token from `HUBSPOT_ACCESS_TOKEN`) instead of the emulator.
        portal: the emulator's pre-load (`--portal FILE`).
        handler_output: where the handlers' logs and metrics go, and stdout while the server runs.

    Raises:
        ValueError: a real portal without `HUBSPOT_ACCESS_TOKEN`, or one that refused the token or could not
            be reached (checked before the server listens).
        OSError: the port cannot be bound.
    """
    with LocalPipeline(hubspot_url=hubspot_url, portal=portal, handler_output=handler_output) as pipeline:
        if hubspot_url:
            pipeline.check_hubspot()
        bearer_token = secrets.token_urlsafe(32)
        pipeline.set_sender_credentials(bearer_tokens=[bearer_token], signing_secrets=[])
        mapping = EventSourceMapping(
            pipeline.sqs,
            pipeline.queue_url,
            pipeline.deliver_module.lambda_handler,
            DEPLOYED.batch_size,
            DEPLOYED.timeout_s,
            max_invocations=sys.maxsize,  # it runs until stopped
            batching_window_s=DEPLOYED.batching_window_s,
        )
        gateway = ApiGateway(pipeline.invoke_ingest, port=port)

        def run() -> None:
            try:
                with gateway:
                    ready(
                        {
                            "api_url": gateway.base_url,
                            "bearer_token": bearer_token,
                            "hubspot_url": pipeline.base_url,
                            "hubspot_token": None if hubspot_url else EMULATOR_TOKEN,
                        }
                    )
                    wait()
            finally:
                mapping.stop()  # also when `wait` is interrupted: the drain thread must end

        stats = feed_and_drain(mapping, run, handler_output)
        return ServeResult(gateway.requests, stats.invocations, stats.left_on_queue, pipeline.accounting())

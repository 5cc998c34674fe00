"""What the threads of one execution environment share when several HubSpot requests are in flight at once.

Powertools' `Metrics.add_metric` is not thread-safe (it reads, changes and stores back the metric's entry,
and flushes at 100 values), so the adapter's threads add their metrics through one lock. The pipeline adds
its own from the invocation's thread while no HubSpot request is in flight.
"""

import threading

from aws_lambda_powertools.metrics import MetricUnit

from hubspot_destination.observability import metrics

_lock = threading.Lock()


def add_metric(name: str, unit: MetricUnit, value: float) -> None:
    """`metrics.add_metric`, one thread at a time."""
    with _lock:
        metrics.add_metric(name=name, unit=unit, value=value)

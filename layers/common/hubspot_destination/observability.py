"""The one place where the functions' Logger, Metrics and Tracer are created (Powertools).

Service name, namespace and log level come from POWERTOOLS_SERVICE_NAME,
POWERTOOLS_METRICS_NAMESPACE and POWERTOOLS_LOG_LEVEL. Raw emails and tokens are never logged:
log `email_hash(email)` instead.

The Tracer (X-Ray, the functions run with `Tracing: Active`) patches botocore when it starts in Lambda, so every
SQS, DynamoDB and Secrets Manager call is a subsegment of the invocation's trace, and the HubSpot client adds one
per request attempt; outside Lambda (tests, the local tools) it does nothing. Annotations carry counts, never
personal data.
"""

import hashlib
import os
import threading
from numbers import Number
from typing import cast

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "hubspot-destination"
NAMESPACE = "HubSpotDestination"

# The template sets the POWERTOOLS_* variables; the defaults keep local runs and tests valid too.
logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE))
metrics = Metrics(
    service=os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE),
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE),
)
# Powertools' `Metrics.add_metric` is not thread-safe (it reads, changes and stores back the metric's entry, and
# flushes at 100 values): the deliver function adds metrics from several threads (groups of contacts delivered
# at once, HubSpot requests in flight), always under this lock.
metrics_lock = threading.Lock()
# botocore: SQS, DynamoDB and Secrets Manager. X-Ray's http.client patch misses urllib3 2 (it overrides the calls
# the patch wraps), so the HubSpot client records its requests itself (hubspot/client.py).
tracer = Tracer(service=os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE), patch_modules=["botocore"])


def email_hash(email: str) -> str:
    """Return a short, stable SHA-256 prefix (16 hex characters) of a normalised email, for logs."""
    return hashlib.sha256(email.encode()).hexdigest()[:16]


def annotation(value: int) -> Number:
    """An int as the `numbers.Number` X-Ray annotations are typed with (mypy does not see the numeric tower)."""
    return cast(Number, value)

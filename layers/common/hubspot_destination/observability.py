"""The one place where the functions' Logger and Metrics are created (Powertools).

Service name, namespace and log level come from POWERTOOLS_SERVICE_NAME,
POWERTOOLS_METRICS_NAMESPACE and POWERTOOLS_LOG_LEVEL. Raw emails and tokens are never logged:
log `email_hash(email)` instead.
"""

import hashlib
import os

from aws_lambda_powertools import Logger, Metrics

SERVICE = "hubspot-destination"
NAMESPACE = "HubSpotDestination"

# The template sets the POWERTOOLS_* variables; the defaults keep local runs and tests valid too.
logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE))
metrics = Metrics(
    service=os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE),
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE),
)


def email_hash(email: str) -> str:
    """Return a short, stable SHA-256 prefix (16 hex characters) of a normalised email, for logs."""
    return hashlib.sha256(email.encode()).hexdigest()[:16]

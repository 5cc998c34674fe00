"""The one place where the functions' Logger and Metrics are created (Powertools).

Service name, namespace and log level come from POWERTOOLS_SERVICE_NAME,
POWERTOOLS_METRICS_NAMESPACE and POWERTOOLS_LOG_LEVEL. Raw emails and tokens are never logged:
log `email_hash(email)` instead.
"""

import hashlib

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics()


def email_hash(email: str) -> str:
    """Return a short, stable SHA-256 prefix (16 hex characters) of a normalised email, for logs."""
    return hashlib.sha256(email.encode()).hexdigest()[:16]

"""HubSpot faults → verdicts, as one table: back-pressure is requeued (never dead-lettered, never counting an
attempt), transient faults are retried with attempt + 1 (hubspot-api.md §1.8, §3.3).

| fault                                   | verdict   | reason                     | delay (s)                |
|-----------------------------------------|-----------|----------------------------|--------------------------|
| 429 `DAILY`                             | requeue   | `DAILY_LIMIT`              | `daily_requeue_s`        |
| 429 (burst), no time left to wait       | requeue   | `RATE_LIMITED`             | `throttle_requeue_s`     |
| not sent: the invocation's time ran out | requeue   | `TIMEOUT`                  | 0                        |
| 401 (after a fresh token) / 403         | requeue   | `HUBSPOT_AUTH`             | `auth_requeue_s`         |
| an answer that is not HubSpot's         | retry     | `HUBSPOT_MALFORMED_ANSWER` | backoff                  |
| another 4xx (404, 409, ...)             | retry     | `HUBSPOT_ERROR`            | backoff                  |
| 423, 477, 5xx, timeouts, resets         | retry     | `HUBSPOT_UNAVAILABLE`      | backoff                  |

`DAILY_LIMIT` and `HUBSPOT_AUTH` halt the invocation: nothing more is sent to HubSpot (`hubspot.contacts.Halt`).
"""

from aws_lambda_powertools.metrics import MetricUnit

from hubspot_destination.deliver.policy import DeliveryPolicy
from hubspot_destination.domain.reasons import Reason
from hubspot_destination.domain.verdicts import Verdict
from hubspot_destination.hubspot.errors import (
    HubSpotAuthError,
    HubSpotError,
    HubSpotMalformedAnswer,
    HubSpotNoTimeLeft,
    HubSpotRateLimited,
    HubSpotRequestError,
)
from hubspot_destination.observability import logger, metrics, metrics_lock


def fault_verdict(error: HubSpotError, policy: DeliveryPolicy) -> Verdict:
    """The verdict for the profiles a failed HubSpot call carried; call once per fault (it counts metrics)."""
    detail = str(error)
    if isinstance(error, HubSpotRateLimited) and error.policy_name == "DAILY":
        with metrics_lock:
            metrics.add_metric(name="HubSpotDailyLimitReached", unit=MetricUnit.Count, value=1)
        logger.error("HubSpot daily limit reached: pausing", extra={"pause_s": policy.daily_requeue_s})
        return Verdict("requeue", Reason.DAILY_LIMIT, detail, policy.daily_requeue_s)
    if isinstance(error, HubSpotRateLimited):
        return Verdict("requeue", Reason.RATE_LIMITED, detail, policy.throttle_requeue_s)
    if isinstance(error, HubSpotNoTimeLeft):
        return Verdict("requeue", Reason.TIMEOUT, "the invocation ran out of time before sending this contact")
    if isinstance(error, HubSpotAuthError):
        # A configuration fault (revoked token, missing scope) must not empty the queue into the DLQ.
        with metrics_lock:
            metrics.add_metric(name="HubSpotAuthFailures", unit=MetricUnit.Count, value=1)
        logger.error("HubSpot refused the token", extra={"status": error.status, "category": error.category})
        return Verdict("requeue", Reason.HUBSPOT_AUTH, detail, policy.auth_requeue_s)
    if isinstance(error, HubSpotMalformedAnswer):
        logger.warning("HubSpot's answer was not understood", extra={"status": error.status, "error": detail})
        return Verdict("retry", Reason.HUBSPOT_MALFORMED_ANSWER, detail)
    if isinstance(error, HubSpotRequestError):
        return Verdict("retry", Reason.HUBSPOT_ERROR, detail)
    return Verdict("retry", Reason.HUBSPOT_UNAVAILABLE, detail)

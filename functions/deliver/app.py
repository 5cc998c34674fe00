"""DeliverFunction: SQS event source mapping → HubSpot, with a partial batch response.

Thin by design: `hubspot_destination.delivery` decides each profile's fate and
`hubspot_destination.settlement` each record's; this handler wires AWS in (Secrets Manager for the token,
SQS for requeues and dead letters, DynamoDB for contact versions) and reports the records that could not
be settled as batch item failures.
"""

from functools import cache

import boto3
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.config import Config

from hubspot_destination.audiences import AudienceLimits, AudienceProperties, PropertyCatalog
from hubspot_destination.coercion import NumberFormat
from hubspot_destination.delivery import Deliverer, DeliveryPolicy
from hubspot_destination.hubspot.client import HubSpotClient
from hubspot_destination.observability import logger, metrics
from hubspot_destination.ordering import ContactVersions
from hubspot_destination.queue import Outbox
from hubspot_destination.settings import DeliverSettings
from hubspot_destination.settlement import QueueRecord, RetryPolicy, settle_batch

settings = DeliverSettings()
policy = DeliveryPolicy(
    strict=settings.strict_properties,
    number_format=NumberFormat(settings.number_decimal_places, settings.number_thousands_separator),
    throttle_requeue_s=settings.throttle_requeue_seconds,
    daily_requeue_s=settings.daily_limit_requeue_seconds,
    auth_requeue_s=settings.auth_failure_requeue_seconds,
)
retry = RetryPolicy(max_attempts=settings.max_delivery_attempts, base_delay_s=settings.retry_base_delay_seconds)
# A batch where every record is retried is a normal outcome (e.g. throttling), not an invocation error.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class RetryLater(Exception):
    """Raised for a record that SQS must deliver again."""


def _token(refresh: bool = False) -> str:
    """The private-app token from Secrets Manager (cached; fetched again after a 401)."""
    secret = parameters.get_secret(
        settings.hubspot_token_secret_id, max_age=settings.secret_max_age_seconds, force_fetch=refresh
    )
    return str(secret).strip()


@cache
def _sqs():
    return boto3.client("sqs")


@cache
def _versions() -> ContactVersions:
    concurrency = settings.contact_versions_concurrency
    return ContactVersions(
        boto3.client("dynamodb", config=Config(max_pool_connections=concurrency)),
        settings.contact_versions_table,
        settings.contact_lease_seconds,
        settings.contact_versions_ttl_days,
        concurrency=concurrency,
    )


@cache
def _portal() -> tuple[HubSpotClient, PropertyCatalog, AudienceProperties]:
    """The HubSpot adapter and the property caches, kept for the life of the execution environment."""
    client = HubSpotClient(
        _token,
        base_url=str(settings.hubspot_base_url),
        timeout_s=settings.hubspot_timeout_seconds,
        # Each concurrent invocation takes its share of the portal's burst limit (per 10 s).
        requests_per_10s=settings.hubspot_requests_per_10s,
        share=settings.max_concurrency,
    )
    catalog = PropertyCatalog(client, ttl_s=settings.property_cache_seconds)
    limits = AudienceLimits(settings.max_audience_properties, settings.max_audience_properties_created)
    audiences = AudienceProperties(
        client, catalog, settings.audience_property_group, settings.audience_property_group_label, limits
    )
    return client, catalog, audiences


@cache
def _outbox() -> Outbox:
    return Outbox(_sqs(), settings.queue_url, settings.dead_letter_queue_url, settings.max_message_bytes)


@logger.inject_lambda_context
@metrics.log_metrics(raise_on_empty_metrics=False)
def lambda_handler(event: dict, context) -> dict:
    """SQS batch handler; returns `{"batchItemFailures": [{"itemIdentifier": messageId}, ...]}`."""
    client, catalog, audiences = _portal()
    deliverer = Deliverer(client, catalog, audiences, _versions(), context.get_remaining_time_in_millis, policy)
    records = [QueueRecord(r["messageId"], r["body"]) for r in event.get("Records", [])]
    failed = settle_batch(
        records, deliverer, _outbox(), retry, settings.max_profiles_per_message, settings.max_message_bytes
    )

    def record_handler(record: SQSRecord) -> None:
        if record.message_id in failed:
            raise RetryLater("some of its profiles could not be requeued or dead-lettered")

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)

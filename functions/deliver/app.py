"""DeliverFunction: SQS event source mapping → HubSpot, with a partial batch response.

Thin by design: the delivery pipeline (`hubspot_destination.deliver`) decides each profile's fate and
settlement each record's; this module wires the adapters in once per execution environment and reports the
records that could not be settled as batch item failures (`ReportBatchItemFailures`).
"""

from functools import cache

from aws_lambda_powertools.utilities.data_classes import SQSEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from hubspot_destination.aws import dynamodb, sqs
from hubspot_destination.aws.dynamodb import ContactVersions
from hubspot_destination.aws.secrets import read_secret
from hubspot_destination.aws.sqs import Outbox
from hubspot_destination.deliver.pipeline import Delivery
from hubspot_destination.deliver.policy import DeliveryPolicy, RetryPolicy
from hubspot_destination.deliver.settlement import QueueRecord, settle_batch
from hubspot_destination.domain.coercion import NumberFormat
from hubspot_destination.domain.deadline import Deadline
from hubspot_destination.hubspot.client import HubSpotClient
from hubspot_destination.hubspot.contacts import HubSpotContacts
from hubspot_destination.hubspot.properties import AudienceLimits, AudienceProperties, PropertyCatalog
from hubspot_destination.observability import annotation, logger, metrics, tracer
from hubspot_destination.settings import DeliverSettings

settings = DeliverSettings()
policy = DeliveryPolicy(
    strict=settings.strict_properties,
    number_format=NumberFormat(settings.number_decimal_places, settings.number_thousands_separator),
    audience_group=settings.audience_property_group,
    throttle_requeue_s=settings.throttle_requeue_seconds,
    daily_requeue_s=settings.daily_limit_requeue_seconds,
    auth_requeue_s=settings.auth_failure_requeue_seconds,
)
retry = RetryPolicy(max_attempts=settings.max_delivery_attempts, base_delay_s=settings.retry_base_delay_seconds)
# Kept for settling the batch (dead letters, requeues, the partial batch response) after HubSpot, in s.
_SETTLE_RESERVE_S = 5.0


def _token(refresh: bool = False) -> str:
    """The private-app token (cached; fetched again after a 401)."""
    return read_secret(settings.hubspot_token_secret_id, settings.secret_max_age_seconds, refresh)


@cache
def _client() -> HubSpotClient:
    """The HubSpot client, kept for the life of the execution environment (its pacing spans invocations)."""
    return HubSpotClient(
        _token,
        base_url=str(settings.hubspot_base_url),
        timeout_s=settings.hubspot_timeout_seconds,
        # Each concurrent invocation takes its share of the portal's burst limit (per 10 s).
        requests_per_10s=settings.hubspot_requests_per_10s,
        share=settings.max_concurrency,
        daily_pause_s=settings.daily_limit_requeue_seconds,
        in_flight=settings.hubspot_upserts_in_flight,
    )


@cache
def _delivery() -> Delivery:
    """The pipeline and its adapters, kept for the life of the execution environment (caches)."""
    client = _client()
    catalog = PropertyCatalog(client, ttl_s=settings.property_cache_seconds)
    limits = AudienceLimits(settings.max_audience_properties, settings.max_audience_properties_created)
    group, label = settings.audience_property_group, settings.audience_property_group_label
    concurrency = settings.contact_versions_concurrency
    versions = ContactVersions(
        dynamodb.client(max_pool_connections=concurrency),
        settings.contact_versions_table,
        settings.contact_lease_seconds,
        settings.contact_versions_ttl_days,
        concurrency=concurrency,
    )
    audiences = AudienceProperties(client, catalog, group, label, limits)
    in_flight = settings.hubspot_upserts_in_flight
    contacts = HubSpotContacts(client, in_flight=in_flight)
    # Twice as many groups as upserts in flight: while some groups' upserts are out, the next are leased.
    return Delivery(contacts, catalog, audiences, versions, policy, groups_in_flight=2 * in_flight)


@cache
def _outbox() -> Outbox:
    return Outbox(sqs.client(), settings.queue_url, settings.dead_letter_queue_url, settings.max_message_bytes)


@logger.inject_lambda_context
@metrics.log_metrics(raise_on_empty_metrics=False)
@tracer.capture_lambda_handler(capture_response=False)  # the partial batch response holds message ids only
@event_source(data_class=SQSEvent)
def lambda_handler(event: SQSEvent, context: LambdaContext) -> dict:
    """SQS batch handler; returns `{"batchItemFailures": [{"itemIdentifier": messageId}, ...]}`."""
    # No HubSpot request may outlive the invocation: a killed invocation's batch costs a receive.
    deadline = Deadline.after(context.get_remaining_time_in_millis() / 1000 - _SETTLE_RESERVE_S)
    records = [QueueRecord(record.message_id, record.body) for record in event.records]
    tracer.put_annotation(key="records", value=annotation(len(records)))
    failed = settle_batch(
        records, _delivery(), deadline, _outbox(), retry, settings.max_profiles_per_message, settings.max_message_bytes
    )
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in sorted(failed)]}

"""The deliver use case: SQS records → HubSpot contacts, then every record settled (requeued, retried,
dead-lettered or acknowledged)."""

"""The ingest use case: a webhook request authenticated, read, split into per-profile checks and queued."""

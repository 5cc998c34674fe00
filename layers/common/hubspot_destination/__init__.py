"""HubSpot audience activation destination: the code shared by the ingest and deliver Lambda functions.

One module per concern: `models` (request and queue message shapes), `identity` (email rules),
`signature` (sender authentication), `coercion` (values by HubSpot property type), `audiences`
(audience property naming and ensuring), `hubspot.client` (the HubSpot HTTP adapter), `delivery`
(coalesce, batch, reconcile, classify), `queue` (SQS message encoding, chunking, dead letters),
`settings` (environment variables) and `observability` (logger and metrics).
"""

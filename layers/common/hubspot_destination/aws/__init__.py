"""The AWS adapters: SQS (the activation queue and its dead-letter queue), DynamoDB (the contact versions
table) and Secrets Manager (the webhook secret and the HubSpot token). Only these modules create boto3 clients."""

"""The platforms' limits the product relies on, each with its source. Nothing else writes these numbers.

SQS (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html):
the largest message and `SendMessageBatch` payload is 1 MiB; at most 10 entries per batch call; `DelaySeconds`
and a visibility change are at most 900 s (15 min).

HubSpot (docs/reference/hubspot-api.md): batch endpoints take at most 100 inputs (§1.4); internal names are
at most 100 characters (§2.3); labels at most 255 (§2.3); a search page holds at most 200 results and search
takes 5 requests per second per account (§1.9).

Lambda (docs/reference/aws-serverless.md, Lambda `Invoke`): a synchronous invocation's request and response are
at most 6 MB each.

DynamoDB (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html): at most
100 keys per `BatchGetItem` and 25 requests per `BatchWriteItem`; at most 100 actions per `TransactWriteItems`,
whose items may not exceed 4 MB together
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html).
"""

SQS_MAX_MESSAGE_BYTES = 1_048_576
SQS_BATCH_ENTRIES = 10
SQS_MAX_DELAY_S = 900

HUBSPOT_BATCH_INPUTS = 100
HUBSPOT_NAME_MAX = 100
HUBSPOT_LABEL_MAX = 255
HUBSPOT_SEARCH_PAGE_MAX = 200
HUBSPOT_SEARCHES_PER_SECOND = 5

LAMBDA_MAX_PAYLOAD_BYTES = 6_000_000

DYNAMODB_GET_KEYS = 100
DYNAMODB_WRITE_REQUESTS = 25
DYNAMODB_TRANSACTION_ITEMS = 100
DYNAMODB_TRANSACTION_BYTES = 4_000_000  # "4 MB": the smaller reading of it

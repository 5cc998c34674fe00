"""What the bench counts as billable AWS units, and what they cost (`hubspot_local.usage`)."""

import json
from collections import Counter

import pytest

from hubspot_local.usage import PRICES, AwsUsage, Bill


def body(value: dict) -> bytes:
    return json.dumps(value).encode()


def test_dynamodb_units_follow_the_items_read_and_written():
    usage = AwsUsage()
    small = {"contact": {"S": "a" * 64}, "seq": {"N": "1"}}
    large = {"contact": {"S": "b" * 64}, "versions": {"S": "x" * 1500}}
    keys = [{"contact": {"S": f"k{i}"}} for i in range(100)]
    usage.count("DynamoDB_20120810.BatchGetItem", body({"RequestItems": {"t": {"Keys": keys, "ConsistentRead": True}}}))
    usage.count("DynamoDB_20120810.PutItem", body({"TableName": "t", "Item": small}))
    usage.count("DynamoDB_20120810.PutItem", body({"TableName": "t", "Item": large}))  # over 1 KB: 2 units
    writes = [{"PutRequest": {"Item": small}}] * 25
    usage.count("DynamoDB_20120810.BatchWriteItem", body({"RequestItems": {"t": writes}}))
    # A transactional write is twice a plain one, per item (rounded up to the KB first).
    actions = [{"Put": {"TableName": "t", "Item": small, "ConditionExpression": "attribute_not_exists(contact)"}}] * 99
    actions.append({"Put": {"TableName": "t", "Item": large}})
    usage.count("DynamoDB_20120810.TransactWriteItems", body({"TransactItems": actions, "ClientRequestToken": "x"}))
    assert usage.units == Counter({"dynamodb_read_units": 100, "dynamodb_write_units": 1 + 2 + 25 + 2 * (99 + 2)})


def test_sqs_requests_are_billed_per_64_kb_chunk_and_the_mappings_deletes_by_ten():
    usage = AwsUsage()
    usage.count("AmazonSQS.SendMessageBatch", b"x" * (150 * 1024))  # three 64-KB chunks
    usage.count("AmazonSQS.ReceiveMessage", b"{}")
    for _ in range(10):
        usage.count("AmazonSQS.DeleteMessage", b"{}")  # the real mapping sends one DeleteMessageBatch
    usage.count("AmazonSQS.GetQueueAttributes", b"{}")  # the stand-in's own polling: not billed
    usage.count("secretsmanager.GetSecretValue", b"{}")  # not priced (cached by the functions)
    assert usage.units == Counter({"sqs_requests": pytest.approx(3 + 1 + 1)})


def test_a_bill_is_priced_at_the_list_prices():
    units = Counter({"sqs_requests": 10, "dynamodb_read_units": 100, "dynamodb_write_units": 200})
    bill = Bill(lambda_gb_seconds=50.0, lambda_requests=4, api_gateway_requests=2, units=units)
    expected = (
        50 * PRICES["lambda_gb_second"]
        + 4 * PRICES["lambda_request"]
        + 2 * PRICES["api_gateway_request"]
        + 10 * PRICES["sqs_request"]
        + 100 * PRICES["dynamodb_read_unit"]
        + 200 * PRICES["dynamodb_write_unit"]
    )
    assert bill.usd() == pytest.approx(expected)
    assert PRICES["dynamodb_write_unit"] == pytest.approx(0.625e-6)

"""The local stack's TransactWriteItems (local.moto_patches) keeps DynamoDB's documented semantics:
all or nothing, a reason per item when cancelled, one operation per item; only faster than moto's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from local.moto_patches import make_dynamodb_writes_atomic
from tests.support import create_state_table


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    make_dynamodb_writes_atomic(monkeypatch.setattr)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_state_table(client, "state")
        yield client


def newer(pk: str, at: int) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": "state",
            "Key": {"pk": {"S": pk}, "sk": {"S": "s"}},
            "UpdateExpression": "SET #t = :t",
            "ConditionExpression": "attribute_not_exists(#t) OR #t < :t",
            "ExpressionAttributeNames": {"#t": "t"},
            "ExpressionAttributeValues": {":t": {"N": str(at)}},
        }
    }


def stored(client: Any, pk: str) -> int | None:
    item = client.get_item(TableName="state", Key={"pk": {"S": pk}, "sk": {"S": "s"}}).get("Item")
    return int(item["t"]["N"]) if item else None


def test_a_transaction_writes_every_item_or_none(dynamodb: Any) -> None:
    dynamodb.transact_write_items(TransactItems=[newer("a", 5), newer("b", 5)])
    with pytest.raises(ClientError) as refused:
        dynamodb.transact_write_items(TransactItems=[newer("c", 1), newer("a", 3)])
    assert refused.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert [r["Code"] for r in refused.value.response["CancellationReasons"]] == [
        "None",
        "ConditionalCheckFailed",
    ]
    assert (stored(dynamodb, "a"), stored(dynamodb, "b"), stored(dynamodb, "c")) == (5, 5, None)


def test_one_item_twice_in_a_transaction_is_refused(dynamodb: Any) -> None:
    with pytest.raises(ClientError) as refused:
        dynamodb.transact_write_items(TransactItems=[newer("a", 1), newer("a", 2)])
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert stored(dynamodb, "a") is None


def test_puts_deletes_and_condition_checks(dynamodb: Any) -> None:
    item = {"pk": {"S": "p"}, "sk": {"S": "s"}, "t": {"N": "1"}}
    dynamodb.transact_write_items(TransactItems=[{"Put": {"TableName": "state", "Item": item}}])
    check = {
        "ConditionCheck": {
            "TableName": "state",
            "Key": {"pk": {"S": "p"}, "sk": {"S": "s"}},
            "ConditionExpression": "attribute_exists(pk)",
        }
    }
    delete = {"Delete": {"TableName": "state", "Key": {"pk": {"S": "p"}, "sk": {"S": "s"}}}}
    dynamodb.transact_write_items(TransactItems=[check, newer("q", 1)])
    assert stored(dynamodb, "q") == 1
    dynamodb.transact_write_items(TransactItems=[delete])
    assert stored(dynamodb, "p") is None

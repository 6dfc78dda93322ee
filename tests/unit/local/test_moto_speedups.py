"""The local stack's moto speed-ups change nothing but the time: SQS still hides, delays and expires
messages exactly as before (the queue semantics every soak and integration test relies on)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws
from moto.sqs.models import sqs_backends

from local import moto_speedups


@pytest.fixture
def sqs() -> Iterator[object]:
    was_applied = moto_speedups.applied()
    moto_speedups.apply()
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")
    if not was_applied:
        moto_speedups.restore()


def test_received_messages_stay_hidden_and_delayed_ones_wait(sqs: object) -> None:
    client = boto3.client("sqs", region_name="us-east-1")
    url = client.create_queue(QueueName="q")["QueueUrl"]
    client.send_message(QueueUrl=url, MessageBody="now")
    client.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=600)
    (first,) = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600)["Messages"]
    assert first["Body"] == "now"
    assert client.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []) == []
    client.change_message_visibility(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0)
    assert [m["Body"] for m in client.receive_message(QueueUrl=url)["Messages"]] == ["now"]


def test_a_message_is_deleted_by_its_current_or_an_earlier_receipt_handle(sqs: object) -> None:
    client = boto3.client("sqs", region_name="us-east-1")
    url = client.create_queue(QueueName="d")["QueueUrl"]
    for body in ("a", "b"):
        client.send_message(QueueUrl=url, MessageBody=body)
    received = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    first = {m["Body"]: m["ReceiptHandle"] for m in received}
    again = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    client.delete_message(QueueUrl=url, ReceiptHandle=first["a"])  # an earlier handle still deletes
    client.delete_message(
        QueueUrl=url, ReceiptHandle=next(m for m in again if m["Body"] == "b")["ReceiptHandle"]
    )
    assert client.receive_message(QueueUrl=url).get("Messages", []) == []
    with pytest.raises(client.exceptions.ReceiptHandleIsInvalid):
        client.delete_message(QueueUrl=url, ReceiptHandle="not-a-handle")


def test_messages_past_the_retention_period_are_not_returned(sqs: object) -> None:
    client = boto3.client("sqs", region_name="us-east-1")
    url = client.create_queue(QueueName="r", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    client.send_message(QueueUrl=url, MessageBody="old")
    assert len(client.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"]) == 1
    (old,) = sqs_backends["123456789012"]["us-east-1"].queues["r"]._messages
    assert old.sent_timestamp is not None
    old.sent_timestamp -= 61_000  # sent 61 s ago: past the 60 s retention
    assert client.receive_message(QueueUrl=url).get("Messages", []) == []


def test_restore_puts_moto_back() -> None:
    was_applied = moto_speedups.applied()
    moto_speedups.apply()
    moto_speedups.restore()
    from moto.core import utils
    from moto.sqs import models

    restored = models.unix_time  # type: ignore[attr-defined]  # moto imports it without re-exporting
    assert restored is utils.unix_time and not moto_speedups.applied()
    if was_applied:
        moto_speedups.apply()

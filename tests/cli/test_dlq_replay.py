"""DLQ listing and replay mechanics (COM-09) on moto's SQS: nothing is lost, a filter or limit leaves
the other messages in place and visible, and a message is deleted only once its copy was accepted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from activation_cli import dlq


@pytest.fixture
def queues() -> Iterator[tuple[Any, str, str]]:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue = sqs.create_queue(QueueName="q")["QueueUrl"]
        dead = sqs.create_queue(QueueName="q-dlq")["QueueUrl"]
        yield sqs, dead, queue


def _park(sqs: Any, url: str, reasons: list[str]) -> None:
    for index, reason in enumerate(reasons):
        attributes = {"reason": {"DataType": "String", "StringValue": reason}} if reason else {}
        body = {"detail-type": "Profile Updated", "detail": {"eventId": f"evt-{index}"}}
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body), MessageAttributes=attributes)


def _bodies(sqs: Any, url: str) -> list[str]:
    return sorted(json.loads(m["Body"])["detail"]["eventId"] for m in dlq.walk(sqs, url))


def test_com_09_listing_walks_every_message_and_leaves_them_in_place(queues: tuple[Any, str, str]) -> None:
    sqs, dead, _ = queues
    _park(sqs, dead, ["http_4xx"] * 12 + [""] * 3)
    listed = [dlq.describe(m) for m in dlq.walk(sqs, dead)]
    assert len(listed) == 15
    assert sorted({m["reason"] for m in listed}) == ["http_4xx", dlq.NO_REASON]
    assert dlq.depth(sqs, dead) == 15  # visible again, for the next reader


def test_com_09_replay_moves_every_message_to_the_queue(queues: tuple[Any, str, str]) -> None:
    sqs, dead, queue = queues
    _park(sqs, dead, ["rainfocus_103"] * 23)
    moved, kept = dlq.replay_messages(sqs, dead, queue)
    assert (moved, kept) == (23, 0)
    assert dlq.depth(sqs, dead) == 0
    assert len(_bodies(sqs, queue)) == 23  # each body is the original event, unchanged


def test_com_09_replay_by_reason_and_limit_leaves_the_rest_visible(queues: tuple[Any, str, str]) -> None:
    sqs, dead, queue = queues
    _park(sqs, dead, ["rainfocus_103", "malformed_event"] * 6)
    moved, _ = dlq.replay_messages(
        sqs, dead, queue, matches=lambda m: dlq.describe(m)["reason"].startswith("rainfocus_"), limit=4
    )
    assert moved == 4
    assert dlq.depth(sqs, queue) == 4
    left = [dlq.describe(m)["reason"] for m in dlq.walk(sqs, dead)]
    assert sorted(left) == ["malformed_event"] * 6 + ["rainfocus_103"] * 2


class _RefusesOne:
    """SQS whose batch send fails one entry (the queue was briefly unavailable for it)."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        sent = self._sqs.send_message_batch(QueueUrl=QueueUrl, Entries=Entries[1:])
        return {**sent, "Failed": [{"Id": Entries[0]["Id"], "Code": "InternalError", "SenderFault": False}]}


def test_com_09_a_message_whose_copy_was_refused_stays_in_the_dlq(queues: tuple[Any, str, str]) -> None:
    sqs, dead, queue = queues
    _park(sqs, dead, ["http_5xx"] * 3)
    moved, kept = dlq.replay_messages(_RefusesOne(sqs), dead, queue, limit=3)
    assert (moved, kept) == (2, 1)
    assert dlq.depth(sqs, dead) + dlq.depth(sqs, queue) == 3  # nothing lost, nothing doubled

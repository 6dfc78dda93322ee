"""The deletion check's key writes: what DynamoDB leaves unprocessed is written again after a back-off,
and a table that keeps refusing makes the page retry, never a key silently unwritten."""

from __future__ import annotations

from typing import Any

import pytest

from activation_core.errors import RetryableError
from sfmc_ingestion.deletions import KeyStore, KnownKey


class LeavesUnprocessed:
    """A DynamoDB client whose BatchWriteItem leaves one item unprocessed for its first `times` calls."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.calls: list[dict[str, Any]] = []

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # boto3's parameter name
        self.calls.append(RequestItems)
        ((table, requests),) = RequestItems.items()
        return {"UnprocessedItems": {table: requests[:1]} if len(self.calls) <= self.times else {}}


def _store(client: LeavesUnprocessed, slept: list[float]) -> KeyStore:
    return KeyStore("state", dynamodb=client, sleep=slept.append, clock=lambda: 0.0)


KEYS = [KnownKey("d1", {"email": "hash-1"}), KnownKey("d2", {"email": "hash-2"})]


def test_an_unprocessed_key_is_written_again_after_a_back_off() -> None:
    client, slept = LeavesUnprocessed(times=1), list[float]()
    _store(client, slept).record("src", "de", "run-1", KEYS)
    assert [len(call["state"]) for call in client.calls] == [2, 1]  # the one left, sent again
    assert slept == [0.05]


def test_keys_dynamodb_keeps_leaving_unprocessed_make_the_page_retry() -> None:
    client, slept = LeavesUnprocessed(times=99), list[float]()
    with pytest.raises(RetryableError) as raised:
        _store(client, slept).record("src", "de", "run-1", KEYS)
    assert raised.value.reason == "state_throttled"
    assert len(client.calls) == len(slept) == 5  # bounded: five rounds, each backed off

"""The erasure ledger: one final answer per (request, destination instance), the first one kept, no
personal value stored, and a stated end (activation_core.erasure)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from activation_core import erasure
from activation_core.outcomes import Outcome
from tests.support import create_state_table


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_state_table(client, "state")
        yield client


def answer(outcome: Outcome, instance: str = "mkto-1") -> erasure.ErasureOutcome:
    return erasure.ErasureOutcome(
        "dsr-1", "marketo", instance, erasure.classify(outcome), outcome.reason, outcome.detail, 1_800_000_000
    )


def test_a_redelivered_request_does_not_overwrite_erased_with_not_found(dynamodb: Any) -> None:
    erasure.record(dynamodb, "state", [answer(Outcome.delivered("erased: 1 Marketo lead(s) deleted"))], now=0)
    erasure.record(dynamodb, "state", [answer(Outcome.skipped("erasure_not_found"))], now=0)
    (kept,) = erasure.read(dynamodb, "state", "dsr-1", ["marketo", "outreach"])
    assert (kept.outcome, kept.instance_id) == ("erased", "mkto-1")


def test_answers_are_classified_for_the_operator() -> None:
    assert erasure.classify(Outcome.delivered()) == "erased"
    assert erasure.classify(Outcome.skipped("erasure_not_found")) == "not_found"
    assert erasure.classify(Outcome.skipped("erasure_unsupported")) == "unsupported"
    assert erasure.classify(Outcome.rejected("retries_exhausted:http_503")) == "failed"


def test_entries_expire_after_the_stated_retention_and_hold_no_identity(dynamodb: Any) -> None:
    erasure.record(dynamodb, "state", [answer(Outcome.delivered("erased"))], now=1_000)
    (item,) = dynamodb.scan(TableName="state")["Items"]
    assert int(item["ttl"]["N"]) == 1_000 + erasure.RETENTION_DAYS * 86400
    assert set(item) == {"pk", "sk", "outcome", "reason", "detail", "recordedAt", "ttl"}
    assert item["pk"]["S"] == "erasure#marketo#dsr-1"


def test_a_failed_answer_is_replaced_by_the_answer_of_the_replayed_request(dynamodb: Any) -> None:
    erasure.record(dynamodb, "state", [answer(Outcome.rejected("retries_exhausted:http_503"))], now=0)
    erasure.record(dynamodb, "state", [answer(Outcome.delivered("erased: 1 Marketo lead(s) deleted"))], now=0)
    erasure.record(dynamodb, "state", [answer(Outcome.rejected("retries_exhausted:http_503"))], now=0)
    (kept,) = erasure.read(dynamodb, "state", "dsr-1", ["marketo"])
    assert kept.outcome == "erased"


def _erasure_record(detail_changes: dict[str, Any], message_id: str = "m-1") -> dict[str, Any]:
    import json
    from pathlib import Path

    from tests.support import EVENTS, sqs_record

    event = json.loads(Path(EVENTS / "erasure" / "profile-erasure-requested.json").read_text())
    event["detail"].update(detail_changes)
    return sqs_record(event, message_id=message_id)


@pytest.mark.parametrize(
    "case",
    [
        "invalid request",  # a validation error's text quotes the input: the identities
        "store failure",  # the store's exception text names the person
    ],
)
def test_com_06_an_erasure_function_never_logs_or_raises_the_persons_identities(
    dynamodb: Any, case: str
) -> None:
    """The SFMC and snapshot erasure functions answer through `handle_batch`: whatever fails, neither
    a log line nor the exception the runtime prints (traceback and causes included) holds a value of
    the person the request names."""
    import io
    import traceback

    from activation_core.observability import logger

    email = "Ada.Lovelace@Example.com"

    def erase(detail: Any) -> int:
        raise RuntimeError(f"no partition for {detail.profile.identities['email']}")

    eraser = erasure.StoreEraser("a-store", "items", erase, dynamodb, "state", max_receive_count=1)
    changes = {"requestId": "dsr 1 for Ada.Lovelace@Example.com"} if case == "invalid request" else {}
    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        with pytest.raises(Exception) as raised:  # the whole batch failed: Powertools raises
            erasure.handle_batch({"Records": [_erasure_record(changes)]}, None, eraser)
    finally:
        logger.registered_handler.setStream(previous)  # type: ignore[attr-defined]
    printed = "".join(traceback.format_exception(raised.value))
    stored = str(dynamodb.scan(TableName="state")["Items"])  # the `failed` answer of the last receive
    assert email.lower() not in (stream.getvalue() + printed + stored).lower()
    assert "erasure request not carried out" in stream.getvalue()

"""What the SFMC source holds of a person ends: its deletion-check keys expire a configurable time after
the last check that saw them, and a `Profile Erasure Requested` event forgets them at once, in every
data extension, with its answer in the erasure ledger (`activation erasure status`)."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from activation_core import erasure as ledger
from sfmc_ingestion import erasure
from sfmc_ingestion.deletions import KeyStore, KnownKey
from sfmc_ingestion.settings import IngestionSettings
from tests.support import create_state_table, sqs_record

REQUEST = json.loads(
    (
        Path(__file__).resolve().parents[3] / "events" / "erasure" / "profile-erasure-requested.json"
    ).read_text()
)
ADA = REQUEST["detail"]["profile"]["identities"]["email"]
NOW = 1_800_000_000.0


@pytest.fixture
def client() -> Iterator[Any]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_state_table(dynamodb, "state")
        yield dynamodb


def key_store(client: Any, **kwargs: Any) -> KeyStore:
    return KeyStore("state", dynamodb=client, sleep=lambda _: None, clock=lambda: NOW, **kwargs)


def held(client: Any, source: str, de_key: str) -> dict[str, dict[str, Any]]:
    items = client.query(
        TableName="state",
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"sfmc#keys#{source}#{de_key}"}},
    )["Items"]
    return {i["sk"]["S"]: i for i in items}


def deps(client: Any, configured: set[tuple[str, str]], max_receive_count: int = 5) -> erasure.ErasureDeps:
    return erasure.ErasureDeps(
        keys=key_store(client),
        configured=lambda: configured,
        dynamodb=client,
        state_table="state",
        max_receive_count=max_receive_count,
    )


def request(request_id: str, identities: dict[str, str]) -> dict[str, Any]:
    event = copy.deepcopy(REQUEST)
    event["detail"]["requestId"] = request_id
    event["detail"]["profile"]["identities"] = identities
    return dict(event)


def test_a_deletion_check_key_expires_the_configured_days_after_the_last_check_that_saw_it(
    client: Any,
) -> None:
    key_store(client, retention_days=30).record("src", "Contacts", "run-1", [KnownKey("d1", {"email": ADA})])
    item = held(client, "src", "Contacts")["d1"]
    assert int(item["ttl"]["N"]) == NOW + 30 * 86400
    assert json.loads(item["identities"]["S"]) == {"email": ADA}  # an exit must name the person
    assert ADA.lower() not in json.dumps(item["who"])  # the erasure index holds digests only


def test_the_deletion_key_retention_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELETION_KEY_RETENTION_DAYS", "45")
    assert IngestionSettings.from_env().deletion_key_retention_days == 45
    monkeypatch.delenv("DELETION_KEY_RETENTION_DAYS")
    assert IngestionSettings.from_env().deletion_key_retention_days == 400


def test_an_erasure_request_forgets_the_persons_keys_in_every_data_extension_and_only_theirs(
    client: Any,
) -> None:
    keys = key_store(client)
    ada = KnownKey("d-ada", {"email": "ada.lovelace@example.com", "subscriberKey": "SK-1"})  # case differs
    grace = KnownKey("d-grace", {"email": "grace@example.com", "subscriberKey": "SK-2"})
    keys.record("src", "Contacts", "run-1", [ada, grace])
    keys.record("src", "Old_List", "run-1", [KnownKey("d-ada-old", {"crmId": "CRM-0001"})])
    keys.mark_checked("src", "Old_List", "2026-01-01T00:00:00Z", "run-1")  # no longer configured

    erasure.handle(_sqs(REQUEST), deps(client, {("src", "Contacts")}))

    assert set(held(client, "src", "Contacts")) == {"d-grace"}
    assert held(client, "src", "Old_List") == {}
    (answer,) = ledger.read(client, "state", "dsr-2026-0001", [ledger.STACK])
    assert (answer.instance_id, answer.outcome, answer.detail) == (
        "sfmc-deletion-check-keys",
        "erased",
        "deletion-check keys forgotten: 2",
    )


def test_a_request_for_someone_the_source_never_held_answers_not_found_and_a_redelivery_keeps_erased(
    client: Any,
) -> None:
    key_store(client).record("src", "Contacts", "run-1", [KnownKey("d-ada", {"email": ADA})])
    erasure.handle(
        _sqs(request("dsr-x", {"email": "nobody@example.org"})), deps(client, {("src", "Contacts")})
    )
    erasure.handle(_sqs(REQUEST), deps(client, {("src", "Contacts")}))
    erasure.handle(_sqs(REQUEST), deps(client, {("src", "Contacts")}))  # redelivered: nothing left
    assert [a.outcome for a in ledger.read(client, "state", "dsr-x", [ledger.STACK])] == ["not_found"]
    assert [a.outcome for a in ledger.read(client, "state", "dsr-2026-0001", [ledger.STACK])] == ["erased"]


def test_the_deletion_check_still_finds_deleted_rows_after_an_erasure(client: Any) -> None:
    keys = key_store(client)
    people = [KnownKey(f"d{i}", {"email": f"p{i}@example.com"}) for i in range(3)]
    keys.record("src", "Contacts", "run-1", people)
    erasure.handle(_sqs(request("dsr-p0", {"email": "p0@example.com"})), deps(client, {("src", "Contacts")}))
    keys.record("src", "Contacts", "run-2", [people[0], people[1]])  # p0's row is still in SFMC; p2 deleted
    unseen = [(k.pk_digest, k.identities) for page in keys.unseen("src", "Contacts", "run-2") for k in page]
    assert unseen == [("d2", {"email": "p2@example.com"})]


def test_a_request_that_cannot_be_carried_out_is_retried_then_answered_failed_without_a_value(
    client: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    key_store(client).record("src", "Contacts", "run-1", [KnownKey("d-ada", {"email": ADA})])
    calls: list[int] = []

    def unavailable_once_in_two() -> set[tuple[str, str]]:
        calls.append(1)
        if len(calls) % 2:
            raise RuntimeError(f"config unreadable near {ADA}")
        return {("src", "Contacts")}

    broken = erasure.ErasureDeps(
        key_store(client), unavailable_once_in_two, client, "state", max_receive_count=3
    )
    monkeypatch.setattr(erasure, "default_deps", lambda: broken)
    other = request("dsr-other", {"email": "nobody@example.org"})
    with caplog.at_level(logging.DEBUG):
        # One record fails, the other is answered: only the failed one goes back to the queue.
        partial = erasure.lambda_handler(
            {"Records": [sqs_record(REQUEST, "m-1", 1), sqs_record(other, "m-2", 1)]}, _Context()
        )
        assert ledger.read(client, "state", "dsr-2026-0001", [ledger.STACK]) == []  # retried: no answer yet
        # Its last receive fails too: the answer is `failed`, and the whole (one-record) batch fails.
        with pytest.raises(BatchProcessingError) as raised:
            erasure.lambda_handler({"Records": [sqs_record(REQUEST, "m-1", 3)]}, _Context())
    assert partial == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert [a.outcome for a in ledger.read(client, "state", "dsr-other", [ledger.STACK])] == ["not_found"]
    (answer,) = ledger.read(client, "state", "dsr-2026-0001", [ledger.STACK])
    assert (answer.outcome, answer.reason, answer.detail) == ("failed", "retries_exhausted", "RuntimeError")
    for text in (caplog.text, str(raised.value)):
        assert ADA not in text and ADA.lower() not in text


def _sqs(event: dict[str, Any]) -> Any:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    return SQSRecord(sqs_record(event))


class _Context:
    function_name = "sfmc-erasure"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:sfmc-erasure"
    aws_request_id = "req-1"

"""Idempotency (Powertools, DynamoDB) and the stale-event guard, in the pipeline and on their own."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from activation_core import aws
from activation_core.guards import Claim, DeliveryClaims, StaleGuard, entity_key
from activation_core.outcomes import Kind, Outcome
from activation_core.pipeline import Guards, Pipeline
from tests.support import create_state_table, load_event, sqs_record
from tests.unit.layer.recording import SETTINGS, RecordingConnector, RecordingDestination, config


@pytest.fixture
def tables() -> Iterator[None]:
    with mock_aws():
        aws.reset_clients()
        client = boto3.client("dynamodb")
        create_state_table(client, "state")
        client.create_table(
            TableName="idempotency",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield
        aws.reset_clients()


def at(second: int) -> datetime:
    return datetime(2026, 11, 28, 10, 0, second, tzinfo=UTC)


def test_claims_new_then_in_progress_then_done(tables: None) -> None:
    claims = DeliveryClaims("idempotency", "rainfocus")
    assert claims.claim("evt-1", "inst").state is Claim.NEW
    assert claims.claim("evt-1", "inst").state is Claim.IN_PROGRESS
    claims.complete("evt-1", "inst")
    assert claims.claim("evt-1", "inst").state is Claim.DONE
    assert claims.claim("evt-1", "other-instance").state is Claim.NEW  # keyed on event AND instance


class FakeLambdaContext:
    def __init__(self, remaining_millis: int) -> None:
        self.remaining_millis = remaining_millis

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_millis


def only_claim_expiry_millis() -> int:
    (item,) = boto3.client("dynamodb").scan(TableName="idempotency")["Items"]
    return int(item["in_progress_expiration"]["N"])


def test_com_09_a_claim_lasts_as_long_as_the_invocation_that_took_it(tables: None) -> None:
    # A claim left by an invocation that timed out must be free when SQS redelivers the record.
    claims = DeliveryClaims("idempotency", "rainfocus")
    claims.register_lambda_context(FakeLambdaContext(remaining_millis=4_000))
    before = int(time.time() * 1000)
    assert claims.claim("evt-1", "inst").state is Claim.NEW
    expiry = only_claim_expiry_millis()
    assert before + 4_000 <= expiry <= int(time.time() * 1000) + 4_000


def test_com_09_an_event_claimed_elsewhere_waits_until_that_claim_ends(tables: None) -> None:
    holder = DeliveryClaims("idempotency", "rainfocus")
    holder.register_lambda_context(FakeLambdaContext(remaining_millis=45_000))
    assert holder.claim("evt-1", "inst").state is Claim.NEW
    other = DeliveryClaims("idempotency", "rainfocus").claim("evt-1", "inst")
    assert other.state is Claim.IN_PROGRESS
    assert other.held_for is not None and 40 < other.held_for <= 45


def test_a_released_claim_can_be_taken_again(tables: None) -> None:
    claims = DeliveryClaims("idempotency", "rainfocus")
    claims.claim("evt-1", "inst")
    claims.release("evt-1", "inst")
    assert claims.claim("evt-1", "inst").state is Claim.NEW


def test_stale_guard_admits_newer_and_equal_refuses_older(tables: None) -> None:
    guard = StaleGuard("state")
    assert guard.admit("inst", "p1", "aud", at(10))
    assert guard.admit("inst", "p1", "aud", at(10))  # the same event retried
    assert not guard.admit("inst", "p1", "aud", at(5))
    assert guard.admit("inst", "p1", "other-aud", at(5))  # per audience
    assert guard.admit("inst", "p2", "aud", at(5))  # per profile


def test_entity_key_is_stable_and_not_the_identity() -> None:
    key = entity_key({"email": "ada@example.com"})
    assert key == entity_key({"email": "ada@example.com"})
    assert "ada" not in key and len(key) == 32


def guarded_pipeline(destination: RecordingDestination) -> Pipeline:
    cfg = config("one")
    guards = Guards(DeliveryClaims("idempotency", "recording"), StaleGuard("state"))
    return Pipeline(destination, SETTINGS, lambda: cfg, guards)


def event_at(event_id: str, occurred_at: str) -> dict[str, Any]:
    event = load_event("profile-membership-realized")
    event["detail"]["eventId"] = event_id
    event["detail"]["occurredAt"] = occurred_at
    return event


def test_a_redelivered_event_is_not_applied_twice(tables: None) -> None:
    destination = RecordingDestination()
    pipeline = guarded_pipeline(destination)
    first = pipeline.process([sqs_record(event_at("evt-1", "2026-11-28T10:00:00Z"), "m-1")])
    again = pipeline.process([sqs_record(event_at("evt-1", "2026-11-28T10:00:00Z"), "m-2")])
    assert first["m-1"].outcome.kind is Kind.DELIVERED
    assert again["m-2"].outcome.reason == "duplicate"
    assert len(destination.connectors["one"].seen) == 1


def test_an_older_event_never_overwrites_a_newer_state(tables: None) -> None:
    destination = RecordingDestination()
    pipeline = guarded_pipeline(destination)
    pipeline.process([sqs_record(event_at("evt-new", "2026-11-28T10:00:10Z"), "m-1")])
    late = pipeline.process([sqs_record(event_at("evt-old", "2026-11-28T10:00:00Z"), "m-2")])
    assert late["m-2"].outcome.reason == "stale"
    assert [i.record.event_id for i in destination.connectors["one"].seen] == ["evt-new"]


def test_a_retried_event_is_applied_once_it_succeeds(tables: None) -> None:
    destination = RecordingDestination()
    destination.connectors["one"] = RecordingConnector("one", outcome=Outcome.retry("http_503"))
    pipeline = guarded_pipeline(destination)
    assert (
        pipeline.process([sqs_record(event_at("evt-1", "2026-11-28T10:00:00Z"), "m-1")])["m-1"].outcome.kind
        is Kind.RETRY
    )
    destination.connectors["one"].outcome = Outcome.delivered()
    assert (
        pipeline.process([sqs_record(event_at("evt-1", "2026-11-28T10:00:00Z"), "m-1", 2)])[
            "m-1"
        ].outcome.kind
        is Kind.DELIVERED
    )


def test_a_rejected_event_can_be_replayed_from_the_dlq_after_the_fix(tables: None) -> None:
    destination = RecordingDestination()
    destination.connectors["one"] = RecordingConnector("one", outcome=Outcome.rejected("http_400"))
    pipeline = guarded_pipeline(destination)
    pipeline.process([sqs_record(event_at("evt-1", "2026-11-28T10:00:00Z"), "m-1")])
    destination.connectors["one"].outcome = Outcome.delivered()
    replay = pipeline.process([sqs_record(event_at("evt-1", "2026-11-28T10:00:00Z"), "m-9")])
    assert replay["m-9"].outcome.kind is Kind.DELIVERED

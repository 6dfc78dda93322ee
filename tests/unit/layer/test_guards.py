"""Order and idempotency (one state-table item per instance and entity), in the pipeline and on their own."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import xform_name
from botocore.exceptions import ClientError
from moto import mock_aws

from activation_core import aws, naming
from activation_core.guards import Applied, Change, OrderGuard, Verdict, entity_key
from activation_core.outcomes import Kind, Outcome
from activation_core.pipeline import Guards, Pipeline
from tests.support import applied_to, create_state_table, load_event, sqs_record
from tests.unit.layer.recording import SETTINGS, RecordingConnector, RecordingDestination, config

TYPE = SETTINGS.destination_type  # the guard's keys carry its destination type


@pytest.fixture
def tables() -> Iterator[None]:
    with mock_aws():
        aws.reset_clients()
        client = boto3.client("dynamodb")
        create_state_table(client, "state")
        yield
        aws.reset_clients()


def at(second: int) -> datetime:
    return datetime(2026, 11, 28, 10, 0, second, tzinfo=UTC)


def test_the_guard_reads_what_was_committed_per_entity_and_audience(tables: None) -> None:
    guard = OrderGuard("state", TYPE)
    assert guard.read("inst", ["p1", "p2"]) == {}
    guard.commit("inst", [Change("p1", "evt-1", 10, ("aud", "other-aud"))], {})
    state = guard.read("inst", ["p1", "p2"])
    assert set(state) == {"p1"}
    assert state["p1"].get("aud") == Applied(10, frozenset({"evt-1"}))
    assert applied_to(state["p1"], "aud").verdict(10, "evt-1") is Verdict.DUPLICATE  # the same event again
    assert (
        applied_to(state["p1"], "aud").verdict(10, "evt-2") is Verdict.NEW
    )  # another event of the same instant
    assert applied_to(state["p1"], "aud").verdict(5, "evt-0") is Verdict.STALE
    assert guard.read("other-inst", ["p1"]) == {}  # per instance


def test_the_guard_never_moves_backwards_whatever_another_invocation_did(tables: None) -> None:
    guard = OrderGuard("state", TYPE)
    seen_before = guard.read("inst", ["p1"])  # this invocation read, then delivered...
    guard.commit("inst", [Change("p1", "evt-new", 20, ("aud",))], {})  # ...while another one committed
    assert guard.commit("inst", [Change("p1", "evt-old", 10, ("aud",))], seen_before).not_committed == 0
    assert guard.read("inst", ["p1"])["p1"].get("aud") == Applied(20, frozenset({"evt-new"}))


def test_a_concurrent_change_to_another_audience_of_the_entity_is_kept(tables: None) -> None:
    guard = OrderGuard("state", TYPE)
    seen_before = guard.read("inst", ["p1"])
    guard.commit("inst", [Change("p1", "evt-b", 20, ("aud-b",))], {})  # another invocation, meanwhile
    guard.commit("inst", [Change("p1", "evt-a", 10, ("aud-a",))], seen_before)
    state = guard.read("inst", ["p1"])["p1"]
    assert (state.get("aud-a"), state.get("aud-b")) == (
        Applied(10, frozenset({"evt-a"})),
        Applied(20, frozenset({"evt-b"})),
    )


def test_events_of_the_same_instant_are_all_remembered(tables: None) -> None:
    guard = OrderGuard("state", TYPE)
    guard.commit("inst", [Change("p1", "evt-a", 10, ("aud",))], {})
    guard.commit("inst", [Change("p1", "evt-b", 10, ("aud",))], guard.read("inst", ["p1"]))
    # A stale read (the first commit not seen) is re-read when its condition fails, and still merges.
    guard.commit("inst", [Change("p1", "evt-c", 10, ("aud",))], {})
    assert applied_to(guard.read("inst", ["p1"])["p1"], "aud").event_ids == {"evt-a", "evt-b", "evt-c"}


def test_a_batch_of_many_entities_is_read_and_committed_in_a_few_requests(tables: None) -> None:
    """Through the container's guard client, which sends its reads and transactions as built: every
    entity of every request arrives (not only the stand-in's first), in requests of AWS's maxima."""
    calls: list[str] = []
    aws.client("dynamodb", validated=False).meta.events.register(
        "before-call", lambda model, **_: calls.append(model.name)
    )
    guard = OrderGuard("state", TYPE)
    entities = [f"p{i}" for i in range(250)]
    known = guard.read("inst", entities)
    guard.commit("inst", [Change(e, f"evt-{e}", 1, ("aud",)) for e in entities], known)
    state = guard.read("inst", entities)
    assert {e: s.get("aud") for e, s in state.items()} == {
        e: Applied(1, frozenset({f"evt-{e}"})) for e in entities
    }
    assert calls.count("BatchGetItem") == 6 and calls.count("TransactWriteItems") == 3


def test_the_guards_requests_sent_as_built_are_byte_for_byte_what_botocore_would_send(tables: None) -> None:
    """The container's guard client sends its reads and transactions with `json.dumps` of the guard's
    own parameters as the body (aws.py, `_send_as_built`: botocore's serializer and endpoint rules
    walked every item). For every shape the guard sends (a read of existing and missing entities, a
    first and a versioned commit with lineages, a refused one re-read and retried), the body, URL and
    headers botocore builds from the same parameters through a validated client are the same."""
    sent: list[tuple[str, dict[str, Any], Any]] = []  # the operation, the caller's parameters, the request

    def caller(params: dict[str, Any], model: Any, **_: Any) -> None:
        sent.append((model.name, json.loads(json.dumps(params)), None))

    def request(request: Any, **_: Any) -> None:
        name, params, _unset = sent[-1]
        sent[-1] = (name, params, request)

    as_built = aws.client("dynamodb", validated=False)
    as_built.meta.events.register("provide-client-params.dynamodb", caller)
    as_built.meta.events.register("before-send.dynamodb", request)
    guard = OrderGuard("state", TYPE)
    first = guard.read("inst", ["p1", "p2", "p3"])
    changes = [Change("p1", "evt-1", 10, ("aud",), "m-1"), Change("p2", "evt-2", 10, ("aud", "aud-2"))]
    guard.commit("inst", changes, first)
    guard.commit("inst", [Change("p1", "evt-3", 20, ("aud",), "m-3")], guard.read("inst", ["p1", "p3"]))
    assert guard.commit("inst", [Change("p1", "evt-4", 30, ("aud",))], first).not_committed == 0
    assert [name for name, _, _ in sent] == [
        "BatchGetItem", "TransactWriteItems", "BatchGetItem", "TransactWriteItems",
        "TransactWriteItems", "BatchGetItem", "TransactWriteItems",
    ]  # fmt: skip

    built: list[Any] = []
    validated = boto3.client("dynamodb")  # botocore's own serializer, parameter validation on
    validated.meta.events.register("before-send.dynamodb", lambda request, **_: built.append(request))
    for name, params, ours in sent:
        with contextlib.suppress(ClientError):  # sent again to moto: a commit's condition now fails
            getattr(validated, xform_name(name))(**params)
        botocores = built[-1]
        assert (ours.url, ours.body) == (botocores.url, botocores.body)
        assert _signed_headers(ours) == _signed_headers(botocores)


def test_the_guards_reads_taken_as_sent_are_what_botocore_would_parse(tables: None) -> None:
    """The container's guard client takes a read's body as DynamoDB sent it (aws.py, `_body_as_sent`:
    botocore's parser walked every attribute of every item): for the guard's items (versions, times,
    event-id and lineage sets), for keys not found, and for an item with a binary value (left to
    botocore's parser: it decodes base64), the result is botocore's own, response metadata aside."""
    guard = OrderGuard("state", TYPE)
    changes = [Change("p1", "evt-1", 10, ("aud",), "m-1"), Change("p2", "evt-2", 10, ("aud", "aud-2"))]
    guard.commit("inst", changes, guard.read("inst", ["p1", "p2"]))
    validated = boto3.client("dynamodb")
    binary_key = {"pk": {"S": naming.order_key(TYPE, "inst", "p9")}, "sk": {"S": "applied"}}
    validated.put_item(TableName="state", Item={**binary_key, "b": {"B": b"\x00\xff"}, "bs": {"BS": [b"x"]}})
    keys = [
        {"pk": {"S": naming.order_key(TYPE, "inst", e)}, "sk": {"S": "applied"}} for e in ("p1", "p2", "p3")
    ]
    as_sent = aws.client("dynamodb", validated=False)
    found = []
    for read in (keys, [*keys, binary_key], keys[2:]):
        params = {"RequestItems": {"state": {"Keys": read, "ConsistentRead": True}}}
        ours, botocores = as_sent.batch_get_item(**params), validated.batch_get_item(**params)
        ours.pop("ResponseMetadata"), botocores.pop("ResponseMetadata")
        assert ours == botocores
        found.append(len(ours["Responses"]["state"]))
    assert found == [2, 3, 0]


def _signed_headers(request: Any) -> dict[str, str]:
    """The request's headers but those that differ per attempt (time, signature, invocation id)."""
    varying = {"x-amz-date", "authorization", "amz-sdk-invocation-id", "amz-sdk-request", "user-agent"}
    return {k.lower(): str(v) for k, v in request.headers.items() if k.lower() not in varying}


def test_every_request_the_guard_makes_passes_botocores_parameter_validation(tables: None) -> None:
    """The container's guard client skips botocore's parameter validation (a third of the guard's CPU,
    docs/decisions.md): each shape the guard sends is checked here through a validated client instead:
    a read, a first commit (no item yet), a versioned one, one refused and retried after a re-read
    (another invocation moved the item), and an erasure's delete."""
    calls: list[str] = []
    validated = boto3.client("dynamodb")  # parameter validation on: a wrong shape raises here
    validated.meta.events.register("before-call", lambda model, **_: calls.append(model.name))
    guard = OrderGuard("state", TYPE, dynamodb=validated)
    first = guard.read("inst", ["p1", "p2"])
    guard.commit(
        "inst", [Change("p1", "evt-1", 10, ("aud",), "m-1"), Change("p2", "evt-2", 10, ("aud",))], first
    )
    guard.commit("inst", [Change("p1", "evt-3", 20, ("aud", "aud-2"), "m-3")], guard.read("inst", ["p1"]))
    assert (
        guard.commit("inst", [Change("p1", "evt-4", 30, ("aud",))], first).not_committed == 0
    )  # refused, re-read
    guard.forget("inst", "p2")
    state = guard.read("inst", ["p1", "p2"])
    assert set(state) == {"p1"} and state["p1"].get("aud") == Applied(30, frozenset({"evt-4"}))
    assert set(calls) == {"BatchGetItem", "TransactWriteItems", "DeleteItem"}
    assert calls.count("TransactWriteItems") == 4  # the refused commit was tried again


def test_the_containers_guard_uses_the_dynamodb_client_without_parameter_validation(tables: None) -> None:
    seen: list[str] = []
    aws.client("dynamodb", validated=False).meta.events.register(
        "before-call", lambda model, **_: seen.append(model.name)
    )
    guard = OrderGuard("state", TYPE)
    guard.commit("inst", [Change("p1", "evt-1", 10, ("aud",))], guard.read("inst", ["p1"]))
    assert seen == ["BatchGetItem", "TransactWriteItems"]


def test_entity_key_is_stable_and_not_the_identity() -> None:
    key = entity_key({"email": "ada@example.com"})
    assert key == entity_key({"email": "ada@example.com"})
    assert "ada" not in key and len(key) == 32


def guarded_pipeline(destination: RecordingDestination) -> Pipeline:
    cfg = config("one")
    guards = Guards(OrderGuard("state", TYPE))
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


# ---------------------------------------------------------------- issue 14 item 3: the order guard loses nothing
def dora(event_id: str, occurred_at: str, email: str = "dora@example.com") -> dict[str, Any]:
    event = event_at(event_id, occurred_at)
    event["detail"]["profile"]["identities"]["email"] = email
    return event


def test_com_01_an_event_dated_far_in_the_future_is_rejected_and_holds_nothing_back(tables: None) -> None:
    destination = RecordingDestination()
    pipeline = guarded_pipeline(destination)
    bogus = pipeline.process([sqs_record(dora("evt-bogus", "9999-12-31T23:59:59Z"), "m-1")])
    later = pipeline.process([sqs_record(dora("evt-real", "2026-11-28T10:00:00Z"), "m-2")])
    assert (bogus["m-1"].outcome.kind, bogus["m-1"].outcome.reason) == (
        Kind.REJECTED,
        "invalid_field:occurredAt",
    )
    assert later["m-2"].outcome.kind is Kind.DELIVERED
    assert [i.record.event_id for i in destination.connectors["one"].seen] == ["evt-real"]


def test_com_01_the_clock_skew_allowance_is_a_setting(tables: None) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=120)).isoformat()
    destination = RecordingDestination()
    lenient = guarded_pipeline(destination)
    strict = Pipeline(
        destination, SETTINGS.model_copy(update={"clock_skew_seconds": 60}), lambda: config("one"), Guards()
    )
    assert lenient.process([sqs_record(dora("evt-1", soon), "m-1")])["m-1"].outcome.kind is Kind.DELIVERED
    refused = strict.process([sqs_record(dora("evt-2", soon), "m-2")])["m-2"].outcome
    assert (refused.kind, refused.reason) == (Kind.REJECTED, "invalid_field:occurredAt")


def test_com_01_a_newer_event_the_vendor_rejects_does_not_make_an_older_one_stale(tables: None) -> None:
    destination = RecordingDestination()
    destination.connectors["one"] = RecordingConnector("one", outcome=Outcome.rejected("http_400"))
    pipeline = guarded_pipeline(destination)
    pipeline.process([sqs_record(dora("evt-new", "2026-11-28T10:00:10Z"), "m-1")])
    destination.connectors["one"].outcome = Outcome.delivered()
    older = pipeline.process([sqs_record(dora("evt-old", "2026-11-28T10:00:00Z"), "m-2")])
    assert older["m-2"].outcome.kind is Kind.DELIVERED


def test_com_01_a_newer_event_that_is_retried_does_not_make_an_older_one_stale(tables: None) -> None:
    destination = RecordingDestination()
    destination.connectors["one"] = RecordingConnector("one", outcome=Outcome.retry("http_503"))
    pipeline = guarded_pipeline(destination)
    pipeline.process([sqs_record(dora("evt-new", "2026-11-28T10:00:10Z"), "m-1")])
    destination.connectors["one"].outcome = Outcome.delivered()
    assert (
        pipeline.process([sqs_record(dora("evt-old", "2026-11-28T10:00:00Z"), "m-2")])["m-2"].outcome.kind
        is Kind.DELIVERED
    )
    # The newer one, retried, is still applied after it: the vendor ends with the newest state.
    assert (
        pipeline.process([sqs_record(dora("evt-new", "2026-11-28T10:00:10Z"), "m-1", 2)])["m-1"].outcome.kind
        is Kind.DELIVERED
    )


@pytest.mark.parametrize("variant", ["Dora@Example.com", "  dora@example.com ", "DORA@EXAMPLE.COM"])
def test_com_01_identities_differing_only_in_case_or_spaces_are_one_person(
    tables: None, variant: str
) -> None:
    destination = RecordingDestination()
    pipeline = guarded_pipeline(destination)
    pipeline.process([sqs_record(dora("evt-new", "2026-11-28T10:00:10Z"), "m-1")])
    late = pipeline.process([sqs_record(dora("evt-old", "2026-11-28T10:00:00Z", variant), "m-2")])
    assert late["m-2"].outcome.reason == "stale"
    assert [i.record.event_id for i in destination.connectors["one"].seen] == ["evt-new"]


def test_entity_key_folds_case_only_where_the_namespace_ignores_it() -> None:
    assert entity_key({"email": " Dora@Example.com"}) == entity_key({"email": "dora@example.com"})
    assert entity_key({"Email": "Dora@Example.com"}) == entity_key({"Email": "dora@example.com"})
    # A CRM id is case-sensitive (Salesforce ids differ by case alone): only trimmed.
    assert entity_key({"crmId": " 0015g00000AbCdE"}) == entity_key({"crmId": "0015g00000AbCdE"})
    assert entity_key({"crmId": "0015g00000AbCdE"}) != entity_key({"crmId": "0015g00000abcde"})


def guard_item(client: Any, instance: str, entity: str) -> dict[str, Any]:
    key = {"pk": {"S": naming.order_key(TYPE, instance, entity)}, "sk": {"S": "applied"}}
    return dict(client.get_item(TableName="state", Key=key).get("Item") or {})


def test_a_guard_item_expires_the_stated_days_after_the_last_change_applied(tables: None) -> None:
    client = boto3.client("dynamodb")
    now = [1_800_000_000.0]
    guard = OrderGuard("state", TYPE, retention_days=30, clock=lambda: now[0])
    guard.commit("inst", [Change("p1", "evt-1", 10, ("aud",))], {})
    assert int(guard_item(client, "inst", "p1")["ttl"]["N"]) == 1_800_000_000 + 30 * 86400
    now[0] += 86400  # a day later a newer change is applied: the item's end moves with it
    guard.commit("inst", [Change("p1", "evt-2", 20, ("aud",))], guard.read("inst", ["p1"]))
    assert int(guard_item(client, "inst", "p1")["ttl"]["N"]) == 1_800_000_000 + 31 * 86400


def test_the_default_guard_retention_is_long_compared_with_any_delay_in_the_stack(tables: None) -> None:
    guard = OrderGuard("state", TYPE)
    guard.commit("inst", [Change("p1", "evt-1", 10, ("aud",))], {})
    expires_in_days = (
        int(guard_item(boto3.client("dynamodb"), "inst", "p1")["ttl"]["N"]) - time.time()
    ) / 86400
    # Events wait 4 days in a queue and 14 in a DLQ at most (SQS): the guard outlives both by far.
    assert 399 <= expires_in_days <= 400 + 1 / 86400  # the expiry is rounded up to the second


def test_once_dynamodb_deleted_an_expired_guard_item_an_older_event_is_applied_again(tables: None) -> None:
    """The trade-off of a retention (docs/decisions.md): after expiry the entity is unknown again."""
    client = boto3.client("dynamodb")
    guard = OrderGuard("state", TYPE, retention_days=1)
    guard.commit("inst", [Change("p1", "evt-new", 20, ("aud",))], {})
    assert applied_to(guard.read("inst", ["p1"])["p1"], "aud").verdict(10, "evt-old") is Verdict.STALE
    client.delete_item(
        TableName="state", Key={"pk": {"S": naming.order_key(TYPE, "inst", "p1")}, "sk": {"S": "applied"}}
    )  # TTL
    assert guard.read("inst", ["p1"]) == {}  # the older event would now be sent


def test_the_guard_retention_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from activation_core.settings import FunctionSettings

    for name in ("DESTINATION_TYPE", "CONFIG_PARAMETER_NAME", "STATE_TABLE_NAME", "DEAD_LETTER_QUEUE_URL"):
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv("ORDER_GUARD_RETENTION_DAYS", "90")
    assert FunctionSettings.from_env().order_guard_retention_days == 90
    monkeypatch.delenv("ORDER_GUARD_RETENTION_DAYS")
    assert FunctionSettings.from_env().order_guard_retention_days == 400


def test_an_erasure_request_forgets_the_persons_guard_and_waiting_items_on_the_instance(tables: None) -> None:
    from activation_core.waiting import WaitingChanges

    client = boto3.client("dynamodb")
    guards = Guards(OrderGuard("state", TYPE))
    pipeline = Pipeline(
        RecordingDestination(), SETTINGS, lambda: config("one"), guards, waiting=WaitingChanges("state", TYPE)
    )
    realized = event_at("evt-1", "2026-11-28T10:00:00Z")
    pipeline.process([sqs_record(realized, "m-1")])
    entity = entity_key({"email": realized["detail"]["profile"]["identities"]["email"]})
    waiting = {"pk": {"S": naming.waiting_key(TYPE, "one", entity)}, "sk": {"S": "fields"}}
    client.put_item(TableName="state", Item={**waiting, "field:email": {"N": "1"}})
    assert guard_item(client, "one", entity)  # the stack holds the person's guard and waiting items

    erasure = json.loads(
        (Path(__file__).resolve().parents[3] / "events/erasure/profile-erasure-requested.json").read_text()
    )
    erasure["detail"]["profile"]["identities"] = dict(realized["detail"]["profile"]["identities"])
    result = pipeline.process([sqs_record(erasure, "m-2")])

    assert result["m-2"].outcome.reason == "erasure_unsupported"  # this connector cannot erase...
    assert guard_item(client, "one", entity) == {}  # ...but the stack forgot what it held
    assert "Item" not in client.get_item(TableName="state", Key=waiting)


def test_com_08_the_same_message_again_is_redelivered_another_message_of_the_event_a_duplicate(
    tables: None,
) -> None:
    destination = RecordingDestination()
    pipeline = guarded_pipeline(destination)
    event = event_at("evt-1", "2026-11-28T10:00:00Z")
    first = pipeline.process([sqs_record(event, "m-1")])
    again = pipeline.process([sqs_record(event, "m-1")])  # SQS: the delete failed, the message came back
    copy = pipeline.process([sqs_record(event, "m-2")])  # EventBridge published the event twice
    assert first["m-1"].outcome.kind is Kind.DELIVERED
    assert again["m-1"].outcome.reason == "redelivered"
    assert copy["m-2"].outcome.reason == "duplicate"
    assert len(destination.connectors["one"].seen) == 1


def test_com_08_a_requeued_copy_keeps_the_lineage_of_its_first_message(tables: None) -> None:
    pipeline = guarded_pipeline(RecordingDestination())
    event = event_at("evt-1", "2026-11-28T10:00:00Z")
    pipeline.process([sqs_record(event, "m-1")])
    copy = sqs_record(event, "m-copy")
    copy["messageAttributes"] = {"activationOrigin": {"dataType": "String", "stringValue": "m-1"}}
    assert pipeline.process([copy])["m-copy"].outcome.reason == "redelivered"


def test_com_08_of_two_invocations_holding_one_message_at_once_only_the_first_commit_counts(
    tables: None,
) -> None:
    guard = OrderGuard("state", TYPE)
    change = Change("p1", "evt-1", 10, ("aud",), origin="m-1")
    seen_before = guard.read("inst", ["p1"])  # both invocations read before either committed
    assert guard.commit("inst", [change], {}).redelivered == frozenset()
    assert guard.commit("inst", [change], seen_before).redelivered == {"m-1"}
    other_message = Change("p1", "evt-1", 10, ("aud",), origin="m-2")
    assert guard.commit("inst", [other_message], seen_before).redelivered == frozenset()


def test_com_08_two_invocations_committing_identical_items_are_two_requests_to_dynamodb(tables: None) -> None:
    """DynamoDB answers a TransactWriteItems whose ClientRequestToken it saw in the last 10 minutes as a
    replay of that request: success, nothing written (moto ignores the token). Two invocations holding
    one message commit identical items in the same second; with one token between them the second
    would take the first's success for its own and count the message again, instead of being refused,
    re-reading and finding it `redelivered` (the test above). botocore's retry of one request keeps its
    token (same request), so a token per request is enough."""
    tokens: list[str] = []
    client = boto3.client("dynamodb")
    client.meta.events.register(
        "before-parameter-build.dynamodb.TransactWriteItems",
        lambda params, **_: tokens.append(params["ClientRequestToken"]),
    )
    first, second = (
        OrderGuard("state", TYPE, dynamodb=client, clock=lambda: 1_800_000_000.0) for _ in range(2)
    )
    change = Change("p1", "evt-1", 10, ("aud",), origin="m-1")
    first.commit("inst", [change], {})
    second.commit("inst", [change], {})  # refused (the first wrote it), re-read, nothing left to write
    assert len(tokens) == 2 and tokens[0] != tokens[1]


def test_com_08_a_message_processed_by_two_invocations_at_once_is_counted_delivered_once(
    tables: None,
) -> None:
    """SQS gives a message to a second invocation while the first still holds it (its visibility ran
    out): both send (nothing is locked during the vendor call), one outcome is counted."""
    record = sqs_record(event_at("evt-1", "2026-11-28T10:00:00Z"), "m-1")
    inner: dict[str, Any] = {}
    second = guarded_pipeline(RecordingDestination())

    class Overlapping(RecordingDestination):
        def connect(self, instance: Any, settings: Any) -> Any:
            connector = super().connect(instance, settings)
            deliver = connector.deliver

            def while_the_other_runs(items: Any) -> Any:
                if not inner:  # the second invocation reads, delivers and commits meanwhile
                    inner.update(second.process([{**record, "receiptHandle": "rh-2"}]))
                return deliver(items)

            connector.deliver = while_the_other_runs  # type: ignore[method-assign]
            return connector

    outer = guarded_pipeline(Overlapping()).process([record])
    assert inner["m-1"].outcome.kind is Kind.DELIVERED
    assert outer["m-1"].outcome.reason == "redelivered"


def test_a_commit_of_large_guard_items_stays_within_dynamodbs_4_mb_a_transaction(tables: None) -> None:
    """TransactWriteItems takes at most 100 items and 4 MB of them (AWS; moto enforces neither): a batch
    of 100 entities each in many audiences (about 50 KB an item) goes out in requests under 4 MB, and
    every entity is committed."""
    sizes: list[int] = []
    aws.client("dynamodb", validated=False).meta.events.register(
        "before-send.dynamodb.TransactWriteItems", lambda request, **_: sizes.append(len(request.body))
    )
    guard = OrderGuard("state", TYPE)
    entities = [f"p{i}" for i in range(100)]
    audiences = tuple(f"audience-{n:04d}-" + "with-a-long-descriptive-identifier-" * 4 for n in range(100))
    changes = [Change(e, f"evt-{e}", 1, audiences, f"m-{e}") for e in entities]
    assert guard.commit("inst", changes, guard.read("inst", entities)).not_committed == 0
    assert len(sizes) > 1 and max(sizes) < 4 * 1024 * 1024, sizes
    state = guard.read("inst", entities)
    assert all(
        state[e].get(a) == Applied(1, frozenset({f"evt-{e}"}), frozenset({f"m-{e}"}))
        for e in entities
        for a in audiences
    )


def test_a_guard_items_size_counts_utf8_bytes_as_dynamodb_does() -> None:
    """DynamoDB sizes an item by the UTF-8 bytes of its names and values: an audience or event id in
    another script counts 2-4 bytes a character towards the 4 MB a transaction."""
    from activation_core.guards import _item_size

    item = {"t:prospects-münchen": {"N": "17"}, "e:prospects-münchen": {"SS": ["évt-1", "事件-2"]}}
    expected = sum(
        len(text.encode()) for text in ("t:prospects-münchen", "17", "e:prospects-münchen", "évt-1", "事件-2")
    )
    assert _item_size(item) == expected

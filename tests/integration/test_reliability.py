"""Idempotency and order through the deployed stack (issue: reliability): a redelivered event is not
applied twice, an older event never overwrites a newer one, whatever the order of arrival."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from local.examples import sample_events
from local.harness import ActivationHarness, DestinationReport
from tests.support import calls_their_roles_refuse

pytestmark = pytest.mark.integration


def ada(event_id: str, occurred_at: str, city: str) -> dict[str, Any]:
    event = copy.deepcopy(next(e for e in sample_events() if e["detail"]["eventId"] == "evt-0001"))
    event["detail"]["eventId"] = event_id
    event["detail"]["occurredAt"] = occurred_at
    event["detail"]["profile"]["attributes"]["workAddress"]["city"] = city
    return event


def test_a_redelivered_event_reaches_the_vendor_once(harness: ActivationHarness) -> None:
    fake = harness.fake("rainfocus")
    event = ada("evt-dup", "2026-11-28T11:00:00Z", "Boston")
    harness.publish([event])
    harness.drain()
    harness.publish([event])  # EventBridge and SQS are at-least-once: the same event again
    harness.drain()
    calls = [r for r in fake.requests_to("attendee/store") if b"evt-dup" in r.body or b"Boston" in r.body]
    assert len(calls) == 1
    assert harness.report("rainfocus").reasons.get("skipped:duplicate") == 1


def test_an_older_event_arriving_late_is_skipped_as_stale(harness: ActivationHarness) -> None:
    fake = harness.fake("rainfocus")
    harness.publish([ada("evt-new", "2026-11-28T12:00:10Z", "Newtown")])
    harness.drain()
    harness.publish([ada("evt-old", "2026-11-28T12:00:00Z", "Oldtown")])
    harness.drain()
    assert fake.attendees[("expo2026", "ada.lovelace@example.com")]["city"] == "Newtown"
    assert all(b"Oldtown" not in r.body for r in fake.requests_to("attendee/store"))
    assert harness.report("rainfocus").reasons.get("skipped:stale") == 1
    assert harness.report("rainfocus").balanced


def drained(
    harness: ActivationHarness, before: DestinationReport
) -> tuple[DestinationReport, Callable[[str], int]]:
    """Drain the stack: RainFocus's report after it, and how much each counter changed since `before`."""
    harness.drain()
    report = harness.report("rainfocus")
    return report, lambda name: report.count(name) - before.count(name)


def deletes_fail(harness: ActivationHarness, monkeypatch: pytest.MonkeyPatch, messages: int) -> list[int]:
    """The poller's deletes on the RainFocus queue fail until `messages` messages were not deleted: they
    are visible again at once, and SQS delivers them again (their outcome already counted). Returns
    the number of messages of each failed delete."""
    poller = harness.stack.poller
    sqs = poller._sqs
    delete = sqs.delete_message_batch
    queue = harness.outputs["RainfocusQueueUrl"].rsplit("/", 1)[-1]
    failed_deletes: list[int] = []

    def delete_fails(**kwargs: Any) -> Any:
        if sum(failed_deletes) >= messages or not kwargs["QueueUrl"].endswith(queue):
            return delete(**kwargs)
        failed_deletes.append(len(kwargs["Entries"]))  # the messages stay: visible again at once
        sqs.change_message_visibility_batch(
            QueueUrl=kwargs["QueueUrl"],
            Entries=[{**e, "VisibilityTimeout": 0} for e in kwargs["Entries"]],
        )
        return {"Successful": [], "Failed": []}

    monkeypatch.setattr(sqs, "delete_message_batch", delete_fails)
    return failed_deletes


def test_com_08_a_settled_message_delivered_again_by_sqs_is_counted_once(
    harness: ActivationHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQS standard queues deliver at least once: a message whose delete failed (or whose visibility
    ran out while its invocation still ran) comes back with the same message id after its outcome was
    counted. The ledger counts it as `redelivered`, outside received = delivered + skipped + DLQ."""
    before = harness.report("rainfocus")
    failed_deletes = deletes_fail(harness, monkeypatch, messages=1)
    harness.publish([ada("evt-redelivered", "2026-11-28T13:00:00Z", "Salem")])
    harness.drain()
    report = harness.report("rainfocus")
    assert failed_deletes == [1]
    assert report.count("delivered") - before.count("delivered") == 1
    assert report.count("redelivered") - before.count("redelivered") == 1
    assert report.balanced


def test_com_08_a_settled_skip_or_rejection_delivered_again_by_sqs_is_counted_once(
    harness: ActivationHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outcomes that never move the order guard: a stale event (skipped) and one dated in the far
    future (rejected to the DLQ) come back after their delete failed. Each is counted once, the
    rejection reaches the DLQ once, the vendor never gets the stale change."""
    fake = harness.fake("rainfocus")
    harness.publish([ada("evt-newer", "2026-11-28T14:00:10Z", "Lowell")])
    harness.drain()
    before = harness.report("rainfocus")
    failed_deletes = deletes_fail(harness, monkeypatch, messages=2)
    harness.publish(
        [
            ada("evt-older", "2026-11-28T14:00:00Z", "Andover"),
            ada("evt-future", "2999-01-01T00:00:00Z", "Later"),
        ]
    )
    report, delta = drained(harness, before)

    assert sum(failed_deletes) == 2
    assert (delta("received"), delta("skipped"), delta("rejected"), delta("redelivered")) == (2, 1, 1, 2)
    assert report.reasons.get("skipped:stale", 0) - before.reasons.get("skipped:stale", 0) == 1
    assert report.dlq_depth - before.dlq_depth == 1
    assert all(b"Andover" not in r.body for r in fake.requests_to("attendee/store"))
    assert report.balanced
    assert calls_their_roles_refuse(harness, "rainfocus") == []  # the settled-message items are its own


def test_com_08_a_message_whose_first_receive_never_reached_the_handler_is_received_once(
    harness: ActivationHarness,
) -> None:
    """The event source mapping received a message, but the invocation never ran the handler (a slow cold
    start, an init that timed out): SQS delivers it again with a receive count of 2. It is still counted
    `received`, once: received = delivered + skipped + DLQ."""
    before = harness.report("rainfocus")
    fake = harness.fake("rainfocus")
    harness.publish([ada("evt-cold-start", "2026-11-28T15:00:00Z", "Coldwater")])
    sqs = harness.stack.client("sqs")
    url = harness.outputs["RainfocusQueueUrl"]
    # Received through the SQS API and never handed to the function; hidden for 2 s only. The drain
    # below long-polls while it is in flight (bounded by its rounds): no sleep here.
    taken = sqs.receive_message(QueueUrl=url, VisibilityTimeout=2, WaitTimeSeconds=5).get("Messages", [])
    assert len(taken) == 1
    report, delta = drained(harness, before)

    assert [r for r in fake.requests_to("attendee/store") if b"Coldwater" in r.body] != []
    assert (delta("received"), delta("delivered"), delta("redelivered")) == (1, 1, 0)
    assert report.balanced


def test_com_08_a_record_retried_after_a_partial_batch_failure_is_received_once(
    harness: ActivationHarness,
) -> None:
    """The vendor fails a record once (503 on every in-process attempt): the batch reports it as a batch
    item failure, SQS delivers it again (receive count 2) and it is delivered. Received once."""
    before = harness.report("rainfocus")
    fake = harness.fake("rainfocus")
    fake.fail_next("attendee/store", 3, 503, body_contains=b"Retryville")
    harness.publish([ada("evt-retried", "2026-11-28T16:00:00Z", "Retryville")])
    report, delta = drained(harness, before)

    assert (delta("received"), delta("delivered"), delta("redelivered")) == (1, 1, 0)
    assert delta("retried") >= 1
    assert report.balanced
    assert calls_their_roles_refuse(harness, "rainfocus") == []  # its BatchWriteItem of `received` marks


def test_com_08_a_batch_whose_invocation_failed_its_init_is_received_once(
    harness: ActivationHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a loaded machine did to `test_erasure_e2e::test_com_08` (Bombora: 1 delivered + 2 skipped
    against 2 received): a cold sandbox missed the local runner's 10 s init limit, the invocation failed
    before the handler (`Runtime.InitError`), and the whole batch came back with a receive count of 2.
    Here the init fails once, on purpose; every message of the batch is still received once."""
    from local import lambda_runner

    runner = lambda_runner._runner
    assert runner is not None
    checkout = runner._checkout
    failed: list[str] = []

    def init_fails_once(fn: Any, log_path: Path) -> Any:
        if "rainfocus" in fn.function_name.lower() and not failed:
            failed.append(fn.function_name)
            with log_path.open("a") as log:  # as the runner logs an init that ran out of time
                log.write("INIT_REPORT Init Duration: 10000.00 ms Phase: init Status: timeout\n")
            return None, json.dumps({"errorMessage": "init timed out", "errorType": "Runtime.InitError"})
        return checkout(fn, log_path)

    monkeypatch.setattr(runner, "_checkout", init_fails_once)
    before = harness.report("rainfocus")
    harness.publish(
        [
            ada("evt-init-1", "2026-11-28T17:00:00Z", "Initville"),
            ada("evt-init-2", "2026-11-28T17:00:01Z", "Initburg"),
        ]
    )
    report, delta = drained(harness, before)

    assert len(failed) == 1
    assert delta("received") == delta("delivered") + delta("skipped") == 2
    assert report.balanced

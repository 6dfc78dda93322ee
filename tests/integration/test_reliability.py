"""Idempotency and order through the deployed stack (issue: reliability): a redelivered event is not
applied twice, an older event never overwrites a newer one, whatever the order of arrival."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from local.examples import sample_events
from local.harness import ActivationHarness

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

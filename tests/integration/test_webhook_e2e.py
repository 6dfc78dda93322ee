"""End to end through the deployed template: PutEvents -> bus -> rule -> queue -> poller -> function
-> fake webhook receiver (signed batches), retries from the queue and nothing lost (COM-01, COM-03,
COM-06, COM-08, COM-09)."""

from __future__ import annotations

import pytest

from local.examples import sample_events
from local.harness import ActivationHarness
from tests.support import calls_their_roles_refuse

pytestmark = pytest.mark.integration

OUTAGE = 3  # every in-process attempt of the first call: its records must go back to the queue


@pytest.fixture(scope="module")
def scenario(harness: ActivationHarness) -> ActivationHarness:
    harness.fake("webhook").fail_next("/hooks/activation", OUTAGE, 503, body={"error": "down"})
    harness.publish(sample_events())
    harness.drain()
    return harness


def test_com_01_members_of_the_activated_audience_reach_the_endpoint_signed(
    scenario: ActivationHarness,
) -> None:
    fake = scenario.fake("webhook")
    emails = {r["identities"]["email"] for r in fake.records.values()}
    assert {"ada.lovelace@example.com", "grace.hopper@example.org"} <= emails
    # The receiver stores only bodies whose HMAC matched: every stored record came signed.
    assert sum(len(batch) for batch in fake.batches) >= len(fake.records) > 0


def test_com_03_and_com_06_skipped_profiles_never_reach_the_endpoint(scenario: ActivationHarness) -> None:
    bodies = b"".join(r.body for r in scenario.fake("webhook").requests_to("/hooks/activation"))
    for email in (b"no.contact@", b"other.audience@"):
        assert email not in bodies
    reasons = scenario.report("webhook").reasons
    assert reasons["skipped:consent"] == 1
    assert reasons["skipped:audience_not_activated"] == 1


def test_com_09_an_outage_is_retried_from_the_queue_then_delivered(scenario: ActivationHarness) -> None:
    ledger = scenario.ledger("webhook")
    assert ledger["retried"] >= 1 and ledger["reason:retried:http_503"] >= 1
    assert "ada.lovelace@example.com" in {
        r["identities"]["email"] for r in scenario.fake("webhook").records.values()
    }


def test_com_08_nothing_is_lost(scenario: ActivationHarness) -> None:
    report = scenario.report("webhook")
    assert report.published > 0 and report.count("received") == report.published
    assert report.balanced, report


def test_every_call_the_webhook_made_is_one_its_role_allows(scenario: ActivationHarness) -> None:
    assert calls_their_roles_refuse(scenario, "webhook") == []

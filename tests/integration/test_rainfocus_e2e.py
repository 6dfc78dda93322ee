"""End to end through the deployed template: PutEvents -> bus -> rule -> queue -> poller -> function
-> fake RainFocus, and rejected records into the DLQ (RNF-01..06, COM-03, COM-06, COM-09)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from local.examples import sample_events
from local.harness import DESTINATION_TYPES, ActivationHarness
from tests.support import calls_their_roles_refuse

pytestmark = pytest.mark.integration

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"

TRANSIENT_FAILURES = 3  # every in-process attempt of one call: the record must go back to the queue


@pytest.fixture(scope="module")
def scenario(harness: ActivationHarness) -> ActivationHarness:
    """All sample events published once, with Grace's first call failing transiently."""
    harness.fake("rainfocus").fail_next(
        "attendee/store",
        TRANSIENT_FAILURES,
        503,
        body={"responseCode": "503", "responseMessage": "busy"},
        body_contains=b"grace.hopper",
    )
    harness.publish(sample_events())
    harness.drain()
    return harness


def attendee_emails(harness: ActivationHarness) -> set[str]:
    return {email for _, email in harness.fake("rainfocus").attendees}


def test_rnf_05_members_of_the_activated_audience_become_attendees(scenario: ActivationHarness) -> None:
    attendees = scenario.fake("rainfocus").attendees
    assert attendee_emails(scenario) == {"ada.lovelace@example.com", "grace.hopper@example.org"}
    ada = attendees[("expo2026", "ada.lovelace@example.com")]
    assert {k: ada[k] for k in ("firstname", "lastname", "companyname", "countryid", "state", "zip")} == {
        "firstname": "Ada",
        "lastname": "Lovelace",
        "companyname": "Analytical Engines Ltd",
        "countryid": "US",
        "state": "MA",
        "zip": "02110",
    }


def test_com_03_and_com_06_skipped_profiles_never_reach_the_vendor(scenario: ActivationHarness) -> None:
    bodies = b"".join(r.body for r in scenario.fake("rainfocus").requests_to("attendee/store"))
    for email in (b"no.contact@", b"other.audience@", b"alan.turing@", b"bad.country@"):
        assert email not in bodies
    reasons = scenario.report("rainfocus").reasons
    assert reasons["skipped:consent"] == 1
    assert reasons["skipped:audience_not_activated"] == 1
    assert reasons["skipped:audience_exited"] == 1


def test_com_09_rejected_records_are_in_the_dlq_with_their_reason(scenario: ActivationHarness) -> None:
    messages = scenario.dlq_messages("rainfocus")
    by_reason = {m["MessageAttributes"]["reason"]["StringValue"]: m for m in messages}
    assert set(by_reason) == {"malformed_event", "invalid_field:countryid"}
    invalid = by_reason["invalid_field:countryid"]
    assert "countryid" in invalid["MessageAttributes"]["detail"]["StringValue"]
    # The body is the original EventBridge event: replayable once the cause is fixed.
    assert json.loads(invalid["Body"])["detail"]["eventId"] == "evt-0005"


def test_a_transient_vendor_failure_is_retried_from_the_queue_then_delivered(
    scenario: ActivationHarness,
) -> None:
    grace_calls = [
        r for r in scenario.fake("rainfocus").requests_to("attendee/store") if b"grace.hopper" in r.body
    ]
    assert len(grace_calls) == TRANSIENT_FAILURES + 1
    ledger = scenario.ledger("rainfocus")
    assert ledger["retried"] == 1
    assert ledger["reason:retried:http_503"] == 1
    assert "grace.hopper@example.org" in attendee_emails(scenario)


@pytest.mark.parametrize("destination_type", DESTINATION_TYPES)
def test_nothing_is_lost_per_destination(scenario: ActivationHarness, destination_type: str) -> None:
    report = scenario.report(destination_type)
    assert report.published > 0
    assert report.count("received") == report.published
    assert report.balanced, report


def test_destinations_not_built_yet_reject_with_not_implemented(scenario: ActivationHarness) -> None:
    not_built = [
        t
        for t in DESTINATION_TYPES
        if "not_implemented_handler" in (FUNCTIONS / t / "handler.py").read_text()
    ]
    for destination_type in not_built:
        assert set(scenario.report(destination_type).dlq_reasons) == {"not_implemented"}


def test_com_08_outcomes_are_counted_per_instance_and_audience(scenario: ActivationHarness) -> None:
    per_audience = scenario.ledger("rainfocus", "rainfocus#rainfocus-expo2026#aud-expo-invitees")
    assert per_audience["delivered"] == 2
    assert per_audience["skipped"] == 2  # consent withdrawn, exited


def test_com_06_no_plain_email_or_secret_in_any_function_log(scenario: ActivationHarness) -> None:
    logs = "\n".join(scenario.stack.log_lines())
    assert "batch done" in logs  # the logs were captured at all
    fake = scenario.fake("rainfocus")
    assert re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", logs) is None
    for secret in (fake.client_secret, *fake.tokens):
        assert secret not in logs


def test_every_call_the_functions_made_is_one_their_roles_allow(scenario: ActivationHarness) -> None:
    # Before the next test: it starts a second stack, and moto's state is per process.
    assert calls_their_roles_refuse(scenario, "rainfocus") == []


def test_com_09_a_record_that_keeps_failing_reaches_the_dlq_after_max_receives(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with ActivationHarness(workdir=tmp_path_factory.mktemp("poison")) as harness:
        fake = harness.fake("rainfocus")
        fake.fail_next("attendee/store", 10_000, 500, body={"responseCode": "500", "responseMessage": "down"})
        harness.publish([e for e in sample_events() if e["detail"]["eventId"] == "evt-0001"])
        harness.drain()
        report = harness.report("rainfocus")
        # The last allowed receive (maxReceiveCount 5) sends it to the DLQ with the reason it kept failing for.
        assert report.dlq_reasons == {"retries_exhausted:http_500": 1}
        assert (report.count("retried"), report.count("rejected")) == (4, 1)
        assert report.balanced
        assert fake.attendees == {}

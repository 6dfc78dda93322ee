"""End to end through the deployed template: PutEvents -> bus -> rule -> queue -> poller -> Outreach
function -> fake Outreach, rejected records into the DLQ (OUT-01..07, COM-03, COM-06, COM-09).

The connection was authorised by the documented one-time step: the fake's Plug runs
`outreach.authorize.exchange` against the stack's Secrets Manager when the harness starts.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from local.examples import sample_events
from local.fakes.outreach import SAMPLE_PROSPECTS, SOAK_PROSPECTS, FakeOutreach
from local.harness import ActivationHarness
from outreach.client import BAD_REQUEST_MESSAGE
from tests.support import calls_their_roles_refuse

pytestmark = pytest.mark.integration

EXTRA_EVENTS = Path(__file__).resolve().parents[2] / "events" / "outreach"
SECRET = "activation-local/outreach/sales"
THROTTLE_SECONDS = 5  # longer than the 2 s the client waits in-process: the record must go back to SQS


def extra(*names: str) -> list[dict[str, Any]]:
    return [json.loads((EXTRA_EVENTS / f"{name}.json").read_text()) for name in names]


@pytest.fixture(scope="module")
def scenario(harness: ActivationHarness) -> ActivationHarness:
    harness.publish(sample_events())
    harness.drain()
    return harness


def fake_of(harness: ActivationHarness) -> FakeOutreach:
    fake: FakeOutreach = harness.fake("outreach")
    return fake


def dlq_by_reason(harness: ActivationHarness) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for message in harness.dlq_messages("outreach"):
        reason = message["MessageAttributes"].get("reason", {}).get("StringValue", "-")
        grouped.setdefault(reason, []).append(message)
    return grouped


def test_out_01_the_one_time_authorization_left_a_token_the_functions_use_and_rotate(
    scenario: ActivationHarness,
) -> None:
    fake = fake_of(scenario)
    stored = json.loads(
        scenario.stack.client("secretsmanager").get_secret_value(SecretId=SECRET)["SecretString"]
    )
    assert fake.grants == ["authorization_code"]  # exchanged by outreach.authorize at start-up
    assert stored["refreshToken"] == fake.latest_refresh_token
    assert stored["cachedToken"]["accessToken"] in fake.access_tokens
    bearer = {r.header("authorization") for r in fake.patches()}
    assert bearer == {f"Bearer {stored['cachedToken']['accessToken']}"}


def test_out_03_and_04_members_get_their_status_in_custom_n_and_mapped_attributes(
    scenario: ActivationHarness,
) -> None:
    prospects = fake_of(scenario).prospects
    ada, grace, alan, no_contact = (prospects[i] for i in (1001, 1002, 1003, 1004))
    assert (ada["custom4"], ada["firstName"], ada["lastName"], ada["title"]) == (
        "realized", "Ada", "Lovelace", "Chief Engineer",
    )  # fmt: skip
    assert (grace["custom4"], grace["company"]) == ("realized", "US Navy")
    assert alan["custom4"] == "exited"  # COM-04: an exit writes the exited status
    assert no_contact == SAMPLE_PROSPECTS[1004]  # consent 'n': never sent (COM-06)


def test_out_02_a_profile_without_outreach_id_is_in_the_dlq_with_its_reason(
    scenario: ActivationHarness,
) -> None:
    by_reason = dlq_by_reason(scenario)
    assert set(by_reason) == {"malformed_event", "invalid_field:OutreachId"}
    (missing,) = by_reason["invalid_field:OutreachId"]
    assert "OutreachId is mandatory" in missing["MessageAttributes"]["detail"]["StringValue"]
    assert json.loads(missing["Body"])["detail"]["eventId"] == "evt-0005"  # replayable as it came


def test_com_03_and_com_06_skipped_profiles_never_reach_outreach(scenario: ActivationHarness) -> None:
    reasons = scenario.report("outreach").reasons
    assert (reasons["skipped:consent"], reasons["skipped:audience_not_activated"]) == (1, 1)
    assert len(fake_of(scenario).patches()) == 3  # Ada, Grace, Alan


def test_out_04_update_only_no_prospect_is_ever_created(scenario: ActivationHarness) -> None:
    fake = fake_of(scenario)
    assert fake.created == 0
    assert set(fake.prospects) == set(SAMPLE_PROSPECTS) | set(SOAK_PROSPECTS)
    assert [r for r in fake.requests if r.method == "POST" and r.path.startswith("/api/")] == []


def test_out_06_an_invalid_mapping_id_is_rejected_naming_audience_and_id_and_the_rest_goes_through(
    scenario: ActivationHarness,
) -> None:
    fake = fake_of(scenario)
    fake.undefined_custom_fields = {7}  # this Outreach org has no custom field 7
    try:
        scenario.publish(extra("profile-webinar-realized", "profile-expo-title-changed"))
        scenario.drain()
    finally:
        fake.undefined_custom_fields = set()
    (message,) = dlq_by_reason(scenario)["invalid_mapping_id"]
    detail = message["MessageAttributes"]["detail"]["StringValue"]
    assert BAD_REQUEST_MESSAGE in detail
    assert "Audience 'Webinar attendees' (aud-outreach-webinar) has mapping ID 7" in detail
    assert json.loads(message["Body"])["detail"]["eventId"] == "evt-out-0001"
    ada = fake.prospects[1001]
    assert ada["title"] == "Head of Analytical Engines" and "custom7" not in ada


def test_out_02_an_unknown_or_non_numeric_outreach_id_is_rejected(scenario: ActivationHarness) -> None:
    scenario.publish(extra("profile-unknown-prospect", "profile-non-numeric-outreach-id"))
    scenario.drain()
    by_reason = dlq_by_reason(scenario)
    assert json.loads(by_reason["prospect_not_found"][0]["Body"])["detail"]["eventId"] == "evt-out-0003"
    assert {json.loads(m["Body"])["detail"]["eventId"] for m in by_reason["invalid_field:OutreachId"]} == {
        "evt-0005", "evt-out-0004",
    }  # fmt: skip
    assert 424242 not in fake_of(scenario).prospects


def test_out_05_a_429_holds_the_record_in_the_queue_until_the_reset_then_delivers_it(
    scenario: ActivationHarness,
) -> None:
    fake, poller = fake_of(scenario), scenario.stack.poller
    poller.fast_retry = False  # keep the visibility the function set (the poller would reset it to 0)
    try:
        reset = fake.throttle_for(THROTTLE_SECONDS)
        scenario.publish(extra("profile-rate-limited"))
        poller.poll_once()
        assert [e.status for e in fake.log if e.path == "/api/v2/prospects/1002"][-1:] == [429]
        sqs = scenario.stack.client("sqs")
        counts = sqs.get_queue_attributes(
            QueueUrl=scenario.outputs["OutreachQueueUrl"],
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        # Waiting is not failing (issue 14): the record waits as a delayed copy, its receive not used up.
        assert (
            counts["ApproximateNumberOfMessages"],
            counts["ApproximateNumberOfMessagesNotVisible"],
            counts["ApproximateNumberOfMessagesDelayed"],
        ) == ("0", "0", "1")
        budget = scenario.stack.client("dynamodb").get_item(
            TableName=scenario.outputs["StateTableName"],
            Key={"pk": {"S": f"rate#outreach#{SECRET}"}, "sk": {"S": "budget"}},
        )["Item"]
        assert float(budget["blockedUntil"]["N"]) >= reset - 1  # every invocation waits for the reset

        poller.drain(max_rounds=30, until=lambda: fake.prospects[1002].get("title") == "Commodore")
    finally:
        poller.fast_retry = True
    calls = [
        e for e in fake.log if e.path == "/api/v2/prospects/1002" and e.at >= reset - THROTTLE_SECONDS - 1
    ]
    assert [e.status for e in calls] == [429, 200]  # not hammered: one call, then one after the reset
    assert calls[1].at >= reset - 1
    assert scenario.ledger("outreach")["reason:retried:http_429"] == 1
    scenario.drain()


def test_com_06_no_email_token_or_secret_in_any_function_log(scenario: ActivationHarness) -> None:
    logs = "\n".join(scenario.stack.log_lines())
    fake = fake_of(scenario)
    assert re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", logs) is None
    for secret in (fake.client_secret, *fake.issued_refresh_tokens, *fake.access_tokens):
        assert secret not in logs


def test_nothing_is_lost(scenario: ActivationHarness) -> None:
    report = scenario.report("outreach")
    assert (
        report.published
        == len([e for e in sample_events() if e["detail-type"] != "Account Audience Membership Changed"]) + 5
    )
    assert report.balanced, report
    assert report.count("delivered") == 5  # Ada, Grace, Alan, Ada's title change, Grace after the 429


def test_every_call_the_functions_made_is_one_their_roles_allow(scenario: ActivationHarness) -> None:
    assert calls_their_roles_refuse(scenario, "outreach") == []

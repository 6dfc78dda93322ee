"""End to end through the deployed template: PutEvents -> bus -> rule -> queue -> poller -> Marketo
function -> fake Marketo, rejected records into the DLQ (MKT-01..09, COM-03, COM-04, COM-06, COM-08).

The example instance syncs audience and profile, updates and creates, partition "Expo", dedupe on
email. The fake starts as the plug seeds it (local/fakes/marketo.py): Alan is a lead in the expo list,
Grace has two leads, the others are unknown to Marketo.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from local.alarms import evaluate_queue_alarms
from local.examples import sample_events
from local.fakes.marketo import EXPO_LIST_ID as EXPO_LIST
from local.fakes.marketo import FakeMarketo
from local.harness import ActivationHarness
from tests.support import calls_their_roles_refuse

pytestmark = pytest.mark.integration

EVENTS = Path(__file__).resolve().parents[2] / "events" / "marketo"
AUDIENCE_KEY = "marketo#marketo-expo2026#aud-expo-invitees"


def marketo_events() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(EVENTS.glob("*.json"))]


@pytest.fixture(scope="module")
def scenario(harness: ActivationHarness) -> ActivationHarness:
    profiles = [e for e in sample_events() if e["detail-type"] != "Account Audience Membership Changed"]
    harness.publish(profiles + marketo_events())
    harness.drain()
    return harness


def fake_of(harness: ActivationHarness) -> FakeMarketo:
    fake: FakeMarketo = harness.fake("marketo")
    return fake


def email_of(fake: FakeMarketo, lead_id: int) -> str:
    return str(fake.leads[lead_id].get("email"))


def test_mkt_02_07_new_members_become_leads_in_the_partition_and_join_the_list(
    scenario: ActivationHarness,
) -> None:
    fake = fake_of(scenario)
    (ada,) = fake.leads_where("email", "ada.lovelace@example.com")
    assert {k: ada[k] for k in ("firstName", "lastName", "title", "company", "city", "country")} == {
        "firstName": "Ada",
        "lastName": "Lovelace",
        "title": "Chief Engineer",
        "company": "Analytical Engines Ltd",
        "city": "Boston",
        "country": "US",
    }
    assert fake.partition_of(ada["id"]) == "Expo"
    members = {email_of(fake, i) for i in fake.members(EXPO_LIST)}
    # Ada, Grace (most recent of her two leads) and bad.country (Marketo takes any country text).
    assert members == {"ada.lovelace@example.com", "grace.hopper@example.org", "bad.country@example.com"}


def test_mkt_08_only_the_most_recently_updated_of_two_matching_leads_is_updated(
    scenario: ActivationHarness,
) -> None:
    fake = fake_of(scenario)
    older, newer = sorted(fake.leads_where("email", "grace.hopper@example.org"), key=lambda lead: lead["id"])
    assert newer["title"] == "Rear Admiral" and "title" not in older
    assert newer["id"] in fake.members(EXPO_LIST) and older["id"] not in fake.members(EXPO_LIST)


def test_com_04_an_exit_removes_the_lead_from_the_list_and_leaves_the_lead(
    scenario: ActivationHarness,
) -> None:
    fake = fake_of(scenario)
    (alan,) = fake.leads_where("email", "alan.turing@example.co.uk")
    assert alan["id"] not in fake.members(EXPO_LIST)
    assert "city" not in alan  # leaving an audience writes no attribute


def test_com_03_and_com_06_skipped_profiles_never_reach_marketo(scenario: ActivationHarness) -> None:
    fake = fake_of(scenario)
    bodies = b"".join(r.body + json.dumps(r.query).encode() for r in fake.requests)
    for email in (b"no.contact@", b"other.audience@"):
        assert email not in bodies
    reasons = scenario.report("marketo").reasons
    assert reasons["skipped:consent"] == 1
    assert reasons["skipped:audience_not_activated"] == 1
    assert reasons["skipped:lead_not_found"] == 1  # Kurt left the audience without ever being a lead
    assert reasons["skipped:missing_dedupe_value"] == 1  # the profile without an email: counted, not a DLQ
    assert fake.leads_where("email", "kurt.godel@example.at") == []


def test_com_09_rejected_records_are_in_the_dlq_with_the_marketo_code(scenario: ActivationHarness) -> None:
    messages = scenario.dlq_messages("marketo")
    by_reason = {m["MessageAttributes"]["reason"]["StringValue"]: m for m in messages}
    # The profile without an e-mail (the dedupe value) is a skip, not a rejection (MKT-05).
    assert set(by_reason) == {"malformed_event", "marketo_1001"}
    refused = by_reason["marketo_1001"]
    assert "integer" in refused["MessageAttributes"]["detail"]["StringValue"]
    assert json.loads(refused["Body"])["detail"]["eventId"] == "evt-mkto-0001"  # replayable as is
    assert fake_of(scenario).leads_where("email", "charles.babbage@example.com") == []


def test_com_08_nothing_is_lost_and_counts_are_kept_per_audience(scenario: ActivationHarness) -> None:
    report = scenario.report("marketo")
    assert report.published == 10 and report.count("received") == report.published
    assert report.balanced, report
    per_audience = scenario.ledger("marketo", AUDIENCE_KEY)
    assert per_audience["delivered"] == 4  # Ada, Grace, Alan's exit, bad.country
    assert per_audience["rejected"] == 1  # Charles (1001)
    assert per_audience["skipped"] == 3  # consent, Kurt, the profile without an email


def test_mkt_limits_calls_were_batched_and_within_marketo_limits(scenario: ActivationHarness) -> None:
    fake = fake_of(scenario)
    assert all(len(r.json()["input"]) <= 300 for r in fake.calls_to("sync"))
    assert fake.max_calls_in_any_window(20.0) <= 100 and fake.peak_in_flight <= 10
    assert len(fake.calls_to("identity")) == 1  # one token for every invocation
    assert fake.duplicate_entities() == []


def test_com_06_no_plain_email_or_secret_in_the_marketo_function_log(scenario: ActivationHarness) -> None:
    logs = "\n".join(line for line in scenario.stack.log_lines() if "marketo" in line)
    assert "batch done" in logs
    assert re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", logs) is None
    fake = fake_of(scenario)
    for secret in (fake.client_secret, *fake.issued_tokens):
        assert secret not in logs


def test_every_call_the_functions_made_is_one_their_roles_allow(scenario: ActivationHarness) -> None:
    assert calls_their_roles_refuse(scenario, "marketo") == []


# The two below run last: they publish and evaluate after the books above were checked.


def test_com_01_a_change_reaches_marketo_through_its_queue_trigger_alone(scenario: ActivationHarness) -> None:
    stack, outputs = scenario.stack, scenario.outputs
    function = outputs["MarketoFunctionName"]
    mappings = stack.client("lambda").list_event_source_mappings(FunctionName=function)["EventSourceMappings"]
    queue_name = outputs["MarketoQueueUrl"].rsplit("/", 1)[1]
    assert [m["EventSourceArn"].rsplit(":", 1)[1] for m in mappings] == [queue_name]
    assert all(m["MaximumBatchingWindowInSeconds"] <= 20 for m in mappings)  # seconds, not a nightly job
    schedules = stack.client("scheduler").list_schedules()["Schedules"]
    assert [s for s in schedules if function in json.dumps(s, default=str)] == []
    for rule in stack.client("events").list_rules()["Rules"]:  # default bus: scheduled rules live there
        targets = stack.client("events").list_targets_by_rule(Rule=rule["Name"])["Targets"]
        assert not ("ScheduleExpression" in rule and any(function in t["Arn"] for t in targets))

    event = json.loads(json.dumps(marketo_events()[0]))
    event["detail"]["eventId"] = "evt-com-01-streaming"
    event["detail"]["profile"]["identities"] = {"email": "streaming.check@example.com"}
    event["detail"]["profile"]["consents"] = {}
    event["detail"]["profile"]["attributes"].setdefault("organization", {})["employees"] = 12
    scenario.publish([event])
    scenario.drain()  # the event source mapping's poll of the queue: the only thing that invokes it
    assert fake_of(scenario).leads_where("email", "streaming.check@example.com") != []


def test_com_07_a_dlq_message_fires_the_alarm_into_the_alarm_topic(scenario: ActivationHarness) -> None:
    """moto never evaluates alarms: local/alarms.py does CloudWatch's part for queue-depth alarms, so the
    template's alarm (metric, dimension, threshold, actions) and the topic's delivery are what is tested."""
    stack, outputs = scenario.stack, scenario.outputs
    sqs, sns, cloudwatch = stack.client("sqs"), stack.client("sns"), stack.client("cloudwatch")
    assert scenario.dlq_messages("marketo")  # rejected records wait in the DLQ
    inbox = sqs.create_queue(QueueName="operator-inbox")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=outputs["AlarmTopicArn"], Protocol="sqs", Endpoint=inbox_arn)

    evaluate_queue_alarms(cloudwatch, sqs, sns)

    notifications = [
        json.loads(json.loads(m["Body"])["Message"])
        for m in sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages", [])
    ]
    dlq_name = outputs["MarketoDeadLetterQueueUrl"].rsplit("/", 1)[1]
    (fired,) = [
        n
        for n in notifications
        if n["NewStateValue"] == "ALARM"
        and {"name": "QueueName", "value": dlq_name} in n["Trigger"]["Dimensions"]
    ]
    assert fired["AlarmDescription"].startswith("Marketo records are waiting in the DLQ")
    (alarm,) = cloudwatch.describe_alarms(AlarmNames=[fired["AlarmName"]])["MetricAlarms"]
    assert alarm["StateValue"] == "ALARM"

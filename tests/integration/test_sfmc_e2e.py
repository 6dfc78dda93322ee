"""The SFMC ingestion end to end in the local stack: the real statemachine.asl.json in moto's
interpreter, its Lambda tasks in warm subprocesses, the fake SFMC over HTTP, S3 landing, the bus, and
the person destinations' queues and functions (SFMC-01..05).

The runs build on each other (module-scoped fixtures, in order): a first run of the three use-case
data extensions delivered to RainFocus; an incremental run over a data extension of thousands of rows
with paging, a 429 and an expired token; a run where one data extension is forbidden (the execution
fails, the other commits) and its re-run; and the hourly schedule's tick.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from activation_core import naming
from local import moto_speedups, sfn_fast_time
from local.fakes.sfmc import (
    BASE_TIME,
    FakeSfmc,
    activity_row,
    campaign_engagement,
    contact_row,
    contacts,
    example_ingestion_config,
    sfmc_date,
    throttle_response,
    web_activity,
)
from local.harness import DESTINATION_TYPES, MANIFEST, STACK_NAME, ActivationHarness, rule_destination
from sfmc_ingestion import cli
from tests.support import calls_their_roles_refuse
from tests.unit.sfmc_ingestion.history import pages_execution_events, run_execution_events

pytestmark = [
    pytest.mark.integration,
    # moto has no CloudFormation model for the landing bucket's TLS-only policy (it skips it, and says so).
    pytest.mark.filterwarnings("ignore:Tried to parse AWS..S3..BucketPolicy:UserWarning"),
]

ROOT = Path(__file__).resolve().parents[2]
ASL_FOLDER = ROOT / "functions" / "sfmc_ingestion"
CONTACTS, CAMPAIGN, ACTIVITY = 16, 8, 8
HISTORIC_ROWS = 3000  # already in the data extension, older than its watermark: never read again
NEW_ACTIVITY = 100
PAGE_SIZE = 40
PAGES_PER_EXECUTION = 2  # 3 pages: two chained pages executions


@pytest.fixture(scope="module")
def stack(harness: ActivationHarness) -> Iterator[ActivationHarness]:
    """The harness with fast Step Functions waits and smaller use-case data extensions."""
    waits_applied, speedups_applied = sfn_fast_time.applied(), moto_speedups.applied()
    sfn_fast_time.apply()
    moto_speedups.apply()  # moto's EventBridge fan-out: 55 -> 20 ms per event
    fake = sfmc(harness)
    fake.add(contacts(CONTACTS))
    fake.add(campaign_engagement(CAMPAIGN))
    fake.add(web_activity(ACTIVITY))
    yield harness
    if not waits_applied:
        sfn_fast_time.restore()
    if not speedups_applied:
        moto_speedups.restore()


def sfmc(harness: ActivationHarness) -> FakeSfmc:
    fake: FakeSfmc = harness.fake("sfmc")
    return fake


def run(harness: ActivationHarness, *keys: str) -> dict[str, Any]:
    """A manual run through the CLI's trigger; returns the execution and its run record."""
    sfn = harness.stack.client("stepfunctions")
    arn = cli.start_run(harness.outputs, data_extensions=keys, sfn=sfn)
    execution = harness.stack.wait_execution(arn, max_rounds=6000)
    runs = cli.status(harness.outputs, runs=20, dynamodb=harness.stack.client("dynamodb"))["runs"]
    (record,) = [r for r in runs if r["runId"] == arn.rsplit(":", 1)[1]]
    by_key = {r["dataExtension"]: r for r in record["dataExtensions"]}
    return {"arn": arn, "execution": execution, "record": record, "results": by_key}


def queue_depths(harness: ActivationHarness) -> dict[str, int]:
    sqs = harness.stack.client("sqs")
    depths = {}
    for destination in DESTINATION_TYPES:
        url = harness.outputs[naming.output_name(destination, "QueueUrl")]
        attrs = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        depths[destination] = sum(int(v) for v in attrs.values())
    return depths


def profile_destinations(harness: ActivationHarness) -> list[str]:
    """Destinations whose rule (as deployed) routes `Profile Updated` events to their queue."""
    events = harness.stack.client("events")
    rules = events.list_rules(EventBusName=harness.outputs["EventBusName"])["Rules"]
    routed = [
        rule_destination(rule["Name"])
        for rule in rules
        if "Profile Updated" in json.loads(rule["EventPattern"]).get("detail-type", [])
    ]
    return sorted(t for t in routed if t)


@pytest.fixture(scope="module")
def first_run(stack: ActivationHarness) -> dict[str, Any]:
    before = queue_depths(stack)
    result = run(stack)
    result["queued"] = {t: queue_depths(stack)[t] - before[t] for t in DESTINATION_TYPES}
    published = result["record"]["totals"]["eventsPublished"]
    for destination in profile_destinations(stack):
        stack.published[destination] += published  # the harness counts what it published itself
    stack.drain()
    return result


def test_sfmc_04_contact_campaign_and_activity_rows_reach_a_destination(first_run: dict[str, Any]) -> None:
    assert first_run["execution"]["status"] == "SUCCEEDED"
    results = first_run["results"]
    assert {k: (r["rowsRead"], r["eventsPublished"], r["rowsFailed"]) for k, r in results.items()} == {
        "Contacts": (CONTACTS, CONTACTS - 1, 1),  # contact 5 has no email: landed, counted failed
        "Campaign_Engagement": (CAMPAIGN, CAMPAIGN, 0),
        "Web_Activity": (ACTIVITY, ACTIVITY, 0),
    }


def test_sfmc_04_every_published_profile_reached_every_person_destination(
    stack: ActivationHarness, first_run: dict[str, Any]
) -> None:
    published = first_run["record"]["totals"]["eventsPublished"]
    routed = profile_destinations(stack)
    assert {d.type for d in MANIFEST.destinations if d.entity == "profile"} <= set(routed)
    assert {t: first_run["queued"][t] for t in routed} == dict.fromkeys(routed, published)
    for destination in routed:
        report = stack.report(destination)
        assert report.count("received") == report.published, destination
        assert report.balanced, report


def test_sfmc_04_contacts_of_the_upload_audience_became_rainfocus_attendees(
    stack: ActivationHarness, first_run: dict[str, Any]
) -> None:
    fake = sfmc(stack)
    expected = {
        row["EmailAddress"]
        for row in fake.de("Contacts").rows
        if row["EmailAddress"] and row["EmailOptIn"] == "True"  # contact 6 opted out of email
    }
    attendees = stack.fake("rainfocus").attendees
    assert {email for _, email in attendees} == expected
    ada = attendees[("expo2026", "katherine.lovelace.3@example.com")]
    assert {k: ada[k] for k in ("firstname", "lastname", "companyname", "countryid", "state")} == {
        "firstname": "Katherine",
        "lastname": "Lovelace",
        "companyname": "Lovelace Labs",
        "countryid": "US",
        "state": "CA",
    }
    reasons = stack.report("rainfocus").reasons
    assert reasons["skipped:consent"] == 1
    assert reasons["skipped:audience_not_activated"] == CAMPAIGN + ACTIVITY  # no audience: skipped, counted


def test_sfmc_05_pages_are_landed_in_s3_partitioned_by_data_extension_and_date(
    stack: ActivationHarness, first_run: dict[str, Any]
) -> None:
    s3 = stack.stack.client("s3")
    bucket = stack.outputs["SfmcLandingBucketName"]
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="sfmc/")["Contents"])
    run_id = first_run["record"]["runId"]
    date = first_run["record"]["startedAt"][:10]
    assert keys == [
        f"sfmc/source=sfmc-main/data_extension={key}/ingestion_date={date}/run={run_id}/page-00001.jsonl.gz"
        for key in ("Campaign_Engagement", "Contacts", "Web_Activity")
    ]
    body = s3.get_object(Bucket=bucket, Key=keys[1])["Body"].read()
    lines = [json.loads(line) for line in gzip.GzipFile(fileobj=io.BytesIO(body)).read().splitlines()]
    assert len(lines) == CONTACTS
    assert sum(line["status"] == "failed" for line in lines) == 1
    encryption = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert encryption["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def pages_executions(harness: ActivationHarness) -> list[dict[str, Any]]:
    sfn = harness.stack.client("stepfunctions")
    machine = harness.outputs["SfmcPagesStateMachineArn"]
    return list(sfn.list_executions(stateMachineArn=machine, maxResults=1000)["executions"])


def history(harness: ActivationHarness, arn: str) -> list[dict[str, Any]]:
    sfn = harness.stack.client("stepfunctions")
    return list(sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"])


@pytest.fixture(scope="module")
def incremental_run(stack: ActivationHarness, first_run: dict[str, Any]) -> dict[str, Any]:
    """Web_Activity: thousands of historic rows (older than the watermark) plus 100 new ones, read in pages
    of 40; page 2 is throttled (429 + Retry-After) and every token expires after page 1."""
    fake = sfmc(stack)
    config = example_ingestion_config()
    for de in config["sources"][0]["dataExtensions"]:
        de["pageSize"] = PAGE_SIZE
    config["sources"][0]["pagesPerExecution"] = PAGES_PER_EXECUTION
    stack.stack.client("ssm").put_parameter(
        Name=stack.outputs["SfmcIngestionConfigParameterName"],
        Value=json.dumps(config),
        Type="String",
        Overwrite=True,
    )
    activity = fake.de("Web_Activity")
    historic = web_activity(HISTORIC_ROWS, start=10_001, base=BASE_TIME - timedelta(days=30))
    activity.rows.extend(historic.rows)
    activity.rows.extend(activity_row(n) for n in range(ACTIVITY + 1, ACTIVITY + 1 + NEW_ACTIVITY))
    status, body, headers = throttle_response(retry_after=5)

    def expire_then_throttle(f: FakeSfmc) -> None:
        f.expire_tokens()
        f.fail_next("/token/.*/rowset", 1, status, body=body, headers=headers)

    fake.on_page("Web_Activity", 1, expire_then_throttle)
    tokens_before = fake.token_requests
    sfn_fast_time.RECORDED.clear()
    before = queue_depths(stack)
    executions_before = {e["executionArn"] for e in pages_executions(stack)}
    result = run(stack, "Web_Activity")
    result["pages_executions"] = [
        e for e in pages_executions(stack) if e["executionArn"] not in executions_before
    ]
    result["queued"] = {t: queue_depths(stack)[t] - before[t] for t in DESTINATION_TYPES}
    result["token_requests"] = fake.token_requests - tokens_before
    result["retry_waits"] = list(sfn_fast_time.RECORDED.retries)
    return result


def test_sfmc_incremental_run_pages_through_a_large_data_extension(incremental_run: dict[str, Any]) -> None:
    assert incremental_run["execution"]["status"] == "SUCCEEDED"
    activity = incremental_run["results"]["Web_Activity"]
    # >= the watermark minus the 10-minute look-back: the first run's rows (4 minutes of them) are
    # re-read and recognised, the rest is new; the historic rows, a month older, are never read.
    assert activity["rowsExpected"] == NEW_ACTIVITY + ACTIVITY
    assert (activity["rowsRead"], activity["rowsDuplicate"], activity["eventsPublished"]) == (
        NEW_ACTIVITY + ACTIVITY,
        ACTIVITY,
        NEW_ACTIVITY,
    )
    assert activity["pages"] == 3  # 40 + 40 + 28, following links.next
    assert activity["watermarkAfter"] > activity["watermarkBefore"]


def test_sfmc_a_429_is_retried_by_the_state_machine_and_an_expired_token_is_refreshed_once(
    stack: ActivationHarness, incremental_run: dict[str, Any]
) -> None:
    events = [e for x in incremental_run["pages_executions"] for e in history(stack, x["executionArn"])]
    failures = [e for e in events if e["type"] == "LambdaFunctionFailed"]
    assert [e["lambdaFunctionFailedEventDetails"]["error"] for e in failures] == ["SfmcThrottled"]
    assert "Rate limit exceeded" in failures[0]["lambdaFunctionFailedEventDetails"]["cause"]
    assert len(incremental_run["retry_waits"]) == 1 and 0 <= incremental_run["retry_waits"][0] <= 5
    assert incremental_run["token_requests"] == 1  # the expired token was replaced once, then shared
    fake = sfmc(stack)
    first = next(r for r in fake.requests_to("/key/Web_Activity/rowset") if "$filter" in r.query)
    assert first.query["$filter"][0].startswith("OccurredAt gte '")


def test_sfmc_pages_run_in_chained_executions_each_with_a_bounded_history(
    stack: ActivationHarness, incremental_run: dict[str, Any]
) -> None:
    pages = json.loads((ASL_FOLDER / "pages.asl.json").read_text())
    chained = incremental_run["pages_executions"]
    assert len(chained) == 2 and {e["status"] for e in chained} == {"SUCCEEDED"}  # pages 1-2, then 3
    for execution in chained:
        events = history(stack, execution["executionArn"])
        read = sum(e["type"] == "LambdaFunctionSucceeded" for e in events)
        assert 1 <= read <= PAGES_PER_EXECUTION
        assert len(events) <= pages_execution_events(pages, read)  # the computed worst case holds in moto
    # The run's own history holds no page: it grows with the number of data extensions only.
    run_events = history(stack, incremental_run["arn"])
    scheduled = [
        e["lambdaFunctionScheduledEventDetails"]["resource"]
        for e in run_events
        if "lambdaFunctionScheduledEventDetails" in e
    ]
    assert not any(r.endswith("-sfmc-page") for r in scheduled)
    assert len(run_events) <= run_execution_events(
        json.loads((ASL_FOLDER / "statemachine.asl.json").read_text()), 1
    )


def test_sfmc_every_new_row_reached_the_person_destinations_queues(
    stack: ActivationHarness, incremental_run: dict[str, Any]
) -> None:
    routed = profile_destinations(stack)
    assert {t: incremental_run["queued"][t] for t in routed} == dict.fromkeys(routed, NEW_ACTIVITY)


@pytest.fixture(scope="module")
def failing_run(stack: ActivationHarness, incremental_run: dict[str, Any]) -> dict[str, Any]:
    fake = sfmc(stack)
    fake.forbidden.add("Campaign_Engagement")
    fake.upsert("Contacts", contact_row(CONTACTS + 1, modified=BASE_TIME + timedelta(days=1)))
    failed = run(stack, "Contacts", "Campaign_Engagement")
    fake.forbidden.clear()
    # A change stamps the delta column (its contract): the re-run must pick it up.
    changed = {**fake.de("Campaign_Engagement").rows[0], "Opens": "99"}
    fake.upsert("Campaign_Engagement", {**changed, "LastEngagedAt": sfmc_date(BASE_TIME + timedelta(days=1))})
    rerun = run(stack, "Campaign_Engagement")
    return {"failed": failed, "rerun": rerun}


def test_sfmc_05_a_failing_data_extension_fails_the_run_while_the_others_commit(
    stack: ActivationHarness, failing_run: dict[str, Any]
) -> None:
    failed = failing_run["failed"]
    assert failed["execution"]["status"] == "FAILED"
    assert failed["record"]["status"] == "FAILED"
    campaign, contacts_result = failed["results"]["Campaign_Engagement"], failed["results"]["Contacts"]
    assert (campaign["status"], campaign["error"]) == ("failed", "SfmcPermanent")
    assert "sfmc_403_20002" in campaign["cause"] and "Insufficient privileges" in campaign["cause"]
    assert campaign["watermarkAfter"] == campaign["watermarkBefore"]
    assert contacts_result["status"] == "succeeded"
    assert (
        contacts_result["eventsPublished"] == 1
        and contacts_result["watermarkAfter"] > contacts_result["watermarkBefore"]
    )


def test_sfmc_05_the_failed_execution_alarms_the_operators(
    stack: ActivationHarness, failing_run: dict[str, Any]
) -> None:
    cloudwatch = stack.stack.client("cloudwatch")
    alarms = cloudwatch.describe_alarms()["MetricAlarms"]
    runs = {"Name": "StateMachineArn", "Value": stack.outputs["SfmcIngestionStateMachineArn"]}
    (alarm,) = [a for a in alarms if a["MetricName"] == "ExecutionsFailed" and a["Dimensions"] == [runs]]
    assert alarm["Namespace"] == "AWS/States"
    assert alarm["AlarmActions"] == [stack.outputs["AlarmTopicArn"]]


def test_sfmc_a_rerun_after_the_failure_ingests_the_data_extension(failing_run: dict[str, Any]) -> None:
    rerun = failing_run["rerun"]
    assert rerun["execution"]["status"] == "SUCCEEDED"
    campaign = rerun["results"]["Campaign_Engagement"]
    assert (
        campaign["watermarkBefore"]
        == failing_run["failed"]["results"]["Campaign_Engagement"]["watermarkBefore"]
    )
    assert (campaign["status"], campaign["eventsPublished"]) == ("succeeded", 1)


def test_sfmc_05_the_status_command_shows_runs_and_watermarks(
    stack: ActivationHarness, failing_run: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["status", "--stack", STACK_NAME, "--runs", "3"]) == 0
    out = capsys.readouterr().out
    assert failing_run["failed"]["record"]["runId"] in out
    assert re.search(r"sfmc-main/Campaign_Engagement\s+failed", out)
    assert "Insufficient privileges" in out
    assert "sfmc-main#Web_Activity" in out


def test_sfmc_03_the_hourly_schedule_runs_only_what_is_due(
    stack: ActivationHarness, failing_run: dict[str, Any]
) -> None:
    scheduler = stack.stack.client("scheduler")
    machine = stack.outputs["SfmcIngestionStateMachineArn"]
    (summary,) = [s for s in scheduler.list_schedules()["Schedules"] if s["Target"]["Arn"] == machine]
    schedule = scheduler.get_schedule(Name=summary["Name"])
    assert schedule["ScheduleExpression"] == "rate(1 hour)"
    # moto never fires a schedule: one tick, exactly as the scheduler would start it.
    sfn = stack.stack.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=machine, input=schedule["Target"]["Input"])["executionArn"]
    assert stack.stack.wait_execution(arn, max_rounds=6000)["status"] == "SUCCEEDED"
    record = cli.status(stack.outputs, dynamodb=stack.stack.client("dynamodb"))["runs"][0]
    assert record["trigger"] == "schedule" and record["dataExtensions"] == []
    assert {s["reason"] for s in record["skipped"]} == {"not_due"}  # everything ran minutes ago


def test_com_06_no_plain_email_or_secret_in_the_ingestion_logs(
    stack: ActivationHarness, failing_run: dict[str, Any]
) -> None:
    logs = "\n".join(
        line
        for path in sorted(stack.stack.log_dir.glob("*sfmc*.log"))
        for line in path.read_text().splitlines()
    )
    assert "page done" in logs
    assert re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", logs) is None
    fake = sfmc(stack)
    for secret in (fake.client_secret, *fake.tokens):
        assert secret not in logs


def test_sfmc_05_rows_per_data_extension_are_emitted_as_metrics(
    stack: ActivationHarness, failing_run: dict[str, Any]
) -> None:
    documents = [
        json.loads(line)
        for path in stack.stack.log_dir.glob("*sfmc-summary*.log")
        for line in path.read_text().splitlines()
        if line.startswith('{"_aws"')
    ]
    emitted = {
        (doc["DataExtension"], metric["Name"])
        for doc in documents
        if "DataExtension" in doc
        for metric in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
    }
    for key in ("Contacts", "Campaign_Engagement", "Web_Activity"):
        for name in ("RowsRead", "RowsLanded", "EventsPublished", "RowsFailed", "DataExtensionFailed"):
            assert (key, name) in emitted
    failed = [d for d in documents if d.get("DataExtensionFailed") == [1.0]]
    assert [d["DataExtension"] for d in failed] == ["Campaign_Engagement"]


@pytest.fixture(scope="module")
def deletion_runs(stack: ActivationHarness, failing_run: dict[str, Any]) -> list[dict[str, Any]]:
    """Contacts gets a daily deletion check: a first check records the keys, two contacts are deleted in
    SFMC, the next check turns them into exits."""
    config = example_ingestion_config()
    contacts_de = next(d for d in config["sources"][0]["dataExtensions"] if d["key"] == "Contacts")
    contacts_de["deletionCheck"] = {"frequency": "day", "interval": 1}
    stack.stack.client("ssm").put_parameter(
        Name=stack.outputs["SfmcIngestionConfigParameterName"],
        Value=json.dumps(config),
        Type="String",
        Overwrite=True,
    )
    sfn, dynamodb = stack.stack.client("stepfunctions"), stack.stack.client("dynamodb")
    records = []
    for delete in (False, True):
        if delete:
            sfmc(stack).delete("Contacts", lambda row: row["SubscriberKey"] in {"SK-000002", "SK-000004"})
        arn = cli.start_run(stack.outputs, data_extensions=["Contacts"], sfn=sfn, check_deletions=True)
        execution = stack.stack.wait_execution(arn, max_rounds=6000)
        runs = cli.status(stack.outputs, runs=30, dynamodb=dynamodb)["runs"]
        (record,) = [r for r in runs if r["runId"] == arn.rsplit(":", 1)[1]]
        records.append({"execution": execution, "record": record})
    return records


def test_sfmc_rows_deleted_in_sfmc_become_exits_in_the_run_record(
    deletion_runs: list[dict[str, Any]],
) -> None:
    first, second = deletion_runs
    assert first["execution"]["status"] == second["execution"]["status"] == "SUCCEEDED"
    (baseline,) = [r for r in first["record"]["dataExtensions"] if r["mode"] == "keys"]
    (check,) = [r for r in second["record"]["dataExtensions"] if r["mode"] == "keys"]
    assert (baseline["rowsDeleted"], check["rowsDeleted"], check["exitsPublished"]) == (0, 2, 2)
    assert second["record"]["totals"]["exitsPublished"] == 2


def deletion_check_keys(stack: ActivationHarness) -> list[dict[str, Any]]:
    source = example_ingestion_config()["sources"][0]["id"]
    return list(
        stack.stack.client("dynamodb").query(
            TableName=stack.outputs["StateTableName"],
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"sfmc#keys#{source}#Contacts"}},
        )["Items"]
    )


def test_an_erasure_request_forgets_the_persons_deletion_check_keys_which_expire_anyway(
    deletion_runs: list[dict[str, Any]], stack: ActivationHarness
) -> None:
    """The deletion check keeps each row's identities (an exit must name the person): they expire
    DeletionKeyRetentionDays (default 400) after the last check, and an erasure request forgets them
    at once (the SFMC erasure queue and function), answered in `activation erasure status`."""
    from typer.testing import CliRunner

    from activation_cli.main import app

    held = deletion_check_keys(stack)
    assert len(held) >= 2
    now = time.time()
    assert all(now + 399 * 86400 <= int(item["ttl"]["N"]) <= now + 400 * 86400 + 1 for item in held)
    person = json.loads(held[0]["identities"]["S"])
    event = json.loads((ROOT / "events" / "erasure" / "profile-erasure-requested.json").read_text())
    event["detail"].update(requestId="dsr-sfmc-keys", eventId="evt-dsr-sfmc-keys")
    event["detail"]["profile"]["identities"] = person
    stack.publish([event])
    stack.drain()

    left = deletion_check_keys(stack)
    assert len(left) == len(held) - 1
    assert person not in [json.loads(item["identities"]["S"]) for item in left]
    result = CliRunner().invoke(app, ["erasure", "status", "dsr-sfmc-keys", "--stack", STACK_NAME, "--json"])
    answers = {(o["destination"], o["instance"]): o for o in json.loads(result.stdout)["outcomes"]}
    answer = answers[("stack", "sfmc-deletion-check-keys")]
    assert (answer["outcome"], answer["detail"]) == ("erased", "deletion-check keys forgotten: 1")


def test_every_call_the_ingestion_erasure_and_destinations_made_is_one_their_roles_allow(
    first_run: dict[str, Any], stack: ActivationHarness
) -> None:
    assert (
        calls_their_roles_refuse(
            stack, "sfmc-plan", "sfmc-page", "sfmc-commit", "sfmc-summary", "sfmc-erasure"
        )
        == []
    )

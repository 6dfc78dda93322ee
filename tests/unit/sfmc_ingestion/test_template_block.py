"""The `# ---- sfmc ingestion` block of template.yaml, as CloudFormation sees it after translation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TEMPLATE = Path(__file__).resolve().parents[3] / "template.yaml"


def statements(resources: dict[str, Any], function: str) -> list[dict[str, Any]]:
    role = resources[f"{function}Role"]["Properties"]
    return [s for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]


def test_the_landing_bucket_is_encrypted_and_never_public(resources: dict[str, Any]) -> None:
    bucket = resources["SfmcLandingBucket"]["Properties"]
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    policy = resources["SfmcLandingBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert policy["Effect"] == "Deny" and policy["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_state_machine_gets_its_tasks_and_an_hourly_schedule(resources: dict[str, Any]) -> None:
    machine = resources["SfmcIngestionStateMachine"]["Properties"]
    assert set(machine["DefinitionSubstitutions"]) == {
        "PlanFunctionArn",
        "PagesStateMachineArn",
        "CommitFunctionArn",
        "SummaryFunctionArn",
    }
    assert machine["DefinitionSubstitutions"]["PagesStateMachineArn"] == {"Ref": "SfmcPagesStateMachine"}
    pages = resources["SfmcPagesStateMachine"]["Properties"]
    assert set(pages["DefinitionSubstitutions"]) == {"PageFunctionArn"}
    (schedule,) = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Scheduler::Schedule"
        and r["Properties"]["Target"]["Arn"] == {"Ref": "SfmcIngestionStateMachine"}
    ]
    assert schedule["ScheduleExpression"] == "rate(1 hour)"
    assert json.loads(schedule["Target"]["Input"]) == {"trigger": "schedule"}


def test_sfmc_05_a_failed_execution_raises_an_alarm_to_the_topic(resources: dict[str, Any]) -> None:
    alarm = resources["SfmcIngestionFailedAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/States", "ExecutionsFailed")
    assert alarm["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": "SfmcIngestionStateMachine"}}]
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"


def test_the_page_task_reads_only_sfmc_secrets_and_writes_only_its_prefix(resources: dict[str, Any]) -> None:
    page = statements(resources, "SfmcPageFunction")
    secrets = [s for s in page if any("secretsmanager" in a for a in s["Action"])]
    assert secrets and all("${AWS::StackName}/sfmc/*" in json.dumps(s["Resource"]) for s in secrets)
    landing = next(s for s in page if s["Action"] == ["s3:PutObject"])
    assert "/sfmc/*" in json.dumps(landing["Resource"])
    assert all(s.get("Resource") != "*" for s in page)
    plan = statements(resources, "SfmcPlanFunction")
    assert not any("secretsmanager" in json.dumps(s) for s in plan)


def test_the_pages_machine_may_start_only_itself_and_the_run_only_it(resources: dict[str, Any]) -> None:
    own = statements(resources, "SfmcPagesStateMachine")
    (start,) = [s for s in own if s["Action"] == ["states:StartExecution"]]
    assert "stateMachine:${AWS::StackName}-sfmc-pages" in json.dumps(start["Resource"])
    name = resources["SfmcPagesStateMachine"]["Properties"]["StateMachineName"]
    assert "${AWS::StackName}-sfmc-pages" in json.dumps(name)
    run = statements(resources, "SfmcIngestionStateMachine")
    (start,) = [s for s in run if s["Action"] == ["states:StartExecution"]]
    assert start["Resource"] == {"Ref": "SfmcPagesStateMachine"}
    for role in (own, run):
        watch = next(s for s in role if "states:DescribeExecution" in s["Action"])
        assert "execution:${AWS::StackName}-sfmc-pages:*" in json.dumps(watch["Resource"])
        assert all(s.get("Resource") != "*" for s in role)


def test_the_functions_are_configured_by_environment(resources: dict[str, Any]) -> None:
    page = resources["SfmcPageFunction"]["Properties"]
    env = page["Environment"]["Variables"]
    assert {"LANDING_BUCKET_NAME", "EVENT_BUS_NAME", "STATE_TABLE_NAME", "ALLOW_LOOPBACK_URLS"} <= set(env)
    assert page["Handler"] == "sfmc_ingestion.tasks.page.lambda_handler"
    plan = resources["SfmcPlanFunction"]["Properties"]["Environment"]["Variables"]
    assert plan["INGESTION_CONFIG_PARAMETER_NAME"] == {"Ref": "SfmcIngestionConfigParameter"}


def test_the_outputs_name_what_operators_and_tests_need() -> None:
    text = TEMPLATE.read_text()
    for output in (
        "SfmcIngestionStateMachineArn",
        "SfmcPagesStateMachineArn",
        "SfmcLandingBucketName",
        "SfmcIngestionConfigParameterName",
        "SfmcPlanFunctionName",
        "SfmcPageFunctionName",
        "SfmcCommitFunctionName",
        "SfmcSummaryFunctionName",
    ):
        assert f"  {output}:" in text

"""template.yaml as CloudFormation sees it: cfn-lint clean, and the translated template holds the
per-destination wiring every destination relies on (queues, DLQs, event sources, alarms, IAM)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from activation_core import naming
from local.harness import DESTINATION_TYPES
from tests.support import parameter_bound

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "template.yaml"
FOURTEEN_DAYS = 14 * 24 * 3600


def of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in resources.items() if v["Type"] == kind}


def test_cfn_lint_passes() -> None:
    from cfnlint.api import lint_all

    matches = lint_all(TEMPLATE.read_text())
    # Errors and warnings, as the cfn-lint command reports by default (informational rules left out).
    assert [str(m) for m in matches if m.rule.id[0] in "EW"] == []


@pytest.mark.parametrize("destination", DESTINATION_TYPES)
def test_each_destination_has_queue_dlq_rule_and_function(
    resources: dict[str, Any], destination: str
) -> None:
    name = naming.logical_prefix(destination)
    queue = resources[f"{name}Queue"]["Properties"]
    dlq = resources[f"{name}DeadLetterQueue"]["Properties"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": [f"{name}DeadLetterQueue", "Arn"]}
    assert parameter_bound(dlq["MessageRetentionPeriod"]) == FOURTEEN_DAYS
    assert queue["SqsManagedSseEnabled"] is True and dlq["SqsManagedSseEnabled"] is True
    rule = resources[f"{name}Rule"]["Properties"]
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": [f"{name}Queue", "Arn"]}
    function = resources[f"{name}Function"]["Properties"]
    assert function["Handler"] == f"{destination}.handler.lambda_handler"
    assert function["Environment"]["Variables"]["DESTINATION_TYPE"] == destination
    # Lambda's guidance: the queue's visibility timeout is at least 6x the function timeout.
    assert queue["VisibilityTimeout"] >= 6 * function["Timeout"]


@pytest.mark.parametrize("destination", DESTINATION_TYPES)
def test_event_source_reports_partial_failures_with_a_window_and_bounded_concurrency(
    resources: dict[str, Any], destination: str
) -> None:
    (mapping,) = [
        r["Properties"]
        for r in of_type(resources, "AWS::Lambda::EventSourceMapping").values()
        if r["Properties"]["FunctionName"] == {"Ref": naming.logical_id(destination, "Function")}
    ]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["MaximumBatchingWindowInSeconds"] > 0
    assert "MaximumConcurrency" in mapping["ScalingConfig"]


@pytest.mark.parametrize("destination", DESTINATION_TYPES)
def test_com_01_destination_functions_stream_from_their_queue_and_run_on_no_schedule(
    resources: dict[str, Any], destination: str
) -> None:
    function = naming.logical_id(destination, "Function")
    function_ref = [{"Ref": function}, {"Fn::GetAtt": [function, "Arn"]}]
    # The one trigger is the queue's event source mapping, batching within seconds (never a nightly job).
    (mapping,) = [
        r["Properties"]
        for r in of_type(resources, "AWS::Lambda::EventSourceMapping").values()
        if r["Properties"]["FunctionName"] in function_ref
    ]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [naming.logical_id(destination, "Queue"), "Arn"]}
    assert 0 < mapping["MaximumBatchingWindowInSeconds"] <= 20
    # Nothing invokes it on a schedule: no EventBridge scheduled rule, no Scheduler schedule, no
    # permission for the events or scheduler services to invoke it.
    for rule in of_type(resources, "AWS::Events::Rule").values():
        targets = [t["Arn"] for t in rule["Properties"].get("Targets", [])]
        assert not ("ScheduleExpression" in rule["Properties"] and any(t in function_ref for t in targets))
    for schedule in of_type(resources, "AWS::Scheduler::Schedule").values():
        assert schedule["Properties"]["Target"]["Arn"] not in function_ref
    for permission in of_type(resources, "AWS::Lambda::Permission").values():
        if permission["Properties"]["FunctionName"] in function_ref:
            assert permission["Properties"]["Principal"] not in (
                "events.amazonaws.com",
                "scheduler.amazonaws.com",
            )


def test_the_functions_know_the_queues_max_receive_count() -> None:
    text = TEMPLATE.read_text()
    assert "MAX_RECEIVE_COUNT: !Ref MaxReceiveCount" in text
    assert "  MaxReceiveCount:\n    Type: Number\n    Default: 5\n" in text


def test_every_dlq_and_function_has_an_alarm_to_the_topic(resources: dict[str, Any]) -> None:
    alarms = of_type(resources, "AWS::CloudWatch::Alarm").values()
    watched = {json.dumps(a["Properties"]["Dimensions"][0]["Value"]) for a in alarms}
    for destination in DESTINATION_TYPES:
        name = naming.logical_prefix(destination)
        assert json.dumps({"Fn::GetAtt": [f"{name}DeadLetterQueue", "QueueName"]}) in watched
        assert json.dumps({"Ref": f"{name}Function"}) in watched
    assert all(a["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}] for a in alarms)


def test_tables_are_encrypted_and_expire_items(resources: dict[str, Any]) -> None:
    for table in of_type(resources, "AWS::DynamoDB::Table").values():
        assert table["Properties"]["SSESpecification"] == {"SSEEnabled": True}
        assert table["Properties"]["TimeToLiveSpecification"]["Enabled"] is True


@pytest.mark.parametrize("destination", DESTINATION_TYPES)
def test_functions_read_only_their_own_secrets(resources: dict[str, Any], destination: str) -> None:
    role = resources[naming.logical_id(destination, "FunctionRole")]["Properties"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    secret_statements = [s for s in statements if any("secretsmanager" in a for a in _actions(s))]
    assert secret_statements
    for statement in secret_statements:
        assert statement["Resource"] != "*"
        assert f"${{AWS::StackName}}/{destination}/*" in json.dumps(statement["Resource"])
    assert all(s.get("Resource") != "*" for s in statements if any("dynamodb" in a for a in _actions(s)))


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement.get("Action", [])
    return [actions] if isinstance(actions, str) else list(actions)


def test_outputs_name_every_queue_table_bus_and_function() -> None:
    text = TEMPLATE.read_text()
    for destination in DESTINATION_TYPES:
        name = naming.logical_prefix(destination)
        for output in ("QueueUrl", "DeadLetterQueueUrl", "FunctionName"):
            assert f"  {name}{output}:" in text
    for output in (
        "EventBusName",
        "StateTableName",
        "DestinationsConfigParameterName",
    ):
        assert f"  {output}:" in text


@pytest.mark.parametrize("destination", DESTINATION_TYPES)
def test_functions_may_delay_their_own_throttled_records(resources: dict[str, Any], destination: str) -> None:
    name = naming.logical_prefix(destination)
    role = resources[f"{name}FunctionRole"]["Properties"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    delay = [s for s in statements if "sqs:ChangeMessageVisibility" in _actions(s)]
    assert [s["Resource"] for s in delay] == [{"Fn::GetAtt": [f"{name}Queue", "Arn"]}]
    assert "sqs:SendMessage" in _actions(delay[0])  # a record still waiting on its last receive is requeued


def _parameter(name: str) -> dict[str, Any]:
    import yaml

    class _Loader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no type hints
        pass

    _Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    return dict(yaml.load(TEMPLATE.read_text(), Loader=_Loader)["Parameters"][name])  # noqa: S506


@pytest.mark.parametrize("destination", DESTINATION_TYPES)
def test_timeouts_batch_windows_and_vendor_timeouts_are_consistent(
    resources: dict[str, Any], destination: str
) -> None:
    """The arithmetic stated above VendorTimeoutSeconds in template.yaml (issue 14 item 4)."""
    from activation_core import deadline

    name = naming.logical_prefix(destination)
    function = resources[f"{name}Function"]["Properties"]
    queue = resources[f"{name}Queue"]["Properties"]
    (mapping,) = [
        r["Properties"]
        for r in of_type(resources, "AWS::Lambda::EventSourceMapping").values()
        if r["Properties"]["FunctionName"] == {"Ref": f"{name}Function"}
    ]
    vendor_timeout = _parameter("VendorTimeoutSeconds")["MaxValue"]
    one_call = vendor_timeout + deadline.CALL_MARGIN_SECONDS
    assert function["Timeout"] >= deadline.RESERVE_SECONDS + one_call
    assert queue["VisibilityTimeout"] >= 6 * function["Timeout"]
    assert queue["VisibilityTimeout"] >= mapping["MaximumBatchingWindowInSeconds"] + function["Timeout"]

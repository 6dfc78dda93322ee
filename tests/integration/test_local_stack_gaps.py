"""Every moto 5.2.5 gap the local stack closes, proven through a real deploy of fixtures/gaps.

Each `test_gap_*` shows the closure working; each `test_upstream_*` shows the gap is still in moto
without our patch, so a moto upgrade that fixes one fails here and tells us to drop the patch.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
    StateTaskServiceSfn,
)

from local import esm_poller, lambda_runner, moto_patches
from local.stack import LocalStack

pytestmark = pytest.mark.integration

TEMPLATE = Path(__file__).parent / "fixtures" / "gaps" / "template.yaml"
STAGE = "test"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(workdir=tmp_path_factory.mktemp("local-stack")) as local_stack:
        yield local_stack


@pytest.fixture(scope="module")
def outputs(stack: LocalStack) -> dict[str, str]:
    return stack.deploy(TEMPLATE, "gaps", {"Stage": STAGE})


def invoke(stack: LocalStack, function: str, event: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    response = stack.client("lambda").invoke(FunctionName=function, Payload=json.dumps(event).encode())
    return json.loads(response["Payload"].read()), response.get("FunctionError")


def upstream_source(name: str) -> str:
    moto_patches.apply()  # idempotent; records moto's own objects before patching them
    return inspect.getsource(moto_patches.UPSTREAM[name])


# --- CloudFormation ------------------------------------------------------------------------------


def test_gap_no_resource_silently_skipped(stack: LocalStack, outputs: dict[str, str]) -> None:
    translated = json.loads((stack.workdir / "gaps.template.json").read_text())
    summaries = stack.client("cloudformation").list_stack_resources(StackName="gaps")[
        "StackResourceSummaries"
    ]
    assert {r["LogicalResourceId"] for r in summaries} == set(translated["Resources"])


def test_gap_eventbus_ref_is_its_name(stack: LocalStack, outputs: dict[str, str]) -> None:
    assert outputs["BusName"] == f"gap-bus-{STAGE}"
    rules = stack.client("events").list_rules(EventBusName=outputs["BusName"])["Rules"]
    assert [r["EventBusName"] for r in rules] == [outputs["BusName"]]


def test_upstream_eventbus_has_no_physical_resource_id() -> None:
    moto_patches.apply()
    assert moto_patches.UPSTREAM["EventBus.physical_resource_id"] is None, (
        "moto fixed Ref of EventBus: drop it"
    )


def test_gap_layer_ref_name_and_function_layers(stack: LocalStack, outputs: dict[str, str]) -> None:
    assert outputs["LayerArn"].endswith(":layer:gap-layer:1")  # Ref = ARN, LayerName honoured
    config = stack.client("lambda").get_function(FunctionName=outputs["WorkerFunctionName"])["Configuration"]
    assert [layer["Arn"] for layer in config["Layers"]] == [outputs["LayerArn"]]


def test_upstream_layer_gaps_still_present() -> None:
    moto_patches.apply()
    assert moto_patches.UPSTREAM["LayerVersion.physical_resource_id"] is None
    assert moto_patches.UPSTREAM["LayerVersion.cloudformation_name_type"] == "LayerVersion"
    assert "Layers" not in upstream_source("LambdaFunction.create_from_cloudformation_json")


def test_gap_state_machine_substituted_in_executing_backend(
    stack: LocalStack, outputs: dict[str, str]
) -> None:
    sfn = stack.client("stepfunctions")
    definition = sfn.describe_state_machine(stateMachineArn=outputs["StateMachineArn"])["definition"]
    task_arn = json.loads(definition)["States"]["Step"]["Resource"]
    assert task_arn.endswith(f":function:{outputs['TaskFunctionName']}")
    assert outputs["StateMachineArn"] in [
        m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]
    ]


def test_upstream_state_machine_gaps_still_present() -> None:
    source = upstream_source("StateMachine.create_from_cloudformation_json")
    assert "DefinitionSubstitutions" not in source
    assert '"Definition"' not in source
    assert "stepfunctions_backends[" in source  # always the non-executing backend


def test_gap_start_execution_without_name_is_unique(stack: LocalStack, outputs: dict[str, str]) -> None:
    sfn = stack.client("stepfunctions")
    arns = [
        sfn.start_execution(stateMachineArn=outputs["StateMachineArn"], input=json.dumps({"n": 3 + i}))
        for i in (0, 1)
    ]
    names = [a["executionArn"].rsplit(":", 1)[1] for a in arns]
    assert len(set(names)) == 2 and "None" not in names
    for arn in arns:
        assert stack.wait_execution(arn["executionArn"])["status"] == "SUCCEEDED"


def test_upstream_start_execution_without_name_still_none() -> None:
    assert "uuid" not in upstream_source("StepFunctionsParserBackend.start_execution")


def test_gap_nested_execution_sync_passes_api_names_and_returns_its_output() -> None:
    """`startExecution.sync:2` (the SFMC pages chain): parameters reach botocore, the result has
    Step Functions' names (`Output` parsed, `Status`), dates as epoch milliseconds."""
    moto_patches.apply()
    task = StateTaskServiceSfn.__new__(StateTaskServiceSfn)
    task.resource = type("R", (), {"api_action": "startExecution"})()
    parameters = {"StateMachineArn": "arn:sm", "Input": {"a": 1}, "Name": "n"}
    StateTaskServiceSfn._normalise_parameters(task, parameters)
    assert parameters == {"stateMachineArn": "arn:sm", "input": '{"a":1}', "name": "n"}
    response = {
        "executionArn": "arn:x",
        "status": "SUCCEEDED",
        "output": {"b": 2},
        "startDate": datetime(2026, 1, 1, tzinfo=UTC),
    }
    StateTaskServiceSfn._normalise_response(task, response)
    assert response == {
        "ExecutionArn": "arn:x",
        "Status": "SUCCEEDED",
        "Output": {"b": 2},
        "StartDate": 1767225600000,
    }


def test_upstream_sfn_integration_still_not_normalised() -> None:
    parameters = upstream_source("StateTaskServiceSfn._normalise_parameters")
    assert "lower" not in parameters and "stateMachineArn" not in parameters
    assert "upper" not in upstream_source("StateTaskServiceSfn._normalise_response")


def test_gap_secret(stack: LocalStack, outputs: dict[str, str]) -> None:
    sm = stack.client("secretsmanager")
    assert outputs["SecretArn"].startswith(
        f"arn:aws:secretsmanager:us-east-1:123456789012:secret:gap/{STAGE}/vendor-"
    )
    generated = json.loads(sm.get_secret_value(SecretId=outputs["SecretArn"])["SecretString"])
    assert generated["client_id"] == "gap-client"
    assert len(generated["client_secret"]) == 24 and generated["client_secret"].isalnum()
    assert sm.describe_secret(SecretId=outputs["SecretArn"])["KmsKeyId"] == outputs["KeyId"]
    assert sm.get_secret_value(SecretId=outputs["PlainSecretArn"])["SecretString"] == '{"token": "plain"}'


def test_gap_alarm(stack: LocalStack, outputs: dict[str, str]) -> None:
    alarms = stack.client("cloudwatch").describe_alarms(AlarmNames=[f"gap-dlq-depth-{STAGE}"])["MetricAlarms"]
    assert len(alarms) == 1
    alarm = alarms[0]
    dlq_name = outputs["DeadLetterQueueUrl"].rsplit("/", 1)[1]
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": dlq_name}]
    assert alarm["AlarmActions"] == [outputs["AlarmTopicArn"]]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0.0, "GreaterThanThreshold")
    [math] = stack.client("cloudwatch").describe_alarms(AlarmNames=[f"gap-error-rate-{STAGE}"])[
        "MetricAlarms"
    ]
    errors, rate = math["Metrics"]
    assert errors["MetricStat"]["Metric"]["Dimensions"] == [
        {"Name": "FunctionName", "Value": outputs["WorkerFunctionName"]}
    ]
    assert (rate["Expression"], rate["Label"]) == ("errors * 100", "ErrorRate")


def test_gap_schedules(stack: LocalStack, outputs: dict[str, str]) -> None:
    scheduler = stack.client("scheduler")
    nightly = scheduler.get_schedule(Name=f"gap-nightly-{STAGE}")
    assert nightly["ScheduleExpression"] == "cron(0 3 * * ? *)"
    assert nightly["Target"]["Input"] == '{"nightly": true}'
    targets = {
        s["Name"]: scheduler.get_schedule(Name=s["Name"])["Target"]
        for s in scheduler.list_schedules()["Schedules"]
    }
    assert {"Arn": outputs["StateMachineArn"], "Input": '{"n": 1}'}.items() <= targets[
        "GapStateMachineHourly"
    ].items()


def test_gap_queue_policy_recorded(stack: LocalStack, outputs: dict[str, str]) -> None:
    attrs = stack.client("sqs").get_queue_attributes(QueueUrl=outputs["QueueUrl"], AttributeNames=["Policy"])
    policy = json.loads(attrs["Attributes"]["Policy"])
    assert policy["Statement"][0]["Principal"] == {"Service": "events.amazonaws.com"}
    assert [p["LogicalId"] for p in moto_patches.QUEUE_POLICIES] == ["GapQueuePolicy"]


@pytest.mark.parametrize("cfn_type", moto_patches.NEW_CFN_TYPES)
def test_upstream_moto_still_lacks_cfn_type(cfn_type: str) -> None:
    moto_patches.apply()
    assert cfn_type not in moto_patches.UPSTREAM["cfn_types"], f"moto supports {cfn_type} now: drop our model"


# --- Lambda runner -------------------------------------------------------------------------------


def test_runner_runs_handler_with_layer_env_and_warm_state(
    stack: LocalStack, outputs: dict[str, str]
) -> None:
    first, error = invoke(stack, outputs["WorkerFunctionName"], {"probe": True})
    assert error is None, first
    assert first["marker"] == "gaplib-from-layer" and "/python/gaplib/" in first["layer_file"]
    assert first["sys_path"][1].endswith("/python")  # function code first, then the layer
    assert first["env"] == {
        "STAGE": STAGE,
        "WORKER_ONLY": "yes",
        "TABLE_NAME": outputs["TableName"],
        "SECRET_ARN": outputs["SecretArn"],
        "AWS_ENDPOINT_URL": stack.endpoint_url,
        "AWS_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": outputs["WorkerFunctionName"],
        "AWS_ACCESS_KEY_ID": "testing",
        "HOME": None,
        "PYTHONPATH": None,
    }
    assert (first["function_name"], first["memory"]) == (outputs["WorkerFunctionName"], 256)
    assert 0 < first["remaining_ms"] <= 5000
    second, _ = invoke(stack, outputs["WorkerFunctionName"], {"probe": True})
    assert second["pid"] == first["pid"] and second["invocations"] == first["invocations"] + 1
    assert "probe to stderr" in (stack.log_dir / f"{outputs['WorkerFunctionName']}.log").read_text()


def test_runner_enforces_timeout(stack: LocalStack, outputs: dict[str, str]) -> None:
    invoke(stack, outputs["TaskFunctionName"], {"n": 0})  # warm up: init time is not the timeout's
    started = time.monotonic()
    payload, error = invoke(stack, outputs["TaskFunctionName"], {"sleep": 10})
    elapsed = time.monotonic() - started
    assert error is not None and payload["errorType"] == "Sandbox.Timedout"
    assert payload["errorMessage"].endswith("Task timed out after 1.00 seconds")
    assert 1.0 <= elapsed < 3.0
    # Where the handler was when time ran out (local diagnostic): the line that slept.
    assert any("task.py" in line and "lambda_handler" in line for line in stack.log_lines())
    payload, error = invoke(stack, outputs["TaskFunctionName"], {"n": 4})  # a fresh sandbox takes over
    assert error is None and payload["n"] == 5


def test_runner_handler_exception_is_aws_error(stack: LocalStack, outputs: dict[str, str]) -> None:
    payload, error = invoke(stack, outputs["WorkerFunctionName"], {"raise": "boom"})
    assert error is not None
    assert (payload["errorType"], payload["errorMessage"]) == ("ValueError", "boom")
    assert "lambda_worker" not in "".join(payload["stackTrace"])
    assert "[ERROR] ValueError: boom" in stack.log_lines()


def test_upstream_moto_cannot_run_lambda_without_docker(stack: LocalStack) -> None:
    assert "docker" in inspect.getsource(lambda_runner._UPSTREAM["LambdaFunction._invoke_lambda"])
    assert "_invoke_lambda" not in inspect.getsource(lambda_runner._UPSTREAM["LambdaSimpleBackend.invoke"])


# --- SQS event source mapping + Step Functions ---------------------------------------------------


def test_poller_batch_item_failures_then_dlq(stack: LocalStack, outputs: dict[str, str]) -> None:
    sqs = stack.client("sqs")
    bodies = [{"action": "fail"}, {"action": "store", "pk": "direct"}, {"action": "ok"}]
    sent = {
        json.dumps(b): sqs.send_message(
            QueueUrl=outputs["QueueUrl"],
            MessageBody=json.dumps(b),
            MessageAttributes={"tenant": {"DataType": "String", "StringValue": "t1"}},
        )["MessageId"]
        for b in bodies
    }
    stack.client("events").put_events(
        Entries=[
            {
                "EventBusName": outputs["BusName"],
                "Source": "gap.test",
                "DetailType": "Gap",
                "Detail": json.dumps({"action": "store", "pk": "via-bus"}),
            }
        ]
    )
    assert stack.poller.drain(max_rounds=10) >= 5  # 4 first-time deliveries + 1 retry of the failure
    counts = sqs.get_queue_attributes(QueueUrl=outputs["QueueUrl"], AttributeNames=["All"])["Attributes"]
    assert counts["ApproximateNumberOfMessages"] == counts["ApproximateNumberOfMessagesNotVisible"] == "0"
    dead = sqs.receive_message(QueueUrl=outputs["DeadLetterQueueUrl"], MaxNumberOfMessages=10)["Messages"]
    assert [m["MessageId"] for m in dead] == [sent['{"action": "fail"}']]
    fail_lines = [line for line in stack.log_lines() if sent['{"action": "fail"}'] in line]
    assert [line.rsplit("count=", 1)[1] for line in fail_lines] == ["1", "2"]  # maxReceiveCount 2
    table = stack.client("dynamodb")
    record = json.loads(
        table.get_item(TableName=outputs["TableName"], Key={"pk": {"S": "direct"}})["Item"]["record"]["S"]
    )
    assert record["messageId"] == sent['{"action": "store", "pk": "direct"}']
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"].endswith(
        outputs["QueueUrl"].rsplit("/", 1)[1]
    )
    assert record["attributes"]["ApproximateReceiveCount"] == "1" and "SentTimestamp" in record["attributes"]
    assert record["messageAttributes"]["tenant"] == {
        "stringValue": "t1",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert "Item" in table.get_item(TableName=outputs["TableName"], Key={"pk": {"S": "via-bus"}})


def test_poller_fast_retry_honours_a_visibility_the_handler_set(
    stack: LocalStack, outputs: dict[str, str]
) -> None:
    sqs = stack.client("sqs")
    deferred = sqs.send_message(QueueUrl=outputs["QueueUrl"], MessageBody=json.dumps({"action": "defer"}))
    failed = sqs.send_message(QueueUrl=outputs["QueueUrl"], MessageBody=json.dumps({"action": "fail"}))
    try:
        assert stack.poller.poll_once() == 2
        # The plain failure is back at once (fast_retry); the deferred one stays hidden for its 600 s.
        assert stack.poller.poll_once() == 1
        lines = stack.log_lines()
        assert len([line for line in lines if deferred["MessageId"] in line]) == 1
        assert len([line for line in lines if failed["MessageId"] in line]) == 2
        counts = sqs.get_queue_attributes(QueueUrl=outputs["QueueUrl"], AttributeNames=["All"])["Attributes"]
        assert counts["ApproximateNumberOfMessagesNotVisible"] == "1"
    finally:
        sqs.purge_queue(QueueUrl=outputs["QueueUrl"])
        sqs.purge_queue(QueueUrl=outputs["DeadLetterQueueUrl"])


FAILED_IDS_CASES = [
    ("Unhandled", b'{"batchItemFailures": []}', {"a", "b"}),
    (None, b'{"batchItemFailures": [{"itemIdentifier": "b"}]}', {"b"}),
    (None, b'{"batchItemFailures": []}', set()),
    (None, b"null", set()),
    (None, b"{}", set()),
    (None, b'{"batchItemFailures": [{"itemIdentifier": ""}]}', {"a", "b"}),
    (None, b'{"batchItemFailures": [{"itemIdentifier": "zzz"}]}', {"a", "b"}),
    (None, b'{"batchItemFailures": [{"id": "b"}]}', {"a", "b"}),
    (None, b"not json", {"a", "b"}),
]


@pytest.mark.parametrize(("function_error", "payload", "failed"), FAILED_IDS_CASES)
def test_poller_failed_ids_follow_aws_semantics(
    function_error: str | None, payload: bytes, failed: set[str]
) -> None:
    mapping = {"FunctionResponseTypes": ["ReportBatchItemFailures"]}
    messages = [{"MessageId": "a"}, {"MessageId": "b"}]
    assert esm_poller.SqsEsmPoller._failed_ids(mapping, messages, function_error, payload) == failed


def test_poller_without_report_batch_item_failures_success_deletes_all() -> None:
    payload = b'{"batchItemFailures": [{"itemIdentifier": "b"}]}'
    assert (
        esm_poller.SqsEsmPoller._failed_ids({}, [{"MessageId": "a"}, {"MessageId": "b"}], None, payload)
        == set()
    )


def test_upstream_moto_esm_is_inline_and_ignores_batch_item_failures(stack: LocalStack) -> None:
    from moto.awslambda.models import LambdaBackend
    from moto.sqs.models import Queue

    assert esm_poller.moto_inline_esm_detached()
    assert "batchItemFailures" not in inspect.getsource(LambdaBackend._send_sqs_message)
    assert "lambda_event_source_mappings" in inspect.getsource(Queue.add_message)


def test_sfn_lambda_task_runs_through_runner(stack: LocalStack, outputs: dict[str, str]) -> None:
    sfn = stack.client("stepfunctions")
    started = sfn.start_execution(stateMachineArn=outputs["StateMachineArn"], name="loop", input='{"n": 0}')
    execution = stack.wait_execution(started["executionArn"])
    assert execution["status"] == "SUCCEEDED", execution
    assert json.loads(execution["output"]) == {"n": 3, "doubled": 4, "by": outputs["TaskFunctionName"]}
    task_log = (stack.log_dir / f"{outputs['TaskFunctionName']}.log").read_text()
    assert all(f"task n={n}" in task_log for n in (0, 1, 2))

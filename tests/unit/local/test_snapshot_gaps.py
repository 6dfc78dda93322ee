"""The moto 5.2.5 gaps the snapshot workflow meets, closed in local/moto_patches.py or designed around.

`test_gap_*` shows a closure working (in-process moto, the same patched code the local stack runs);
`test_upstream_*` fails once moto fixes a gap, to say "drop the patch" or "the workflow may now use it".
The whole path through the deployed template is tests/integration/test_snapshots_e2e.py.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

from local import moto_patches

ACCOUNT, REGION = "123456789012", "us-east-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    moto_patches.apply()
    with mock_aws():
        yield


def distributed_map(**fields: Any) -> str:
    processor = {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
        "StartAt": "P",
        "States": {"P": {"Type": "Pass", "End": True}},
    }
    return json.dumps(
        {"StartAt": "M", "States": {"M": {"Type": "Map", "ItemProcessor": processor, "End": True, **fields}}}
    )


def reader(input_type: str) -> dict[str, Any]:
    return {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": {"InputType": input_type},
        "Parameters": {"Bucket": "b", "Key": "k"},
    }


def state_machine(name: str = "sm") -> str:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    definition = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    return str(
        sfn.create_state_machine(name=name, definition=definition, roleArn=f"arn:aws:iam::{ACCOUNT}:role/r")[
            "stateMachineArn"
        ]
    )


def executions(arn: str) -> list[dict[str, Any]]:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    found: list[dict[str, Any]] = sfn.list_executions(stateMachineArn=arn)["executions"]
    return found


def test_gap_cfn_bucket_sends_its_events_to_eventbridge_and_a_rule_starts_the_state_machine(
    aws: None,
) -> None:
    from moto.s3.models import FakeBucket

    FakeBucket.create_from_cloudformation_json(
        "snapshotbucket",
        {
            "Properties": {
                "NotificationConfiguration": {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
            }
        },
        ACCOUNT,
        REGION,
    )
    arn = state_machine()
    events = boto3.client("events", region_name=REGION)
    # As in template.yaml: moto also sends "Object Tags Added" for every PutObject; only creations count.
    pattern = {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"object": {"key": [{"wildcard": "incoming/*.manifest.json"}]}},
    }
    events.put_rule(Name="uploaded", EventPattern=json.dumps(pattern))
    template = '{"bucket": <bucket>, "manifestKey": <key>, "note": "key <key>"}'
    paths = {"bucket": "$.detail.bucket.name", "key": "$.detail.object.key"}
    events.put_targets(
        Rule="uploaded",
        Targets=[
            {"Id": "sfn", "Arn": arn, "InputTransformer": {"InputPathsMap": paths, "InputTemplate": template}}
        ],
    )
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket="snapshotbucket", Key="incoming/a/members.jsonl", Body=b"{}")  # no match
    s3.put_object(Bucket="snapshotbucket", Key="incoming/a/members.jsonl.manifest.json", Body=b"{}")
    (execution,) = executions(arn)
    described = boto3.client("stepfunctions", region_name=REGION).describe_execution(
        executionArn=execution["executionArn"]
    )
    assert json.loads(described["input"]) == {
        "bucket": "snapshotbucket",
        "manifestKey": "incoming/a/members.jsonl.manifest.json",
        "note": "key incoming/a/members.jsonl.manifest.json",
    }


def test_gap_a_rule_with_a_queue_and_a_state_machine_feeds_both(aws: None) -> None:
    arn = state_machine()
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="q")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events = boto3.client("events", region_name=REGION)
    events.put_rule(Name="ready", EventPattern=json.dumps({"detail-type": ["Audience Snapshot Ready"]}))
    events.put_targets(Rule="ready", Targets=[{"Id": "sfn", "Arn": arn}, {"Id": "q", "Arn": queue_arn}])
    events.put_events(Entries=[{"Source": "s", "DetailType": "Audience Snapshot Ready", "Detail": "{}"}])
    assert len(executions(arn)) == 1
    assert len(sqs.receive_message(QueueUrl=queue).get("Messages", [])) == 1


def test_upstream_cfn_bucket_still_drops_notification_configuration() -> None:
    moto_patches.apply()
    source = inspect.getsource(moto_patches.UPSTREAM["FakeBucket.create_from_cloudformation_json"])
    assert "NotificationConfiguration" not in source, (
        "moto reads NotificationConfiguration now: drop the patch"
    )


def test_upstream_rules_still_cannot_target_a_state_machine() -> None:
    moto_patches.apply()
    source = inspect.getsource(moto_patches.UPSTREAM["Rule.send_to_targets"])
    assert '"states"' not in source and "start_execution" not in source, (
        "moto's rules start Step Functions executions now: drop the patch"
    )


def test_upstream_input_transformer_still_inserts_strings_without_quotes() -> None:
    from moto.events.utils import EventTemplateParser

    event: Any = {"detail": {"b": "bucket"}, "ingestion-time": "0"}
    with pytest.raises(json.JSONDecodeError):
        EventTemplateParser.parse(
            input_template='{"bucket": <b>}', input_paths_map={"b": "$.detail.b"}, event=event
        )


@pytest.mark.parametrize("input_type", ["JSONL", "MANIFEST"])
def test_upstream_item_reader_still_lacks_json_lines_and_manifests(input_type: str) -> None:
    """Why the workflow's Map reads a JSON list of partitions, not the members file itself."""
    with pytest.raises(ValueError, match="not a valid InputTypeValue"):
        AmazonStateLanguageParser.parse(distributed_map(ItemReader=reader(input_type)))


def test_upstream_distributed_map_still_lacks_item_batcher() -> None:
    """Why one Map item is one partition (thousands of members), not a batch of members."""
    with pytest.raises(Exception, match="ItemBatcher"):
        AmazonStateLanguageParser.parse(
            distributed_map(ItemReader=reader("JSON"), ItemBatcher={"MaxItemsPerBatch": 100})
        )


def test_upstream_tolerated_failure_percentage_zero_still_fails_to_parse() -> None:
    """Why the workflow says ToleratedFailureCount 0 (the same: no failed partition is tolerated)."""
    with pytest.raises(Exception, match="ToleratedFailurePercentage"):
        AmazonStateLanguageParser.parse(
            distributed_map(ItemReader=reader("JSON"), ToleratedFailurePercentage=0)
        )
    AmazonStateLanguageParser.parse(distributed_map(ItemReader=reader("JSON"), ToleratedFailureCount=0))

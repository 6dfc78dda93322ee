"""Least privilege and encryption at rest, proven on the translated template (every resource, not
only the ones named here, so a new destination or source is covered the day it is added)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from activation_core import naming
from local.harness import DESTINATION_TYPES
from local.sam_translate import translate

TEMPLATE = Path(__file__).resolve().parents[3] / "template.yaml"
DATA_SERVICES = ("sqs", "dynamodb", "secretsmanager", "ssm", "s3", "kms", "events", "states", "sns")


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    cfn = translate(
        TEMPLATE, region="us-east-1", parameters={}, upload=lambda logical_id, path: f"s3://b/{logical_id}"
    )
    return dict(cfn["Resources"])


def of_type(resources: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v.get("Properties", {}) for k, v in resources.items() if v["Type"] == kind}


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_no_wildcard_action_or_resource_on_data_services(resources: dict[str, Any]) -> None:
    offending = []
    for name, role in of_type(resources, "AWS::IAM::Role").items():
        for statement in statements(role):
            actions = [a for a in as_list(statement.get("Action", [])) if isinstance(a, str)]
            on_data = [a for a in actions if a.split(":")[0] in DATA_SERVICES]
            if not on_data:
                continue
            if any(a.endswith(":*") or a == "*" for a in on_data) or "*" in as_list(
                statement.get("Resource")
            ):
                offending.append((name, statement.get("Sid", ""), on_data))
    assert offending == []


def test_each_function_reads_only_its_own_secrets_and_queues(resources: dict[str, Any]) -> None:
    roles = of_type(resources, "AWS::IAM::Role")
    # Every destination of the manifest has its function (a missing one fails here, it is not skipped).
    assert {naming.logical_id(t, "FunctionRole") for t in DESTINATION_TYPES} <= set(roles)
    for name, role in roles.items():
        if not name.endswith("FunctionRole"):
            continue
        own = naming.type_of_prefix(name.removesuffix("FunctionRole"))
        text = json.dumps(statements(role))
        for other in DESTINATION_TYPES:
            if other != own:
                assert f"/{other}/" not in text, (name, other)
                assert naming.logical_id(other, "DeadLetterQueue") not in text, (name, other)
                assert naming.logical_id(other, "Queue") not in text, (name, other)


def test_every_queue_is_encrypted_and_every_dlq_keeps_14_days(resources: dict[str, Any]) -> None:
    queues = of_type(resources, "AWS::SQS::Queue")
    assert queues
    for name, queue in queues.items():
        assert queue.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in queue, name
        if name.endswith("DeadLetterQueue"):
            assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600, name


def test_every_table_bucket_topic_and_secret_is_encrypted(resources: dict[str, Any]) -> None:
    for name, table in of_type(resources, "AWS::DynamoDB::Table").items():
        assert table.get("SSESpecification", {}).get("SSEEnabled") is True, name
    for name, bucket in of_type(resources, "AWS::S3::Bucket").items():
        assert bucket.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration"), name
        assert bucket.get("PublicAccessBlockConfiguration", {}).get("BlockPublicAcls") is True, name
    for name, topic in of_type(resources, "AWS::SNS::Topic").items():
        assert topic.get("KmsMasterKeyId"), name
    # Secrets Manager always encrypts (with aws/secretsmanager unless KmsKeyId is set): nothing to assert
    # beyond the secrets never being created with a literal value in the template.
    for name, secret in of_type(resources, "AWS::SecretsManager::Secret").items():
        assert "SecretString" not in secret, name


def test_every_dlq_has_an_alarm(resources: dict[str, Any]) -> None:
    dlqs = {n for n in of_type(resources, "AWS::SQS::Queue") if n.endswith("DeadLetterQueue")}
    watched = {
        a["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for a in of_type(resources, "AWS::CloudWatch::Alarm").values()
        if a.get("Namespace") == "AWS/SQS"
    }
    assert dlqs and dlqs <= watched


def test_each_function_times_out_before_its_queue_shows_the_message_again(resources: dict[str, Any]) -> None:
    functions = of_type(resources, "AWS::Lambda::Function")
    queues = of_type(resources, "AWS::SQS::Queue")
    for mapping in of_type(resources, "AWS::Lambda::EventSourceMapping").values():
        function = functions[mapping["FunctionName"]["Ref"]]
        queue = queues[mapping["EventSourceArn"]["Fn::GetAtt"][0]]
        assert function["Timeout"] < queue["VisibilityTimeout"]

"""Plain helpers shared by tests (fixtures wrapping them live in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from local import examples

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
T0 = 1_795_860_000.0


class Clock:
    """One clock for a fake vendor and the destination; `sleep` moves it instead of waiting."""

    def __init__(self, now: float = T0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def load_event(name: str) -> dict[str, Any]:
    """An EventBridge event from events/eventbridge/ (a fresh copy: tests may change it)."""
    return json.loads((EVENTS / "eventbridge" / f"{name}.json").read_text())


def sqs_record(body: dict[str, Any] | str, message_id: str = "m-1", receive_count: int = 1) -> dict[str, Any]:
    """An SQS record as the Lambda event source mapping delivers it."""
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {"ApproximateReceiveCount": str(receive_count), "SentTimestamp": "1795860000000"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:test-queue",
        "awsRegion": "us-east-1",
    }


def example_config() -> dict[str, Any]:
    """The example config document: every functions/<type>/example.json instance."""
    return examples.example_config()


def create_state_table(dynamodb: Any, name: str = "state") -> None:
    """The state table's key schema as template.yaml declares it (pk + sk)."""
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in ("pk", "sk")],
        BillingMode="PAY_PER_REQUEST",
    )


def instance_of(document: dict[str, Any], destination_type: str) -> dict[str, Any]:
    """The (first) instance of one type in a config document: the very dict, so tests can change it."""
    return next(d for d in document["destinations"] if d["type"] == destination_type)


def keys_no_role_may_write(harness: Any) -> list[str]:
    """Partition keys in the deployed stack's tables that no function role's `dynamodb:LeadingKeys`
    condition admits (roles as the translated template declares them, with the deployed stack's name):
    in AWS, the function that wrote such a key would have been refused; moto enforces no IAM."""
    from fnmatch import fnmatchcase

    from local.sam_translate import translate

    stack_name = harness.outputs["DestinationsConfigParameterName"].split("/")[1]
    cfn = translate(ROOT / "template.yaml", region="us-east-1", parameters={}, upload=lambda *_: "s3://b/k")
    tables = {
        "StateTable": harness.outputs["StateTableName"],
    }
    patterns: dict[str, list[str]] = {name: [] for name in tables.values()}
    for resource in cfn["Resources"].values():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for policy in resource["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                condition = statement.get("Condition", {}).get("ForAllValues:StringLike", {})
                target = statement.get("Resource")
                if not (isinstance(target, dict) and target.get("Fn::GetAtt", [""])[0] in tables):
                    continue
                table = tables[target["Fn::GetAtt"][0]]
                for value in condition.get("dynamodb:LeadingKeys", []):
                    text = value["Fn::Sub"] if isinstance(value, dict) else value
                    patterns[table].append(text.replace("${AWS::StackName}", stack_name))
    dynamodb = harness.stack.client("dynamodb")
    outside = []
    for table, key in ((tables["StateTable"], "pk"),):
        for page in dynamodb.get_paginator("scan").paginate(TableName=table, ProjectionExpression=key):
            for item in page["Items"]:
                value = item[key]["S"]
                if not any(fnmatchcase(value, p) for p in patterns[table]):
                    outside.append(f"{table}: {value}")
    return outside


def snapshot_member(n: int) -> dict[str, Any]:
    """Member `n` of a test snapshot: a profile every destination accepts (Outreach prospect 50,000 + n)."""
    return {
        "identities": {"email": f"member{n}@example.com", "crmId": f"CRM-{n}", "outreachId": str(50_000 + n)},
        "attributes": {
            "person": {"name": {"firstName": f"M{n}", "lastName": "Snapshot"}, "jobTitle": "Engineer"},
            "organization": {"name": "Example Ltd"},
            "workAddress": {"city": "Boston", "countryCode": "US", "stateProvince": "MA"},
        },
        "consents": {"marketing.email": "y"},
    }


def cli_snapshot_push(path: Path, audience: str, snapshot_id: str, stack: str) -> Any:
    """`activation snapshot push PATH --audience A --identity email --snapshot-id S --wait --json` in this
    process (Typer's CliRunner); the Result."""
    from typer.testing import CliRunner

    from activation_cli.main import app

    args = [
        "snapshot",
        "push",
        str(path),
        "--audience",
        audience,
        "--identity",
        "email",
        "--snapshot-id",
        snapshot_id,
    ]
    return CliRunner().invoke(app, [*args, "--stack", stack, "--wait", "--json"], catch_exceptions=False)


def parameter_bound(value: Any, bound: str = "Default") -> Any:
    """A template property's value, or, where it is a `Ref` to a template parameter, that parameter's
    `Default`, `MinValue` or `MaxValue` (the operator may choose anything between the two)."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        from samtranslator.yaml_helper import yaml_parse

        parameters = yaml_parse((ROOT / "template.yaml").read_text())["Parameters"]
        return parameters[value["Ref"]][bound]
    return value


def properties_of_type(resources: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """The properties of every resource of one CloudFormation type, by logical id."""
    return {k: v.get("Properties", {}) for k, v in resources.items() if v["Type"] == kind}

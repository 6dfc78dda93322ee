"""Plain helpers shared by tests (fixtures wrapping them live in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from activation_core.guards import Applied, EntityState
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
    event: dict[str, Any] = json.loads((EVENTS / "eventbridge" / f"{name}.json").read_text())
    return event


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


def calls_their_roles_refuse(harness: Any, *functions: str) -> list[str]:
    """What AWS would refuse of the calls the deployed functions made (moto enforces no IAM): each call
    recorded by the local Lambda runner, checked against the role of the function that made it
    (actions, resources, S3 prefixes, secrets and DynamoDB leading keys; local/iam_audit.py). Each of
    `functions` (names without the stack's prefix, e.g. "snapshot-erasure") must have made calls, so
    the check is never vacuous."""
    from local import iam_audit
    from local.harness import STACK_NAME

    result = iam_audit.audit(harness.stack)
    silent = [f"{name}: no call recorded" for name in functions if not result.calls[f"{STACK_NAME}-{name}"]]
    return silent + result.refused


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


def applied_to(state: EntityState, audience: str) -> Applied:
    """What the order guard's state holds as applied for `audience`; a test failure when nothing is."""
    applied = state.get(audience)
    assert applied is not None, f"nothing applied for {audience}"
    return applied

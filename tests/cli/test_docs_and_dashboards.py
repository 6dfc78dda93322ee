"""The operator docs stay true to the code (configuration reference generated from the models, every
command and alarm documented), and every destination has its dashboard and alarms (COM-07, COM-08)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer

from activation_cli import discovery, docs
from activation_cli.main import app
from activation_core import naming

ROOT = Path(__file__).resolve().parents[2]
DESTINATION_TYPES = discovery.destination_types()  # the manifest
RECORD_METRICS = {f"Records{n}" for n in ("Received", "Delivered", "Skipped", "Rejected", "Retried")}


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    return dict(docs.load_template()["Resources"])


def test_configuration_reference_matches_the_models() -> None:
    """Fails when a model (or a template parameter) changes without `python -m activation_cli.docs`."""
    assert docs.OUTPUT.read_text() == docs.render(), (
        "docs/configuration.md drifted: run python -m activation_cli.docs"
    )


def test_the_configuration_reference_covers_every_destination_and_setting() -> None:
    text = docs.OUTPUT.read_text()
    for destination_type in DESTINATION_TYPES:
        assert f"## Destination `{destination_type}`" in text
        assert f"`{destination_type}-settings`" in text
    assert "| `eventCode` | string | yes |" in text  # a required RainFocus setting, from the model
    assert "| `AlarmEmail` |" in text


def _command_paths(command: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if hasattr(command, "commands"):  # a group (Typer vendors its own click)
        return [p for name, sub in command.commands.items() for p in _command_paths(sub, (*prefix, name))]
    return [prefix]


def test_every_cli_command_is_documented() -> None:
    lines = [
        line
        for line in (ROOT / "docs" / "cli.md").read_text().splitlines()
        if line.startswith("| `activation")
    ]
    kinds = set(discovery.connection_kinds())
    # `activation connect <kind>` is one command per connection kind, documented once as `connect KIND`.
    paths = [
        ("connect", "KIND") if len(p) == 2 and p[0] == "connect" and p[1] in kinds else p
        for p in _command_paths(typer.main.get_command(app))
    ]
    assert len(paths) >= 17
    missing = [p for p in paths if not any(all(re.search(rf"\b{w}\b", line) for w in p) for line in lines)]
    assert missing == []


def test_com_07_the_runbook_covers_every_alarm(resources: dict[str, Any]) -> None:
    runbook = (ROOT / "docs" / "operations.md").read_text()
    alarms = [name for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert len(alarms) >= 14
    per_destination = re.compile(f"^({'|'.join(map(naming.logical_prefix, DESTINATION_TYPES))})")
    undocumented = [
        name
        for name in alarms
        if f"`{name}`" not in runbook and f"`<Name>{per_destination.sub('', name)}`" not in runbook
    ]
    assert undocumented == []


@pytest.mark.parametrize("destination", DESTINATION_TYPES)
def test_com_07_each_destination_has_a_dashboard_of_outcomes_dlq_and_backlog(
    resources: dict[str, Any], destination: str
) -> None:
    name = naming.logical_prefix(destination)
    body = json.loads(resources[f"{name}Dashboard"]["Properties"]["DashboardBody"])
    # An alarm graph (a metric widget with `annotations.alarms`) has no metrics array: CloudWatch graphs
    # the alarm's own metric (Dashboard Body Structure: metric widget properties).
    metrics = [
        m for w in body["widgets"] if w["type"] == "metric" for m in w["properties"].get("metrics", [])
    ]
    records = {
        m[1]
        for m in metrics
        if m[0] == "AudienceActivation" and m[2:6] == ["Destination", destination, "service", destination]
    }
    assert records >= RECORD_METRICS | {"ApiCalls", "VendorThrottles", "TokenRequests"}
    sqs = {(m[1], m[3]) for m in metrics if m[0] == "AWS/SQS"}
    assert ("ApproximateNumberOfMessagesVisible", f"${{{name}DeadLetterQueue.QueueName}}") in sqs  # DLQ depth
    assert ("ApproximateAgeOfOldestMessage", f"${{{name}Queue.QueueName}}") in sqs
    logs = [w["properties"]["query"] for w in body["widgets"] if w["type"] == "log"]
    assert (
        all(f"SOURCE '/aws/lambda/${{AWS::StackName}}-{destination}'" in q for q in logs) and len(logs) == 1
    )
    alarms = next(w for w in body["widgets"] if w["type"] == "alarm")["properties"]["alarms"]
    assert f"${{{name}DeadLetterAlarm.Arn}}" in alarms


@pytest.mark.parametrize("destination", DESTINATION_TYPES)
def test_com_07_a_backlog_older_than_30_minutes_alarms_the_topic(
    resources: dict[str, Any], destination: str
) -> None:
    name = naming.logical_prefix(destination)
    alarm = resources[f"{name}BacklogAlarm"]["Properties"]
    assert (alarm["MetricName"], alarm["Threshold"]) == ("ApproximateAgeOfOldestMessage", 1800)
    assert alarm["Dimensions"][0]["Value"] == f"{name}Queue.QueueName"
    assert alarm["AlarmActions"] == ["AlarmTopic"] and alarm["OKActions"] == ["AlarmTopic"]

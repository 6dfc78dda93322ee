"""Isolation through the deployed stack (issue 14): one broken instance, one bad value or one record a
connector chokes on holds back only its own records; every other record of the batch is delivered."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from local.examples import example_config, sample_events
from local.harness import ActivationHarness

pytestmark = pytest.mark.integration

HEALTHY = "rainfocus-expo2026"
SECRET_PREFIX = "activation-local/rainfocus/"
# Broken instance id -> how it is broken; each activates its own audience `aud-<id>`.
BROKEN = {
    "rf-no-secret": "the secret does not exist",
    "rf-not-json": "the secret is not JSON",
    "rf-foreign-host": "the secret's baseUrl is not a RainFocus host",
    "rf-no-field": "the secret lacks clientSecret",
    "rf-bad-settings": "settings.eventCode is missing",
    "rf-bad-mapping": "a mapping row names an unknown transform",
}


def _healthy_instance() -> dict[str, Any]:
    return next(copy.deepcopy(d) for d in example_config()["destinations"] if d["id"] == HEALTHY)


def _broken_instance(instance_id: str) -> dict[str, Any]:
    instance = _healthy_instance()
    instance.update(id=instance_id, secret=SECRET_PREFIX + instance_id)
    instance["audiences"] = [{"id": f"aud-{instance_id}", "name": instance_id, "origin": "segmentation"}]
    if instance_id == "rf-bad-settings":
        del instance["settings"]["eventCode"]
    if instance_id == "rf-bad-mapping":
        instance["mapping"][1]["transforms"] = ["no-such-transform"]
    return instance


def _person(index: int, audiences: list[str]) -> dict[str, Any]:
    event = copy.deepcopy(next(e for e in sample_events() if e["detail"]["eventId"] == "evt-0001"))
    event["detail"]["eventId"] = f"evt-iso-{index}"
    event["detail"]["profile"]["identities"]["email"] = f"person{index}@example.com"
    event["detail"]["audiences"] = [
        {"id": a, "name": a, "status": "realized", "origin": "segmentation"} for a in audiences
    ]
    return event


@pytest.fixture(scope="module")
def broken_instances(harness: ActivationHarness) -> ActivationHarness:
    document = {
        "schemaVersion": "1",
        "destinations": [_healthy_instance(), *(_broken_instance(i) for i in BROKEN)],
    }
    harness.install_config(document)
    secrets = harness.stack.client("secretsmanager")
    good = json.loads(secrets.get_secret_value(SecretId=SECRET_PREFIX + "rf-no-field")["SecretString"])
    secrets.delete_secret(SecretId=SECRET_PREFIX + "rf-no-secret", ForceDeleteWithoutRecovery=True)
    secrets.put_secret_value(SecretId=SECRET_PREFIX + "rf-not-json", SecretString="not json {")
    secrets.put_secret_value(
        SecretId=SECRET_PREFIX + "rf-foreign-host",
        SecretString=json.dumps({**good, "baseUrl": "https://api.example.net"}),
    )
    secrets.put_secret_value(
        SecretId=SECRET_PREFIX + "rf-no-field",
        SecretString=json.dumps({k: v for k, v in good.items() if k != "clientSecret"}),
    )
    # Person i is in the healthy audience and in broken instance i's; the last two only in the healthy one.
    events = [_person(i, ["aud-expo-invitees", f"aud-{b}"]) for i, b in enumerate(BROKEN)]
    events += [_person(100 + i, ["aud-expo-invitees"]) for i in range(2)]
    harness.publish(events)
    harness.drain()
    return harness


def test_com_02_a_broken_instance_does_not_stop_the_healthy_one(broken_instances: ActivationHarness) -> None:
    stored = {email for _, email in broken_instances.fake("rainfocus").attendees}
    assert stored == {f"person{i}@example.com" for i in [*range(len(BROKEN)), 100, 101]}


def test_com_09_a_broken_instance_s_records_reach_the_dlq_naming_the_instance_and_cause(
    broken_instances: ActivationHarness,
) -> None:
    messages = broken_instances.dlq_messages("rainfocus")
    by_event = {json.loads(m["Body"])["detail"]["eventId"]: m["MessageAttributes"] for m in messages}
    expected_cause = {
        "rf-no-secret": "connection_unavailable",
        "rf-not-json": "connection_unavailable",
        "rf-foreign-host": "connection_unavailable",
        "rf-no-field": "connection_unavailable",
        "rf-bad-settings": "invalid_config",
        "rf-bad-mapping": "invalid_config",
    }
    reasons = {f"evt-iso-{i}": f"retries_exhausted:{expected_cause[b]}:{b}" for i, b in enumerate(BROKEN)}
    assert {e: a["reason"]["StringValue"] for e, a in by_event.items()} == reasons
    for event_id, attributes in by_event.items():
        instance = reasons[event_id].rsplit(":", 1)[1]
        assert instance in attributes["detail"]["StringValue"]
    report = broken_instances.report("rainfocus")
    assert report.balanced, report
    per_instance = broken_instances.ledger("rainfocus", f"rainfocus#{HEALTHY}")
    assert per_instance["delivered"] >= len(BROKEN) + 2

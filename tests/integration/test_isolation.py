"""Isolation through the deployed stack (issue 14): one broken instance, one bad value or one record a
connector chokes on holds back only its own records; every other record of the batch is delivered."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local.examples import example_config, sample_events
from local.fakes.base import FaultProfile
from local.harness import MANIFEST, STACK_NAME, ActivationHarness

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
    document = example_config()  # warm functions cache the config: one document for the whole module
    healthy = next(d for d in document["destinations"] if d["id"] == HEALTHY)
    healthy["audiences"].append({"id": "aud-iso", "name": "Isolation", "origin": "segmentation"})
    document["destinations"] += [_broken_instance(i) for i in BROKEN]
    # Outreach's one-mint-per-60-s rule on a 2 s clock (as the soak does), so its records do not wait.
    outreach = next(d for d in document["destinations"] if d["type"] == "outreach")
    outreach["settings"]["tokenMintIntervalSeconds"] = 2
    harness.fake("outreach").mint_interval = 2
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
    # (aud-iso is activated on the healthy RainFocus instance only.)
    events = [_person(i, ["aud-iso", f"aud-{b}"]) for i, b in enumerate(BROKEN)]
    events += [_person(100 + i, ["aud-iso"]) for i in range(2)]
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


def _marketo_person(index: int, employees: str) -> dict[str, Any]:
    """A Marketo-bound event whose mapped `numberOfEmployees` is the JSON number text `employees`."""
    event = _person(200 + index, ["aud-expo-invitees"])
    event["detail"]["eventId"] = f"evt-num-{index}"
    event["detail"]["profile"]["attributes"]["organization"]["employees"] = "__EMPLOYEES__"
    event["detail"] = json.dumps(event["detail"]).replace('"__EMPLOYEES__"', employees)
    return event


@pytest.fixture(scope="module")
def bad_values(broken_instances: ActivationHarness) -> ActivationHarness:
    """One batch per destination with non-finite numbers and a naive timestamp among good records."""
    harness = broken_instances
    numbers = ["1e400", "NaN", "-Infinity", "250", "12"]
    naive = _person(300, ["aud-expo-invitees"])
    naive["detail"].update(eventId="evt-naive", occurredAt="2026-11-28T10:05:00")
    aware = _person(300, ["aud-expo-invitees"])
    aware["detail"].update(eventId="evt-aware", occurredAt="2026-11-28T10:00:00Z")
    harness.publish([*(_marketo_person(i, n) for i, n in enumerate(numbers)), naive, aware])
    harness.drain()
    return harness


def test_com_09_non_finite_numbers_are_rejected_at_the_event_boundary_naming_the_field(
    bad_values: ActivationHarness,
) -> None:
    reasons = {
        json.loads(m["Body"])["detail"]["eventId"]: m["MessageAttributes"]["reason"]["StringValue"]
        for m in bad_values.dlq_messages("marketo")
    }
    field = "invalid_field:profile.attributes.organization.employees"
    assert {e: r for e, r in reasons.items() if e.startswith("evt-num")} == {
        "evt-num-0": field, "evt-num-1": field, "evt-num-2": field,
    }  # fmt: skip


def test_mkt_01_the_rest_of_a_batch_with_bad_numbers_is_delivered_at_once(
    bad_values: ActivationHarness,
) -> None:
    delivered = bad_values.ledger("marketo#marketo-expo2026#aud-expo-invitees")["delivered"]
    # evt-num-3, evt-num-4 and evt-aware (and earlier modules' persons) on their first receive: nothing
    # in the batch was retried.
    assert delivered >= 3
    assert bad_values.ledger("marketo").get("retried", 0) == 0
    assert bad_values.report("marketo").balanced


def test_rnf_05_a_naive_timestamp_is_rejected_and_the_same_person_s_other_event_delivered(
    bad_values: ActivationHarness,
) -> None:
    for destination_type in (d.type for d in MANIFEST.destinations if d.entity == "profile"):
        reasons = {
            json.loads(m["Body"])["detail"]["eventId"]: m["MessageAttributes"]["reason"]["StringValue"]
            for m in bad_values.dlq_messages(destination_type)
        }
        assert reasons.get("evt-naive") == "invalid_field:occurredAt", destination_type
        assert "evt-aware" not in reasons, destination_type
    assert ("expo2026", "person300@example.com") in bad_values.fake("rainfocus").attendees


def test_com_09_large_rejections_reach_the_dlq_with_their_reason(broken_instances: ActivationHarness) -> None:
    """Ten rejected events of about 110 KB: more than one SendMessageBatch may carry (256 KiB as SQS long
    documented it, 1 MiB today and in moto); each still reaches the DLQ with its reason, at once."""
    harness = broken_instances
    events = []
    for i in range(10):
        event = _person(400 + i, ["aud-iso"])
        event["detail"]["eventId"] = f"evt-large-{i}"
        event["detail"]["profile"]["attributes"]["workAddress"]["countryCode"] = "ZZ"
        event["detail"]["profile"]["attributes"]["notes"] = "n" * 110_000
        events.append(event)
    harness.publish(events)
    harness.drain()
    reasons = {
        json.loads(m["Body"])["detail"]["eventId"]: m["MessageAttributes"]["reason"]["StringValue"]
        for m in harness.dlq_messages("rainfocus")
    }
    assert {e: r for e, r in reasons.items() if e.startswith("evt-large")} == {
        f"evt-large-{i}": "invalid_field:countryid" for i in range(10)
    }
    assert "reason:retried:dlq_unavailable" not in harness.ledger("rainfocus")


def test_com_09_a_vendor_slower_than_the_function_s_time_limit_leaves_every_record_a_reason(
    broken_instances: ActivationHarness,
) -> None:
    """Every store call outlives the vendor timeout (2 s here) and the function may run 7 s: without
    deadline awareness Lambda kills each invocation mid-batch and SQS redrives the records without a
    reason. With it, no call starts that cannot finish: records retry (`deadline`, `timeout`) and reach
    the DLQ with their reason; no invocation times out."""
    harness = broken_instances
    lambda_client = harness.stack.client("lambda")
    name = f"{STACK_NAME}-rainfocus"
    before = lambda_client.get_function_configuration(FunctionName=name)["Timeout"]
    lambda_client.update_function_configuration(FunctionName=name, Timeout=7)
    fake = harness.fake("rainfocus")
    fake.set_fault_profile(FaultProfile(slow_rate=1.0, slow_seconds=2.5, paths="attendee/store"))
    try:
        events = [_person(500 + i, ["aud-iso"]) for i in range(12)]
        for i, event in enumerate(events):
            event["detail"]["eventId"] = f"evt-slow-{i}"
        harness.publish(events)
        harness.drain()
    finally:
        fake.set_fault_profile(None)
        lambda_client.update_function_configuration(FunctionName=name, Timeout=before)
    reasons = [
        m.get("MessageAttributes", {}).get("reason", {}).get("StringValue", "<none: SQS redrive>")
        for m in harness.dlq_messages("rainfocus")
        if json.loads(m["Body"])["detail"]["eventId"].startswith("evt-slow-")
    ]
    assert len(reasons) == 12
    assert set(reasons) <= {"retries_exhausted:deadline", "retries_exhausted:timeout"}
    assert harness.ledger("rainfocus").get("reason:retried:deadline", 0) >= 1
    assert not [line for line in harness.stack.log_lines() if "Task timed out" in line]


_HOSTILE_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e999", "1" + "0" * 400]
_TIMESTAMPS = {
    "2026-11-28T10:00:00Z": True,
    "2026-11-28T12:00:00+02:00": True,
    "2026-11-28T10:00:00": False,  # naive
    "2026-11-28 10:00:00": False,  # naive
}
_NUMBER_PATHS = ["organization.employees", "person.score", "workAddress.geo.lat"]
_sequence = iter(range(10_000))


@st.composite
def hostile_event(draw: st.DrawFn) -> tuple[dict[str, Any], str | None]:
    """A profile event with maybe one hostile number and a maybe-naive occurredAt, and the rejection
    reason the boundary must give it (None: a valid event)."""
    index = next(_sequence)
    event = _person(600 + index, ["aud-expo-invitees"])
    event["detail"]["eventId"] = f"evt-prop-{index}"
    occurred_at = draw(st.sampled_from(sorted(_TIMESTAMPS)))
    event["detail"]["occurredAt"] = occurred_at
    path = draw(st.sampled_from(_NUMBER_PATHS))
    number = draw(st.sampled_from(_HOSTILE_NUMBERS) | st.integers(-(10**6), 10**6).map(str))
    node = event["detail"]["profile"]["attributes"]
    *parents, leaf = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = "__NUMBER__"
    event["detail"] = json.dumps(event["detail"]).replace('"__NUMBER__"', number)
    expected = None  # the event model (its timestamps) is checked before the attribute values
    if not _TIMESTAMPS[occurred_at]:
        expected = "invalid_field:occurredAt"
    elif number in _HOSTILE_NUMBERS:
        expected = f"invalid_field:profile.attributes.{path}"
    return event, expected


@settings(max_examples=4, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.lists(hostile_event(), min_size=3, max_size=6))
def test_com_09_property_hostile_values_are_rejected_at_the_boundary_by_every_real_handler(
    broken_instances: ActivationHarness, batch: list[tuple[dict[str, Any], str | None]]
) -> None:
    """Through the deployed functions with their guards: a hostile number or a naive timestamp is
    rejected naming the field, nothing else is failed by it, and every destination's books balance."""
    harness = broken_instances
    harness.publish([event for event, _ in batch])
    harness.drain()
    for destination_type in (d.type for d in MANIFEST.destinations if d.entity == "profile"):
        reasons = {
            json.loads(m["Body"])["detail"]["eventId"]: m.get("MessageAttributes", {})
            .get("reason", {})
            .get("StringValue", "<none: SQS redrive>")
            for m in harness.dlq_messages(destination_type)
        }
        for event, expected in batch:
            event_id = json.loads(event["detail"])["eventId"]
            if expected is not None:
                assert reasons.get(event_id) == expected, (destination_type, event_id)
            else:
                assert event_id not in reasons or not reasons[event_id].startswith(
                    ("retries_exhausted", "<none")
                ), (destination_type, event_id, reasons.get(event_id))
        assert harness.report(destination_type).balanced, destination_type

"""Isolation through the deployed stack (issue 14): one broken instance, one bad value or one record a
connector chokes on holds back only its own records; every other record of the batch is delivered."""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activation_cli import discovery
from local.examples import example_config, sample_events
from local.fakes.base import FaultProfile
from local.harness import MANIFEST, STACK_NAME, ActivationHarness

pytestmark = pytest.mark.integration

TYPES = [d.type for d in MANIFEST.destinations]
PROFILE_TYPES = [d.type for d in MANIFEST.destinations if d.entity == "profile"]
ENTITY = {d.type: d.entity for d in MANIFEST.destinations}
# How an instance is broken -> the cause its records name (with the instance) when they reach the DLQ.
BROKEN = {
    "no-secret": "connection_unavailable",  # the secret does not exist
    "not-json": "connection_unavailable",  # the secret is not JSON
    "foreign-host": "connection_unavailable",  # the secret's URL is an IP literal: no vendor's host
    "no-field": "connection_unavailable",  # the secret lacks a required credential
    "bad-settings": "invalid_config",  # a setting the destination does not know
    "bad-mapping": "invalid_config",  # a mapping row names an unknown transform
}
HEALTHY_ONLY = 2  # people in the healthy instance's audience only
_numbers = itertools.count()


def iso_audience(destination_type: str) -> str:
    """The audience the healthy instance of the type activates for these tests."""
    return f"aud-iso-{destination_type}"


def _healthy_instance(document: dict[str, Any], destination_type: str) -> dict[str, Any]:
    return next(d for d in document["destinations"] if d["type"] == destination_type)


def _audience(template: dict[str, Any], audience_id: str) -> dict[str, Any]:
    """An audience like the example's first one (its destination extras too), under another id and name."""
    return {**copy.deepcopy(template["audiences"][0]), "id": audience_id, "name": audience_id}


def _broken_instance(healthy: dict[str, Any], breakage: str) -> dict[str, Any]:
    instance = copy.deepcopy(healthy)
    instance_id = f"{healthy['type']}-{breakage}"
    instance.update(id=instance_id, secret=healthy["secret"].rsplit("/", 1)[0] + "/" + instance_id)
    instance["audiences"] = [_audience(healthy, f"aud-{instance_id}")]
    if breakage == "bad-settings":
        instance["settings"]["noSuchSetting"] = True
    if breakage == "bad-mapping":
        instance["mapping"][-1]["transforms"] = ["no-such-transform"]
    return instance


def _break_secret(secrets: Any, destination_type: str, name: str, breakage: str) -> None:
    good = json.loads(secrets.get_secret_value(SecretId=name)["SecretString"])
    if breakage == "no-secret":
        secrets.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
        return
    if breakage == "not-json":
        text = "not json {"
    elif breakage == "foreign-host":
        url_field = "baseUrl" if "baseUrl" in good else "url"  # the API base, or the endpoint itself
        text = json.dumps({**good, url_field: "https://192.0.2.10/api"})
    elif breakage == "no-field":
        fields = discovery.model_fields(discovery.connection_kinds()[destination_type].model)
        credential = [f for f, spec in fields.items() if spec.required and spec.secret and f in good][-1]
        text = json.dumps({k: v for k, v in good.items() if k != credential})
    else:
        return
    secrets.put_secret_value(SecretId=name, SecretString=text)


def _person(index: int, audiences: list[str]) -> dict[str, Any]:
    event = copy.deepcopy(next(e for e in sample_events() if e["detail"]["eventId"] == "evt-0001"))
    event["detail"]["eventId"] = f"evt-iso-{index}"
    event["detail"]["profile"]["identities"]["email"] = f"person{index}@example.com"
    event["detail"]["profile"]["identities"]["outreachId"] = str(100_000 + index)  # a prospect the fake has
    event["detail"]["audiences"] = [
        {"id": a, "name": a, "status": "realized", "origin": "segmentation"} for a in audiences
    ]
    return event


def _account(index: int, audiences: list[str]) -> dict[str, Any]:
    event = copy.deepcopy(next(e for e in sample_events() if e["detail"]["eventId"] == "evt-0008"))
    event["detail"]["eventId"] = f"evt-iso-{index}"
    event["detail"]["account"]["identities"]["crmAccountId"] = f"ACC-ISO-{index}"
    event["detail"]["account"]["attributes"]["accountOrganization"]["domain"] = f"acct{index}.example.com"
    event["detail"]["audiences"] = [
        {"id": a, "name": a, "status": "realized", "origin": "segmentation"} for a in audiences
    ]
    return event


def _subject(entity: str, audiences: list[str], event_id: str) -> dict[str, Any]:
    """A new person (or account) in `audiences`, its event numbered `event_id`."""
    event = (_account if entity == "account" else _person)(next(_numbers), audiences)
    event["detail"]["eventId"] = event_id
    return event


def _dlq_reasons(harness: ActivationHarness, destination_type: str, prefix: str) -> dict[str, str]:
    reasons = {}
    for message in harness.dlq_messages(destination_type):
        event_id = json.loads(message["Body"])["detail"]["eventId"]
        if event_id.startswith(prefix):
            attributes = message.get("MessageAttributes", {})
            reasons[event_id] = attributes.get("reason", {}).get("StringValue", "<none: SQS redrive>")
    return reasons


def _audience_ledger(harness: ActivationHarness, destination_type: str) -> dict[str, int]:
    """The healthy instance's counts for its test audience."""
    healthy = _healthy_instance(harness.config, destination_type)["id"]
    return harness.ledger(destination_type, f"{destination_type}#{healthy}#{iso_audience(destination_type)}")


@pytest.fixture(scope="module")
def broken_instances(harness: ActivationHarness) -> ActivationHarness:
    """Every destination type: its healthy example instance (with audience `aud-iso-<type>`) and one
    broken copy per way of breaking it, each activating its own audience `aud-<instance id>`. Person or
    account `evt-iso-<type>-<breakage>` is in the healthy audience and in that broken one's."""
    document = example_config()  # warm functions cache the config: one document for the whole module
    broken: list[dict[str, Any]] = []
    for destination_type in TYPES:
        healthy = _healthy_instance(document, destination_type)
        audience = _audience(healthy, iso_audience(destination_type))
        if "mappingId" in audience.get("extras", {}):  # Outreach: one prospect custom field per audience
            audience["extras"]["mappingId"] = 150
        healthy["audiences"].append(audience)
        broken += [_broken_instance(healthy, b) for b in BROKEN]
    document["destinations"] += broken
    # Outreach's one-mint-per-60-s rule on a 2 s clock (as the soak does), so its records do not wait.
    outreach = _healthy_instance(document, "outreach")
    outreach["settings"]["tokenMintIntervalSeconds"] = 2
    harness.fake("outreach").mint_interval = 2
    harness.install_config(document)
    secrets = harness.stack.client("secretsmanager")
    for instance in broken:
        _break_secret(secrets, instance["type"], instance["secret"], instance["id"].split("-", 1)[1])
    events = []
    for destination_type in TYPES:
        entity, healthy_audience = ENTITY[destination_type], iso_audience(destination_type)
        events += [
            _subject(
                entity, [healthy_audience, f"aud-{destination_type}-{b}"], f"evt-iso-{destination_type}-{b}"
            )
            for b in BROKEN
        ]
        events += [
            _subject(entity, [healthy_audience], f"evt-iso-{destination_type}-ok-{i}")
            for i in range(HEALTHY_ONLY)
        ]
    harness.publish(events)
    harness.drain()
    return harness


@pytest.mark.parametrize("destination_type", TYPES)
def test_com_02_a_broken_instance_does_not_stop_the_healthy_one(
    broken_instances: ActivationHarness, destination_type: str
) -> None:
    """Each person (account) of the healthy audience is delivered once, on its first receive, although
    most of them are also in a broken instance's audience."""
    ledger = _audience_ledger(broken_instances, destination_type)
    assert ledger.get("delivered") == len(BROKEN) + HEALTHY_ONLY, ledger


@pytest.mark.parametrize("destination_type", TYPES)
def test_com_09_a_broken_instance_s_records_reach_the_dlq_naming_the_instance_and_cause(
    broken_instances: ActivationHarness, destination_type: str
) -> None:
    harness = broken_instances
    reasons = _dlq_reasons(harness, destination_type, f"evt-iso-{destination_type}-")
    assert reasons == {
        f"evt-iso-{destination_type}-{b}": f"retries_exhausted:{cause}:{destination_type}-{b}"
        for b, cause in BROKEN.items()
    }
    for message in harness.dlq_messages(destination_type):
        event_id = json.loads(message["Body"])["detail"]["eventId"]
        if event_id in reasons:
            assert (
                reasons[event_id].rsplit(":", 1)[1] in message["MessageAttributes"]["detail"]["StringValue"]
            )
    report = harness.report(destination_type)
    assert report.balanced, report


_PROFILE_NUMBER = ("organization", "employees")
_ACCOUNT_NUMBER = ("accountOrganization", "employees")


def _with_number(event: dict[str, Any], entity: str, number: str) -> dict[str, Any]:
    """The event with a mapped-or-not number attribute written as the JSON number text `number`."""
    parent, leaf = _ACCOUNT_NUMBER if entity == "account" else _PROFILE_NUMBER
    event["detail"][entity]["attributes"].setdefault(parent, {})[leaf] = "__NUMBER__"
    event["detail"] = json.dumps(event["detail"]).replace('"__NUMBER__"', number)
    return event


# Hostile value -> the rejection it must get, alone (`{entity}` is the event's subject).
HOSTILE = {
    "nan": "invalid_field:{entity}.attributes.{path}",
    "infinity": "invalid_field:{entity}.attributes.{path}",
    "huge": "invalid_field:{entity}.attributes.{path}",
    "naive": "invalid_field:occurredAt",
    "future": "invalid_field:occurredAt",
}
_NUMBER_TEXT = {"nan": "NaN", "infinity": "-Infinity", "huge": "1e400"}
GOOD_IN_BATCH = 3


@pytest.fixture(scope="module")
def bad_values(broken_instances: ActivationHarness) -> tuple[ActivationHarness, dict[str, dict[str, int]]]:
    """Per entity, one batch of hostile values among good records, for every type's healthy audience;
    and each type's audience ledger before it."""
    harness = broken_instances
    before = {t: _audience_ledger(harness, t) for t in TYPES}
    events = []
    for entity in sorted(set(ENTITY.values())):
        audiences = [iso_audience(t) for t in TYPES if ENTITY[t] == entity]
        for case in HOSTILE:
            event = _subject(entity, audiences, f"evt-bad-{entity}-{case}")
            if case == "naive":
                event["detail"]["occurredAt"] = "2026-11-28T10:05:00"
            elif case == "future":
                event["detail"]["occurredAt"] = "9999-12-31T00:00:00Z"
            else:
                event = _with_number(event, entity, _NUMBER_TEXT[case])
            events.append(event)
        events += [
            _with_number(_subject(entity, audiences, f"evt-bad-{entity}-good-{i}"), entity, "250")
            for i in range(GOOD_IN_BATCH)
        ]
    harness.publish(events)
    harness.drain()
    return harness, before


@pytest.mark.parametrize("destination_type", TYPES)
def test_com_09_hostile_values_and_clocks_are_rejected_alone_naming_the_field(
    bad_values: tuple[ActivationHarness, dict[str, dict[str, int]]], destination_type: str
) -> None:
    """NaN, Infinity, 1e400, a naive and a far-future occurredAt: each rejected at the event boundary
    with `invalid_field:<path>`, at once (no retry); the good records of the batch are delivered at once."""
    harness, before = bad_values
    entity = ENTITY[destination_type]
    parent, leaf = _ACCOUNT_NUMBER if entity == "account" else _PROFILE_NUMBER
    assert _dlq_reasons(harness, destination_type, f"evt-bad-{entity}-") == {
        f"evt-bad-{entity}-{case}": reason.format(entity=entity, path=f"{parent}.{leaf}")
        for case, reason in HOSTILE.items()
    }
    after = _audience_ledger(harness, destination_type)
    change = {k: after.get(k, 0) - before[destination_type].get(k, 0) for k in ("delivered", "retried")}
    assert change == {"delivered": GOOD_IN_BATCH, "retried": 0}
    report = harness.report(destination_type)
    assert report.balanced, report


@pytest.fixture(scope="module")
def case_variants(
    bad_values: tuple[ActivationHarness, Any],
) -> tuple[ActivationHarness, dict[str, dict[str, int]]]:
    """A newer change for `Dora.Case@Example.com`, then, in a later batch, an older one for
    ` dora.case@example.com `: one person, whose older change must never overwrite the newer."""
    harness, _ = bad_values
    before = {t: _audience_ledger(harness, t) for t in PROFILE_TYPES}
    audiences = [iso_audience(t) for t in PROFILE_TYPES]
    for event_id, email, at in [
        ("evt-case-new", "Dora.Case@Example.com", "2026-11-28T10:00:10Z"),
        ("evt-case-old", " dora.case@example.com ", "2026-11-28T10:00:00Z"),
    ]:
        event = _person(900, audiences)
        event["detail"].update(eventId=event_id, occurredAt=at)
        event["detail"]["profile"]["identities"]["email"] = email
        harness.publish([event])
        harness.drain()
    return harness, before


@pytest.mark.parametrize("destination_type", PROFILE_TYPES)
def test_com_01_an_identity_differing_only_in_case_is_one_person_and_its_older_change_is_stale(
    case_variants: tuple[ActivationHarness, dict[str, dict[str, int]]], destination_type: str
) -> None:
    """The newer change is delivered; the older one (another event, a later batch) is skipped by the
    order guard (`stale`: the audience counts carry no reasons, and nothing else skips an activated,
    consenting member here), never sent to overwrite it. Accounts are keyed by a CRM id, whose case is
    significant: Bombora is not in this test."""
    harness, before = case_variants
    after = _audience_ledger(harness, destination_type)
    keys = ("received", "delivered", "skipped", "retried", "rejected")
    change = {k: after.get(k, 0) - before[destination_type].get(k, 0) for k in keys}
    assert change == {"received": 2, "delivered": 1, "skipped": 1, "retried": 0, "rejected": 0}
    assert harness.report(destination_type).balanced


def test_com_09_large_rejections_reach_the_dlq_with_their_reason(broken_instances: ActivationHarness) -> None:
    """Ten rejected events of about 110 KB: more than one SendMessageBatch may carry (256 KiB as SQS long
    documented it, 1 MiB today and in moto); each still reaches the DLQ with its reason, at once."""
    harness = broken_instances
    events = []
    for i in range(10):
        event = _person(400 + i, [iso_audience("rainfocus")])
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
    prefix = "evt-slow-rainfocus-"
    with _time_limit(harness, "rainfocus", seconds=7, vendor_delay=2.5, paths="attendee/store"):
        harness.publish([_subject("profile", [iso_audience("rainfocus")], f"{prefix}{i}") for i in range(12)])
        harness.drain()
    reasons = _dlq_reasons(harness, "rainfocus", prefix)
    assert len(reasons) == 12
    assert set(reasons.values()) <= {"retries_exhausted:deadline", "retries_exhausted:timeout"}
    assert harness.ledger("rainfocus").get("reason:retried:deadline", 0) >= 1
    assert not [line for line in harness.stack.log_lines() if "Task timed out" in line]


@pytest.mark.parametrize("destination_type", TYPES)
def test_com_09_no_vendor_call_starts_that_cannot_finish_in_the_time_left(
    broken_instances: ActivationHarness, destination_type: str
) -> None:
    """The function may run 5 s, of which 3 s are kept for the end of the batch; one vendor call may
    take its 2 s timeout and a 1 s margin, and the vendor is slower still: no call fits. Not one request
    reaches the vendor, every record retries as `deadline` and reaches the DLQ with that reason, and no
    invocation is killed by Lambda."""
    harness = broken_instances
    fake = harness.fake(destination_type)
    prefix = f"evt-deadline-{destination_type}-"
    sent_before = len(fake.requests)
    with _time_limit(harness, destination_type, seconds=5, vendor_delay=2.5):
        audiences = [iso_audience(destination_type)]
        harness.publish([_subject(ENTITY[destination_type], audiences, f"{prefix}{i}") for i in range(3)])
        harness.drain()
    assert len(fake.requests) == sent_before
    assert _dlq_reasons(harness, destination_type, prefix) == {
        f"{prefix}{i}": "retries_exhausted:deadline" for i in range(3)
    }
    assert not [line for line in harness.stack.log_lines() if "Task timed out" in line]
    report = harness.report(destination_type)
    assert report.balanced, report


@contextmanager
def _time_limit(
    harness: ActivationHarness, destination_type: str, *, seconds: int, vendor_delay: float, paths: str = ""
) -> Iterator[None]:
    """Within the block, the type's function may run `seconds` and its vendor answers `vendor_delay`
    late (requests whose path matches `paths`; every request by default)."""
    lambda_client = harness.stack.client("lambda")
    name = f"{STACK_NAME}-{destination_type}"
    before = lambda_client.get_function_configuration(FunctionName=name)["Timeout"]
    lambda_client.update_function_configuration(FunctionName=name, Timeout=seconds)
    fake = harness.fake(destination_type)
    fake.set_fault_profile(FaultProfile(slow_rate=1.0, slow_seconds=vendor_delay, paths=paths))
    try:
        yield
    finally:
        fake.set_fault_profile(None)
        lambda_client.update_function_configuration(FunctionName=name, Timeout=before)


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

"""Soak: many events through every destination that has a fake, with ~20% injected faults (5xx,
throttles, connection resets, timeouts, tokens expiring mid-batch). Per destination: nothing lost,
no entity created twice at the vendor, every DLQ message carries its reason, no withdrawn consent
reaches the vendor. `make test` runs it small; `make soak` runs SOAK_EVENTS=10000."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from local.examples import sample_events
from local.fakes.base import FaultProfile
from local.harness import ActivationHarness, secret_values
from tests.integration.conftest import EMAIL

pytestmark = pytest.mark.integration

EVENTS = int(os.environ.get("SOAK_EVENTS", "100"))
FAULTS = FaultProfile(
    error_rate=0.08,
    throttle_rate=0.04,
    reset_rate=0.04,
    slow_rate=0.01,
    slow_seconds=2.5,  # past the stack's 2 s vendor timeout: a client timeout
    token_expiry_every=97,
    seed=20261128,
)
WITHDRAWN = "Withdrawn"  # first name of profiles whose consent is "n": must never reach a vendor


def profile_events(count: int) -> list[dict[str, Any]]:
    base = next(e for e in sample_events() if e["detail"]["eventId"] == "evt-0001")
    events = []
    for i in range(count):
        event = copy.deepcopy(base)
        detail = event["detail"]
        detail["eventId"] = f"soak-{i}"
        profile = detail["profile"]
        profile["identities"].update(
            {"email": f"soak.{i}@example.com", "crmId": f"CRM-S{i}", "outreachId": str(100_000 + i)}
        )
        profile["identities"].pop("ecid", None)
        profile["attributes"]["person"]["name"]["firstName"] = f"Soak{i}"
        if i % 20 == 7:
            profile["consents"]["marketing.email"] = "n"
            profile["attributes"]["person"]["name"]["firstName"] = f"{WITHDRAWN}{i}"
        if i % 25 == 11:
            profile["attributes"]["workAddress"]["countryCode"] = "ZZZ"  # invalid: rejected where validated
        events.append(event)
    account = next(e for e in sample_events() if e["detail-type"] == "Account Audience Membership Changed")
    for i in range(max(1, count // 10)):
        event = copy.deepcopy(account)
        event["detail"]["eventId"] = f"soak-account-{i}"
        event["detail"]["account"]["attributes"]["accountOrganization"]["domain"] = f"soak{i}.example.com"
        event["detail"]["account"]["identities"]["crmAccountId"] = f"ACC-S{i}"
        events.append(event)
    return events


@pytest.fixture(scope="module")
def soaked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ActivationHarness]:
    with ActivationHarness(workdir=tmp_path_factory.mktemp("soak")) as harness:
        for plug in harness.plugs.values():
            plug.fake.set_fault_profile(FAULTS)
        harness.publish(profile_events(EVENTS))
        harness.drain(max_rounds=100_000)
        yield harness


def test_com_09_nothing_is_lost_under_faults(soaked: ActivationHarness) -> None:
    for destination_type, published in soaked.published.items():
        report = soaked.report(destination_type)
        assert published > 0
        assert report.balanced, report


def test_faults_were_really_injected(soaked: ActivationHarness) -> None:
    busy = {name: plug.fake for name, plug in soaked.plugs.items() if len(plug.fake.requests) >= 100}
    assert busy  # at this size, at least the per-record APIs see many calls
    for name, fake in busy.items():
        # ~20% of calls faulted (batching destinations make few calls: too few to expect every kind).
        faulted = sum(v for k, v in fake.injected.items() if k != "token_expiry")
        assert faulted >= 0.1 * len(fake.requests), (name, fake.injected, len(fake.requests))


def test_no_entity_is_created_twice_at_any_vendor(soaked: ActivationHarness) -> None:
    for name, plug in soaked.plugs.items():
        assert plug.fake.duplicate_entities() == [], name


def test_every_dlq_message_carries_its_reason_and_no_secret_or_email(soaked: ActivationHarness) -> None:
    secrets = {s for plug in soaked.plugs.values() for s in secret_values(plug)}
    for destination_type in soaked.published:
        for message in soaked.dlq_messages(destination_type):
            attributes = {
                k: v.get("StringValue", "") for k, v in message.get("MessageAttributes", {}).items()
            }
            assert attributes.get("reason"), message
            text = json.dumps(attributes)
            assert EMAIL.search(text) is None, attributes
            assert not [s for s in secrets if s in text], attributes["reason"]


def test_com_06_withdrawn_consent_never_reaches_a_vendor(soaked: ActivationHarness) -> None:
    for name, plug in soaked.plugs.items():
        assert all(WITHDRAWN.encode() not in r.body for r in plug.fake.requests), name
    assert soaked.report("rainfocus").reasons.get("skipped:consent") == sum(
        1 for i in range(EVENTS) if i % 20 == 7
    )

"""Every destination declares its vendor calls (`call_plan` in its service.py), read the one way the
CLI's backfill estimate and the benches read it."""

from __future__ import annotations

from activation_cli import discovery
from activation_core.config_store import parse_destinations
from activation_core.vendor_calls import CallPlan
from tests.support import example_config, instance_of


def test_every_destination_in_the_manifest_declares_its_call_plan() -> None:
    document = example_config()
    config = parse_destinations(document)
    for destination_type in discovery.destination_types():
        instance = next(i for i in config.destinations if i.type == destination_type)
        plan = discovery.call_plan(instance)
        assert isinstance(plan, CallPlan) and plan.calls(1) >= 1, destination_type
    assert instance_of(document, "outreach")  # the example holds an instance of every type


def test_the_estimate_follows_the_instances_own_settings() -> None:
    document = example_config()
    instance_of(document, "outreach")["settings"]["requestsPerHour"] = 5_000
    instance_of(document, "marketo")["settings"]["syncType"] = "profile_only"
    instance_of(document, "bombora")["settings"]["batchSize"] = 500
    config = {i.type: i for i in parse_destinations(document).destinations}
    assert discovery.call_plan(config["outreach"]).seconds(10_000) == 7_200
    assert discovery.call_plan(config["marketo"]).calls_by_type(10_000) == {"sync": 34}
    assert discovery.call_plan(config["bombora"]).calls(10_000) == 20

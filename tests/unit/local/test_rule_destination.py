"""The local stack tells which destination a deployed rule feeds by the one naming rule."""

from __future__ import annotations

from activation_core import naming
from local.harness import DESTINATION_TYPES, rule_destination


def test_each_destination_rule_is_recognised_and_other_rules_are_not() -> None:
    for destination_type in DESTINATION_TYPES:
        rule = naming.logical_id(destination_type, "Rule")
        assert rule_destination(f"activation-local-{rule}-1A2B3C") == destination_type
    assert rule_destination("activation-local-SnapshotReadyRule-1A2B3C") is None

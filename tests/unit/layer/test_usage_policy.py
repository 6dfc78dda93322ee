"""Usage policies before egress (COM-06 data governance): a labelled attribute never leaves for a
marketing action its label forbids, and a missing consent can be made to block."""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import pytest

from activation_core.config_store import parse_destinations
from activation_core.errors import ConfigError, UsagePolicyRefusal
from activation_core.mapping import CompiledMapping
from activation_core.models.config import DestinationsConfig
from activation_core.observability import logger
from activation_core.outcomes import Kind
from activation_core.pipeline import Pipeline
from activation_core.usage_policy import check_instance, withheld_targets
from tests.support import load_event, sqs_record
from tests.unit.layer.recording import SETTINGS, RecordingDestination

POLICIES = {
    "labels": {
        "sensitive": {"forbids": ["advertising", "third_party_export"]},
        "no-advertising": {"forbids": ["advertising"]},
    },
    "attributes": {"attributes.person.name": ["no-advertising"], "identities.phone": ["sensitive"]},
}


def document(actions: list[str], *, missing_consent: str = "allow") -> dict[str, Any]:
    return {
        "usagePolicies": POLICIES,
        "destinations": [
            {
                "id": "ads",
                "type": "recording",
                "secret": "s",
                "marketingActions": actions,
                "missingConsent": missing_consent,
                "audiences": [{"id": "aud-expo-invitees", "name": "Expo"}],
                "mapping": [
                    {"source": "identities.email", "target": "email", "identity": True, "required": True},
                    {"source": "attributes.person.name.firstName", "target": "firstname"},
                ],
            }
        ],
    }


def test_com_06_a_labelled_attribute_mapped_to_a_forbidden_action_is_a_config_error_naming_all_three() -> (
    None
):
    config = parse_destinations(document(["email_marketing", "advertising"]))
    with pytest.raises(ConfigError) as refused:
        check_instance(config.usage_policies, config.destinations[0])
    error = refused.value
    assert (error.instance, error.field) == ("ads", "mapping.firstname")
    assert "'no-advertising'" in error.detail and "'advertising'" in error.detail
    assert "attributes.person.name" in error.detail  # the label sits on the parent object


def test_com_06_the_same_mapping_is_fine_for_an_instance_whose_actions_the_labels_allow() -> None:
    config = parse_destinations(document(["email_marketing"]))
    check_instance(config.usage_policies, config.destinations[0])


def test_com_06_an_undefined_label_is_refused_in_the_document() -> None:
    broken = document(["advertising"])
    broken["usagePolicies"] = copy.deepcopy(POLICIES)
    broken["usagePolicies"]["attributes"]["attributes.person.age"] = ["secret-ish"]
    with pytest.raises(ConfigError, match="undefined label"):
        parse_destinations(broken)


def test_com_06_the_function_refuses_the_config_and_nothing_leaves() -> None:
    destination = RecordingDestination()
    config = parse_destinations(document(["advertising"]))
    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        results = Pipeline(destination, SETTINGS, lambda: config).process(
            [sqs_record(load_event("profile-membership-realized"))]
        )
    finally:
        logger.registered_handler.setStream(previous)  # type: ignore[attr-defined]
    assert results["m-1"].outcome.reason == "invalid_config:ads"  # this instance only: the others run
    assert destination.connects == 0
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert "mapping.firstname" in line["detail"] and "no-advertising" in line["detail"]


def test_com_06_at_send_time_the_compiled_mapping_refuses_a_withheld_value() -> None:
    """Enforced again where values are read, whatever the config check did: the mapping of an instance
    cannot emit a labelled value for a forbidden use; a record without that value still maps."""
    config: DestinationsConfig = parse_destinations(document(["advertising"]))
    instance = config.destinations[0]
    mapping = CompiledMapping(instance.mapping, withheld_targets(config.usage_policies, instance))
    with pytest.raises(UsagePolicyRefusal) as refused:
        mapping.apply(
            {"identities": {"email": "a@b.example"}, "attributes": {"person": {"name": {"firstName": "A"}}}}
        )
    assert refused.value.reason == "usage_policy:firstname"
    assert mapping.apply({"identities": {"email": "a@b.example"}, "attributes": {}}).fields == {}


@pytest.mark.parametrize(
    ("missing_consent", "expected"), [("allow", Kind.DELIVERED), ("block", Kind.SKIPPED)]
)
def test_com_06_a_missing_consent_blocks_when_the_instance_says_so(
    missing_consent: str, expected: Kind
) -> None:
    event = load_event("profile-membership-realized")
    event["detail"]["profile"]["consents"] = {}
    destination = RecordingDestination()
    config = parse_destinations(document(["email_marketing"], missing_consent=missing_consent))
    results = Pipeline(destination, SETTINGS, lambda: config).process([sqs_record(event)])
    assert results["m-1"].outcome.kind is expected
    if expected is Kind.SKIPPED:
        assert results["m-1"].outcome.reason == "consent"
        assert destination.connectors == {} or destination.connectors["ads"].seen == []

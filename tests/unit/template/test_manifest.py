"""functions/destinations.json (the manifest) and template.yaml tell the same story: the template's
per-destination blocks are what `make template` (local/template_blocks.py) writes from the manifest,
each destination's rule, queue, DLQ, function, alarms, dashboard and outputs exist with the manifest's
figures, no destination is in one and not the other, and each one's package is there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from activation_core import manifest, naming
from local import template_blocks
from local.harness import MANIFEST
from local.sam_translate import translate

ROOT = Path(__file__).resolve().parents[3]
PER_DESTINATION = ("Rule", "Queue", "DeadLetterQueue", "QueuePolicy", "Function", "LogGroup", "Dashboard")
OUTPUTS = ("QueueUrl", "DeadLetterQueueUrl", "FunctionName", "SecretPrefix")


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return translate(
        ROOT / "template.yaml",
        region="us-east-1",
        parameters={},
        upload=lambda logical_id, path: f"s3://b/{logical_id}",
    )


def test_the_per_destination_blocks_are_the_ones_the_manifest_generates() -> None:
    text = (ROOT / "template.yaml").read_text()
    assert template_blocks.apply(text) == text, "template.yaml differs from the manifest: run `make template`"


def test_a_destination_resource_of_its_own_must_carry_its_prefix(tmp_path: Path) -> None:
    spec = MANIFEST.destinations[0]
    (tmp_path / spec.type).mkdir()
    (tmp_path / spec.type / template_blocks.EXTRA_RESOURCES).write_text(
        "OtherAlarm:\n  Type: AWS::CloudWatch::Alarm\n"
    )
    with pytest.raises(ValueError, match="must start with"):
        template_blocks.render_resources(MANIFEST, tmp_path)


def _event_source(resources: dict[str, Any], function: str) -> dict[str, Any]:
    (mapping,) = (
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
        and r["Properties"]["FunctionName"] == {"Ref": function}
    )
    return dict(mapping)


@pytest.mark.parametrize("spec", MANIFEST.destinations, ids=MANIFEST.types)
def test_each_manifest_destination_is_in_the_template_as_listed(
    cfn: dict[str, Any], spec: manifest.DestinationSpec
) -> None:
    resources, outputs = cfn["Resources"], cfn["Outputs"]
    missing = [r for r in PER_DESTINATION if naming.logical_id(spec.type, r) not in resources]
    missing += [o for o in OUTPUTS if naming.output_name(spec.type, o) not in outputs]
    assert missing == [], spec.type

    function_id = naming.logical_id(spec.type, "Function")
    function = resources[function_id]["Properties"]
    assert function["Handler"] == f"{spec.type}.handler.lambda_handler"
    assert function["Environment"]["Variables"]["DESTINATION_TYPE"] == spec.type
    assert function["Timeout"] == spec.timeout_seconds
    queue = resources[naming.logical_id(spec.type, "Queue")]["Properties"]
    assert queue["VisibilityTimeout"] == spec.visibility_timeout_seconds
    source = _event_source(resources, function_id)
    assert source["BatchSize"] == spec.batch_size
    assert source.get("MaximumBatchingWindowInSeconds", 0) == spec.batch_window_seconds
    rule = resources[naming.logical_id(spec.type, "Rule")]["Properties"]
    assert sorted(rule["EventPattern"]["detail-type"]) == sorted(spec.detail_types)

    prefix = naming.logical_prefix(spec.type)
    alarms = {
        name.removeprefix(prefix).removesuffix("Alarm")
        for name, r in resources.items()
        if r["Type"] == "AWS::CloudWatch::Alarm" and _owner(name) == spec.type
    }
    assert alarms == set(spec.alarms)


def _owner(logical_id: str) -> str | None:
    """The destination whose prefix starts the id (the longest one: `GoogleAds` before `Google`)."""
    owners = [t for t in MANIFEST.types if logical_id.startswith(naming.logical_prefix(t))]
    return max(owners, key=len, default=None)


def test_every_destination_function_in_the_template_is_in_the_manifest(cfn: dict[str, Any]) -> None:
    served = {
        r["Properties"]["Environment"]["Variables"]["DESTINATION_TYPE"]
        for r in cfn["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
        and "DESTINATION_TYPE" in r["Properties"].get("Environment", {}).get("Variables", {})
    }
    assert served == set(MANIFEST.types)


@pytest.mark.parametrize("destination_type", MANIFEST.types)
def test_each_manifest_destination_has_its_package(destination_type: str) -> None:
    package = ROOT / "functions" / destination_type
    assert (package / "handler.py").exists() and (package / "service.py").exists(), destination_type


def test_the_manifest_refuses_a_queue_that_shows_a_message_before_the_function_times_out() -> None:
    entry = MANIFEST.destinations[0].model_dump(by_alias=True)
    entry["visibilityTimeoutSeconds"] = 6 * entry["timeoutSeconds"] - 1
    with pytest.raises(ValueError, match="visibilityTimeoutSeconds"):
        manifest.DestinationSpec.model_validate(entry)


def test_the_manifest_refuses_state_keys_not_named_after_the_destination() -> None:
    entry = MANIFEST.destinations[0].model_dump(by_alias=True) | {"stateKeys": ["rate#*"]}
    with pytest.raises(ValueError, match="stateKeys"):
        manifest.DestinationSpec.model_validate(entry)


def test_the_manifest_refuses_a_type_the_naming_rule_cannot_name() -> None:
    entry = MANIFEST.destinations[0].model_dump(by_alias=True) | {"type": "Google-Ads"}
    with pytest.raises(ValueError, match="snake_case"):
        manifest.DestinationSpec.model_validate(entry)

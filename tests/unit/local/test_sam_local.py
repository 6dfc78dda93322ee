"""The SAM local tooling's own logic, without Docker: the host-network rewrite of SAM's container
arguments, the base image recipe against template.yaml, the sample events per function, and the
comparison of an emulator response with the local runner's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

from local.sam_local import base_image, host_network
from local.sam_local.run import Observation, cases, differences, normalise

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE: dict[str, Any] = yaml_parse((ROOT / "template.yaml").read_text())


def _sam_lambda_kwargs() -> dict[str, Any]:
    """What SAM CLI 1.170 passes to containers.create for a Lambda container."""
    return {
        "command": [],
        "working_dir": "/var/task",
        "entrypoint": ["/var/rapid/aws-lambda-rie", "--log-level", "error"],
        "environment": {"AWS_REGION": "us-east-1", "STATE_TABLE_NAME": "from-sam"},
        "ports": {"8080": ("127.0.0.1", 5123)},
        "labels": {"sam.cli.container.type": "lambda", "sam.cli.function.name": "RainfocusFunction"},
    }


def test_a_lambda_container_runs_on_the_host_network_and_listens_on_loopback_only() -> None:
    moved = host_network.lambda_container_kwargs(_sam_lambda_kwargs(), {})
    assert moved["network_mode"] == "host"
    assert "ports" not in moved
    entry = moved["entrypoint"]
    assert entry[:3] == ["/var/rapid/aws-lambda-rie", "--log-level", "error"]
    emulator = entry[entry.index("--runtime-interface-emulator-address") + 1]
    runtime_api = entry[entry.index("--runtime-api-address") + 1]
    assert emulator == "127.0.0.1:5123"  # where SAM connects
    assert runtime_api.startswith("127.0.0.1:")
    assert runtime_api != "127.0.0.1:9001"  # two warm containers never share it


def test_env_vars_entries_reach_the_container_even_when_the_template_does_not_declare_them() -> None:
    document = {
        "Parameters": {"AWS_ENDPOINT_URL": "http://127.0.0.1:1"},
        "RainfocusFunction": {"AWS_ENDPOINT_URL": "http://127.0.0.1:2", "STATE_TABLE_NAME": "deployed"},
        "MarketoFunction": {"STATE_TABLE_NAME": "other"},
    }
    environment = host_network.lambda_container_kwargs(_sam_lambda_kwargs(), document)["environment"]
    assert environment == {
        "AWS_REGION": "us-east-1",
        "STATE_TABLE_NAME": "deployed",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:2",  # the function's entry wins over Parameters
    }


def test_other_containers_are_left_as_sam_made_them() -> None:
    build = {"labels": {"sam.cli.container.type": "build"}, "ports": {"8080": ("127.0.0.1", 1)}}
    assert host_network.lambda_container_kwargs(build, {}) is build


def test_the_env_vars_file_is_found_on_the_command_line() -> None:
    assert host_network.env_vars_file(["local", "invoke", "F", "--env-vars", "e.json"]) == Path("e.json")
    assert host_network.env_vars_file(["local", "invoke", "-n", "e.json"]) == Path("e.json")
    assert host_network.env_vars_file(["local", "invoke", "--env-vars=e.json"]) == Path("e.json")
    assert host_network.env_vars_file(["local", "invoke", "F"]) is None


def test_the_base_image_has_the_templates_python_and_the_tag_sam_runs_it_on() -> None:
    runtime = TEMPLATE["Globals"]["Function"]["Runtime"]
    assert runtime == f"python{base_image.PYTHON_VERSION}"
    assert (
        base_image.image_tag("x86_64") == f"public.ecr.aws/lambda/python:{base_image.PYTHON_VERSION}-x86_64"
    )
    assert base_image.image_tag("arm64") == f"public.ecr.aws/lambda/python:{base_image.PYTHON_VERSION}-arm64"


def test_the_base_image_is_rebuilt_only_when_its_recipe_changes() -> None:
    assert base_image.recipe_hash("x86_64") == base_image.recipe_hash("x86_64")
    assert base_image.recipe_hash("x86_64") != base_image.recipe_hash("arm64")
    dockerfile = base_image.dockerfile("arm64")
    assert dockerfile.startswith("FROM scratch\n")  # the image's platform is the architecture's
    assert f"{base_image.RECIPE_LABEL}={base_image.recipe_hash('arm64')}" in dockerfile


def test_functions_deploy_on_arm64_unless_the_architecture_parameter_says_otherwise() -> None:
    parameter = TEMPLATE["Parameters"]["Architecture"]
    assert parameter["Default"] == "arm64"
    assert set(parameter["AllowedValues"]) == set(base_image.ARCHITECTURES)
    assert TEMPLATE["Globals"]["Function"]["Architectures"] == [{"Ref": "Architecture"}]
    layer = TEMPLATE["Resources"]["ActivationCoreLayer"]["Properties"]
    assert layer["CompatibleArchitectures"] == [{"Ref": "Architecture"}]


def test_every_function_of_the_template_has_a_sample_event_for_sam_local() -> None:
    functions = {k for k, v in TEMPLATE["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}
    assert {case.function for case in cases()} == functions
    assert {case.function for case in cases(smoke=True)} == functions
    assert len(cases(smoke=True)) == len(functions)


def test_a_run_of_the_emulator_matches_the_reference_despite_ids_ports_and_stack_traces() -> None:
    event = '{"startedAt": "2026-11-28T10:00:05Z"}'
    reference = Observation(
        "SfmcPermanent",
        {"errorType": "SfmcPermanent", "errorMessage": "page 2", "stackTrace": ["/tmp/x/page.py"]},
        {"rainfocus": {"received": 1}},
        {"rainfocus": 0},
    )
    emulated = Observation(
        "SfmcPermanent",
        {"errorType": "SfmcPermanent", "errorMessage": "page 2", "stackTrace": ["/var/task/page.py"]},
        {"rainfocus": {"received": 1}},
        {"rainfocus": 0},
    )
    assert differences(reference, emulated, event) == []
    assert normalise({"at": "2026-12-07T11:00:00Z", "from": "2026-11-28T10:00:05Z"}, event) == {
        "at": "<volatile>",
        "from": "2026-11-28T10:00:05Z",
    }
    assert normalise({"batchItemFailures": [{"itemIdentifier": "b"}, {"itemIdentifier": "a"}]}, event) == {
        "batchItemFailures": ["a", "b"]
    }


def test_a_different_outcome_in_the_emulator_is_reported() -> None:
    reference = Observation(None, {"batchItemFailures": []}, {"marketo": {"delivered": 2}}, {"marketo": 0})
    emulated = Observation(None, {"batchItemFailures": []}, {"marketo": {"delivered": 1}}, {"marketo": 1})
    problems = differences(reference, emulated, "{}")
    assert len(problems) == 2
    assert problems[0].startswith("ledger")
    assert problems[1].startswith("DLQ depths")

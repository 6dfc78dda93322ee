"""`activation config validate`: the document checked as the functions check it, every error naming
its instance and field (COM-03, COM-05), before anything is written anywhere."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli.conftest import Invoke
from tests.cli.helpers import stdout_json, write_json
from tests.support import example_config


def _instance(document: dict[str, Any], destination_type: str) -> dict[str, Any]:
    return next(d for d in document["destinations"] if d["type"] == destination_type)


def _bad_rainfocus_target(doc: dict[str, Any]) -> None:
    _instance(doc, "rainfocus")["mapping"].append({"source": "attributes.person.age", "target": "age"})


def _rainfocus_without_event_code(doc: dict[str, Any]) -> None:
    del _instance(doc, "rainfocus")["settings"]["eventCode"]


def _marketo_ecid_dedupe(doc: dict[str, Any]) -> None:
    _instance(doc, "marketo")["settings"]["dedupeField"] = "ecid"


def _bombora_name_twice(doc: dict[str, Any]) -> None:
    twin = copy.deepcopy(_instance(doc, "bombora"))
    twin["id"] = "bombora-abm-twin"
    twin["audiences"][0]["id"] = "aud-other"  # another audience, same name, same connection
    doc["destinations"].append(twin)


def _unknown_type(doc: dict[str, Any]) -> None:
    _instance(doc, "rainfocus")["type"] = "no_such_destination"  # never a real type: no manifest entry


def _duplicate_ids(doc: dict[str, Any]) -> None:
    doc["destinations"].append(copy.deepcopy(_instance(doc, "rainfocus")))


def _bad_transform(doc: dict[str, Any]) -> None:
    _instance(doc, "outreach")["mapping"][0]["transforms"] = ["rot13"]


@pytest.mark.parametrize(
    ("change", "instance", "field"),
    [
        (_bad_rainfocus_target, "rainfocus-expo2026", "mapping.age"),
        (_rainfocus_without_event_code, "rainfocus-expo2026", "settings.eventCode"),
        (_marketo_ecid_dedupe, "marketo-expo2026", "settings.dedupeField"),
        (_bombora_name_twice, "bombora-abm", "audiences.0.name"),
        (_unknown_type, "rainfocus-expo2026", "type"),
        (_bad_transform, "outreach-sales", "mapping.0.transforms"),
        (_duplicate_ids, "<document>", "<root>"),  # the message names the duplicate id
    ],
)
def test_com_05_config_validate_names_the_instance_and_field(
    cli: Invoke, tmp_path: Path, change: Callable[[dict[str, Any]], None], instance: str, field: str
) -> None:
    document = example_config()
    change(document)
    result = cli("config", "validate", write_json(tmp_path / "config.json", document), "--json")
    assert result.exit_code == 1
    errors = stdout_json(result)["errors"]
    assert (errors[0]["instance"], errors[0]["field"]) == (instance, field), errors


def test_com_05_every_invalid_instance_is_reported_at_once(cli: Invoke, tmp_path: Path) -> None:
    document = example_config()
    _bad_rainfocus_target(document)
    _marketo_ecid_dedupe(document)
    result = cli("config", "validate", write_json(tmp_path / "config.json", document))
    assert result.exit_code == 1
    assert "rainfocus-expo2026" in result.stderr and "marketo-expo2026" in result.stderr
    assert "settings.dedupeField" in result.stderr and "mapping.age" in result.stderr


def test_com_03_the_example_config_is_valid_and_listed(cli: Invoke, tmp_path: Path) -> None:
    result = cli("config", "validate", write_json(tmp_path / "config.json", example_config()))
    assert result.exit_code == 0, result.stderr
    for instance in example_config()["destinations"]:
        assert instance["id"] in result.stdout


def test_config_validate_reads_yaml(cli: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(example_config()))
    result = cli("config", "validate", path, "--json")
    assert result.exit_code == 0
    assert "rainfocus-expo2026" in stdout_json(result)["destinations"]


def test_config_validate_reports_broken_json_with_its_position(cli: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"destinations": [}')
    result = cli("config", "validate", path)
    assert result.exit_code == 1
    assert "not JSON" in result.stderr and "line 1" in result.stderr


def test_config_example_prints_a_valid_document(cli: Invoke, tmp_path: Path) -> None:
    printed = cli("config", "example")
    assert printed.exit_code == 0
    path = tmp_path / "example.json"
    path.write_text(printed.stdout)
    assert cli("config", "validate", path).exit_code == 0


def test_com_06_config_validate_refuses_a_labelled_attribute_sent_to_a_forbidden_use(
    cli: Invoke, tmp_path: Path
) -> None:
    document = example_config()
    document["usagePolicies"] = {
        "labels": {"no-third-party-export": {"forbids": ["third_party_export"]}},
        "attributes": {"attributes.person.jobTitle": ["no-third-party-export"]},
    }
    _instance(document, "outreach")["marketingActions"] = ["sales_outreach", "third_party_export"]
    result = cli("config", "validate", write_json(tmp_path / "config.json", document), "--json")
    assert result.exit_code == 1
    (error,) = stdout_json(result)["errors"]
    assert (error["instance"], error["field"]) == ("outreach-sales", "mapping.title")
    assert "'no-third-party-export'" in error["message"] and "'third_party_export'" in error["message"]

    _instance(document, "outreach")["marketingActions"] = ["sales_outreach"]
    assert cli("config", "validate", write_json(tmp_path / "ok.json", document), "--json").exit_code == 0

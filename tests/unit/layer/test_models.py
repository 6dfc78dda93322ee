import subprocess
import sys
from typing import Any

import pytest

from activation_core.config_store import parse_destinations
from activation_core.errors import ConfigError
from activation_core.models.events import ProfileEventDetail
from local import schemas
from tests.support import instance_of, load_event


def test_com_03_example_config_is_valid_and_filters_by_type(config_document: dict[str, Any]) -> None:
    config = parse_destinations(config_document)
    assert [d.id for d in config.of_type("rainfocus")] == ["rainfocus-expo2026"]
    assert all(d.type == "rainfocus" for d in config.of_type("rainfocus"))
    assert config.of_type("no-such-type") == []


def test_com_02_two_connections_of_one_type_coexist(config_document: dict[str, Any]) -> None:
    second = dict(instance_of(config_document, "rainfocus"), id="rainfocus-roadshow")
    config_document["destinations"].append(second)
    assert len(parse_destinations(config_document).of_type("rainfocus")) == 2


def test_com_03_disabled_instances_receive_nothing(config_document: dict[str, Any]) -> None:
    instance_of(config_document, "rainfocus")["enabled"] = False
    assert parse_destinations(config_document).of_type("rainfocus") == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.update(id="Bad Id"), "id"),
        (lambda d: d.pop("secret"), "secret"),
        (lambda d: d["mapping"].append({"source": "identities.crmId", "target": "email"}), "mapping"),
        (lambda d: d["mapping"].append({"source": "nowhere", "target": "x"}), "mapping.12.source"),
        (lambda d: d["audiences"].append(dict(d["audiences"][0])), "audiences"),
        (lambda d: d.update(unexpected=1), "unexpected"),
    ],
)
def test_com_05_invalid_config_names_the_instance_and_field(
    config_document: dict[str, Any], change: Any, field: str
) -> None:
    change(instance_of(config_document, "rainfocus"))
    with pytest.raises(ConfigError) as err:
        parse_destinations(config_document)
    instance = instance_of(config_document, "rainfocus")["id"]
    assert err.value.instance == instance
    assert err.value.field.startswith(field)
    assert f"destination '{instance}'" in str(err.value)


def test_duplicate_instance_ids_are_refused(config_document: dict[str, Any]) -> None:
    config_document["destinations"].append(instance_of(config_document, "rainfocus"))
    with pytest.raises(ConfigError, match="unique"):
        parse_destinations(config_document)


def test_a_document_that_is_not_json_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not JSON"):
        parse_destinations("{nope")


def test_sample_events_follow_the_contract() -> None:
    detail = ProfileEventDetail.model_validate(load_event("profile-membership-realized")["detail"])
    assert detail.audiences[0].status == "realized"
    assert detail.profile.consents["marketing.email"] == "y"


def test_checked_in_json_schemas_match_the_models() -> None:
    """Fails when a model changes without `make schemas` (the files upstream teams rely on drift)."""
    for file_name, text in schemas.render().items():
        path = schemas.SCHEMA_DIR / file_name
        assert path.exists(), f"missing shared/schemas/{file_name}: run make schemas"
        assert path.read_text() == text, (
            f"shared/schemas/{file_name} drifted from the models: run make schemas"
        )


def test_the_data_contracts_load_without_the_mapping_engine() -> None:
    """The config models name the transforms a row may use; the engine implementing them is not theirs."""
    probe = (
        "import sys, activation_core.models.config, activation_core.models.events; "
        "print(sorted(m for m in sys.modules if m.startswith('activation_core.')))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "activation_core.mapping" not in loaded
    assert "activation_core.models.config" in loaded

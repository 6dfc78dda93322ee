"""Outreach configuration validation, OutreachId and attribute values (OUT-02..04, OUT-07) - no network."""

from __future__ import annotations

from typing import Any

import pytest

from activation_core.errors import ConfigError, InvalidRecordError
from activation_core.models.config import DestinationInstance
from outreach.models import PROSPECT_ATTRIBUTES, attribute_value, prospect_id
from outreach.service import validate_instance


def outreach(document: dict[str, Any]) -> dict[str, Any]:
    """The example Outreach instance of the config document (functions/outreach/example.json)."""
    return next(d for d in document["destinations"] if d["type"] == "outreach")


def validate(document: dict[str, Any]) -> Any:
    return validate_instance(DestinationInstance.model_validate(outreach(document)))


def refused(document: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        validate(document)
    assert err.value.instance == "outreach-sales"
    return err.value


def test_out_03_example_instance_validates_with_its_mapping_ids(config_document: dict[str, Any]) -> None:
    settings, mapping_ids = validate(config_document)
    assert mapping_ids == {"aud-expo-invitees": 4, "aud-outreach-webinar": 7}
    assert (settings.requests_per_hour, settings.max_concurrency) == (10_000, 16)


@pytest.mark.parametrize("mapping_id", [1, 150, "12"])
def test_out_03_mapping_ids_1_to_150_are_accepted(config_document: dict[str, Any], mapping_id: Any) -> None:
    outreach(config_document)["audiences"][0]["extras"]["mappingId"] = mapping_id
    _, mapping_ids = validate(config_document)
    assert mapping_ids["aud-expo-invitees"] == int(mapping_id)


@pytest.mark.parametrize("mapping_id", [0, 151, -4, 4.5, 4.0, True, "custom4", None, "4a"])
def test_out_03_mapping_ids_must_be_whole_numbers_from_1_to_150(
    config_document: dict[str, Any], mapping_id: Any
) -> None:
    outreach(config_document)["audiences"][0]["extras"]["mappingId"] = mapping_id
    error = refused(config_document)
    assert error.field == "audiences.0.extras.mappingId"


def test_out_03_every_audience_needs_a_mapping_id(config_document: dict[str, Any]) -> None:
    outreach(config_document)["audiences"][1]["extras"] = {}
    assert refused(config_document).field == "audiences.1.extras.mappingId"


def test_out_03_mapping_ids_are_unique_per_connection(config_document: dict[str, Any]) -> None:
    outreach(config_document)["audiences"][1]["extras"]["mappingId"] = 4
    error = refused(config_document)
    assert error.field == "audiences.1.extras.mappingId"
    assert "already used by audience 'aud-expo-invitees'" in str(error)


def test_out_03_a_mapped_attribute_cannot_overwrite_an_audience_status(
    config_document: dict[str, Any],
) -> None:
    outreach(config_document)["mapping"].append({"source": "attributes.person.jobTitle", "target": "custom7"})
    error = refused(config_document)
    assert error.field == "mapping.custom7"
    assert "aud-outreach-webinar" in str(error)


def test_out_04_a_free_custom_field_can_take_a_mapped_attribute(config_document: dict[str, Any]) -> None:
    outreach(config_document)["mapping"].append({"source": "identities.crmId", "target": "custom9"})
    validate(config_document)


@pytest.mark.parametrize(
    "change",
    [
        lambda rows: rows[0].update(identity=False),
        lambda rows: rows[0].update(target="outreachId"),
        lambda rows: rows.append({"source": "identities.crmId", "target": "externalId", "identity": True}),
    ],
)
def test_out_02_outreach_id_must_be_mapped_as_the_one_target_identity(
    config_document: dict[str, Any], change: Any
) -> None:
    change(outreach(config_document)["mapping"])
    error = refused(config_document)
    assert error.field == "mapping"
    assert "OutreachId" in str(error)


@pytest.mark.parametrize("target", ["createdAt", "name", "shoeSize", "custom151", "custom0"])
def test_out_04_only_writable_prospect_attributes_are_targets(
    config_document: dict[str, Any], target: str
) -> None:
    outreach(config_document)["mapping"].append({"source": "attributes.person.jobTitle", "target": target})
    assert refused(config_document).field == f"mapping.{target}"


def test_out_04_the_writable_attributes_exclude_read_only_ones() -> None:
    assert {"firstName", "lastName", "title", "company", "emails", "tags"} <= set(PROSPECT_ATTRIBUTES)
    assert not {"createdAt", "updatedAt", "name", "engagedScore", "openCount"} & set(PROSPECT_ATTRIBUTES)


@pytest.mark.parametrize(
    ("field", "value"), [("requestsPerHour", 10_001), ("maxConcurrency", 0), ("shoeSize", 1)]
)
def test_out_05_settings_are_validated(config_document: dict[str, Any], field: str, value: Any) -> None:
    outreach(config_document)["settings"][field] = value
    assert refused(config_document).field == f"settings.{field}"


@pytest.mark.parametrize("origin", ["segmentation", "upload", "lookalike", "federated", "journey_optimizer"])
def test_out_07_person_audiences_of_any_origin_are_accepted(
    config_document: dict[str, Any], origin: str
) -> None:
    outreach(config_document)["audiences"][0]["origin"] = origin
    validate(config_document)


@pytest.mark.parametrize(("value", "expected"), [("1001", 1001), (" 42 ", 42), (7, 7)])
def test_out_02_outreach_id_is_the_numeric_prospect_id(value: Any, expected: int) -> None:
    assert prospect_id(value) == expected


@pytest.mark.parametrize("value", [None, "", "  ", "ADA-1001", "12.5", "-3", "0", True, 1.5, "1" * 19])
def test_out_02_a_missing_or_non_numeric_outreach_id_is_rejected_naming_it(value: Any) -> None:
    with pytest.raises(InvalidRecordError) as err:
        prospect_id(value)
    assert err.value.reason == "invalid_field:OutreachId"


@pytest.mark.parametrize(
    ("target", "value", "expected"),
    [
        ("firstName", "Ada", "Ada"),
        ("emails", "ada@example.com", ["ada@example.com"]),
        ("tags", ["expo", 2026], ["expo", "2026"]),
        ("optedOut", "True", True),
        ("linkedInConnections", "500", 500),
        ("score", 4.5, 4.5),
        ("dateOfBirth", "1815-12-10", "1815-12-10"),
        ("availableAt", "2026-11-28T10:00:00Z", "2026-11-28T10:00:00Z"),
        ("custom9", 123, "123"),
    ],
)
def test_out_04_mapped_values_take_the_prospect_attribute_types(
    target: str, value: Any, expected: Any
) -> None:
    assert attribute_value(target, value) == expected


@pytest.mark.parametrize(
    ("target", "value"),
    [
        ("firstName", "x" * 256),
        ("firstName", {"nested": 1}),
        ("optedOut", "maybe"),
        ("linkedInConnections", "5.5"),
        ("score", "NaN"),
        ("dateOfBirth", "10/12/1815"),
        ("custom9", "x" * 32_001),
    ],
)
def test_out_04_an_invalid_value_is_rejected_naming_its_attribute(target: str, value: Any) -> None:
    with pytest.raises(InvalidRecordError) as err:
        attribute_value(target, value)
    assert err.value.reason == f"invalid_field:{target}"

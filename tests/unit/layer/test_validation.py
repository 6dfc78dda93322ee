"""COM-05: what a destination requires of its instance is refused when the instance is configured, with
a ConfigError that carries the instance, the field and the message as data (never the input value)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from activation_core.errors import ConfigError
from activation_core.models.config import DestinationInstance
from activation_core.validation import check_origins, check_targets, require_identity, validated


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    event_code: str = Field(alias="eventCode", min_length=1)


def instance(**changes: Any) -> DestinationInstance:
    document: dict[str, Any] = {
        "id": "dest-1",
        "type": "example",
        "name": "Example",
        "secret": "stack/example/dest-1",
        "settings": {"eventCode": "E1"},
        "mapping": [
            {"source": "identities.email", "target": "email", "identity": True},
            {"source": "attributes.firstName", "target": "firstName"},
        ],
        "audiences": [{"id": "aud-1", "name": "Buyers", "origin": "segmentation"}],
        **changes,
    }
    return DestinationInstance.model_validate(document)


def raised(call: Any) -> ConfigError:
    with pytest.raises(ConfigError) as error:
        call()
    return error.value


def test_com_05_settings_are_validated_naming_the_field_under_at_without_the_value() -> None:
    assert validated(Settings, {"eventCode": "E1"}, "dest-1", at="settings").event_code == "E1"

    error = raised(
        lambda: validated(Settings, {"eventCode": "", "secretish": "s3cr3t-value"}, "dest-1", at="settings")
    )

    assert (error.instance, error.reason) == ("dest-1", "invalid_config")
    assert error.field in ("settings.eventCode", "settings.secretish")
    assert "s3cr3t-value" not in str(error) and "s3cr3t-value" not in error.message


def test_com_05_the_one_target_identity_is_required() -> None:
    assert require_identity(instance(), "email").source == "identities.email"

    error = raised(lambda: require_identity(instance(), "primaryId", "any source; never sent"))
    assert (error.field, error.message) == (
        "mapping",
        "primaryId must be mapped as the one target identity (any source; never sent)",
    )
    two = [
        {"source": "identities.email", "target": "email", "identity": True},
        {"source": "identities.ecid", "target": "ecid", "identity": True},
    ]
    assert raised(lambda: require_identity(instance(mapping=two), "email")).field == "mapping"


def test_com_05_every_target_must_be_one_the_vendor_has() -> None:
    check_targets(instance(), {"email", "firstName"}, "unknown")

    error = raised(lambda: check_targets(instance(), {"email"}, "not a field of the vendor"))
    assert (error.field, error.message) == ("mapping.firstName", "not a field of the vendor")


def test_com_05_audiences_of_an_origin_the_vendor_refuses_are_refused() -> None:
    check_origins(instance(), {"segmentation"})
    uploaded = [
        {"id": "aud-1", "name": "Buyers", "origin": "segmentation"},
        {"id": "aud-2", "name": "Upload", "origin": "custom_upload"},
    ]

    error = raised(lambda: check_origins(instance(audiences=uploaded), {"segmentation"}))
    assert (error.field, error.message) == (
        "audiences.1.origin",
        "'custom_upload' is not one of ['segmentation']",
    )
    error = raised(
        lambda: check_origins(instance(audiences=uploaded), {"segmentation"}, "audiences are refused")
    )
    assert error.message == "'custom_upload' audiences are refused"


def test_config_error_wording_names_its_subject_and_keeps_the_parts_as_data() -> None:
    destination = ConfigError("d1", "settings.x", "bad")
    source = ConfigError("s1", "dataExtensions", "bad", subject="source")

    assert destination.detail == "destination 'd1', field 'settings.x': bad"
    assert source.detail == "source 's1', field 'dataExtensions': bad"
    assert (source.instance, source.field, source.message) == ("s1", "dataExtensions", "bad")

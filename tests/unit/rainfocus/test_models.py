"""RainFocus settings, mapping validation and attendee fields (RNF-01..04, RNF-06) - no network."""

from typing import Any

import pytest

from activation_core.errors import ConfigError, InvalidRecordError
from activation_core.hashing import email_lc_sha256
from activation_core.models.config import DestinationInstance
from rainfocus.models import ATTENDEE_FIELDS, attendee_email, build_attendee
from rainfocus.service import validate_instance
from tests.support import instance_of


def instance(document: dict[str, Any]) -> DestinationInstance:
    return DestinationInstance.model_validate(instance_of(document, "rainfocus"))


def test_rnf_01_event_code_is_required(config_document: dict[str, Any]) -> None:
    del instance_of(config_document, "rainfocus")["settings"]["eventCode"]
    with pytest.raises(ConfigError) as err:
        validate_instance(instance(config_document))
    assert (err.value.instance, err.value.field) == ("rainfocus-expo2026", "settings.eventCode")


def test_rnf_01_example_settings_validate(config_document: dict[str, Any]) -> None:
    settings = validate_instance(instance(config_document))
    assert (settings.event_code, settings.environment) == ("expo2026", "prod")


def test_rnf_03_email_must_be_mapped_as_the_target_identity(config_document: dict[str, Any]) -> None:
    instance_of(config_document, "rainfocus")["mapping"][0]["identity"] = False
    with pytest.raises(ConfigError, match="email must be mapped") as err:
        validate_instance(instance(config_document))
    assert err.value.field == "mapping"


def test_rnf_04_only_the_twelve_attendee_fields_are_targets(config_document: dict[str, Any]) -> None:
    assert len(ATTENDEE_FIELDS) == 12
    instance_of(config_document, "rainfocus")["mapping"].append(
        {"source": "attributes.x", "target": "shoeSize"}
    )
    with pytest.raises(ConfigError) as err:
        validate_instance(instance(config_document))
    assert err.value.field == "mapping.shoeSize"


@pytest.mark.parametrize(
    ("origin", "accepted"), [("segmentation", True), ("upload", True), ("lookalike", False)]
)
def test_rnf_06_segmentation_and_upload_audiences_are_accepted(
    config_document: dict[str, Any], origin: str, accepted: bool
) -> None:
    instance_of(config_document, "rainfocus")["audiences"][0]["origin"] = origin
    if accepted:
        validate_instance(instance(config_document))
    else:
        with pytest.raises(ConfigError) as err:
            validate_instance(instance(config_document))
        assert err.value.field == "audiences.0.origin"


def test_rnf_02_plain_email_is_hashed_when_apply_transformation_is_on() -> None:
    assert attendee_email(" Ada@Example.com", apply_transformation=True) == email_lc_sha256("ada@example.com")


def test_rnf_02_plain_email_is_sent_lower_cased_when_transformation_is_off() -> None:
    assert attendee_email(" Ada@Example.com", apply_transformation=False) == "ada@example.com"


def test_rnf_02_hashed_email_is_accepted_as_is_either_way() -> None:
    digest = email_lc_sha256("ada@example.com")
    assert attendee_email(digest.upper(), apply_transformation=False) == digest
    assert attendee_email(digest, apply_transformation=True) == digest


def test_rnf_02_an_identity_that_is_neither_email_nor_hash_is_rejected() -> None:
    with pytest.raises(InvalidRecordError) as err:
        attendee_email("not-an-email", apply_transformation=True)
    assert err.value.reason == "invalid_field:email"


def test_rnf_04_all_fields_are_validated_and_normalised() -> None:
    fields = {
        "firstname": " Ada ", "lastname": "Lovelace", "countryid": "us", "state": "ma", "zip": "02110",
        "phone": "+1 (617) 555-0100", "city": "Boston", "companyname": "AE", "jobtitle": "CTO",
        "address1": "12 Babbage St", "address2": "",
    }  # fmt: skip
    attendee = build_attendee(fields, "ada@example.com", "expo2026")
    assert attendee["countryid"] == "US"
    assert attendee["state"] == "MA"
    assert attendee["firstname"] == "Ada"
    assert "address2" not in attendee
    assert attendee["event"] == "expo2026"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"countryid": "USA"}, "countryid"),
        ({"countryid": "XX"}, "countryid"),
        ({"countryid": "US", "state": "Massachusetts"}, "state"),
        ({"state": "ZZ"}, "state"),
        ({"phone": "call me maybe"}, "phone"),
        ({"zip": "!!"}, "zip"),
        ({"city": "x" * 300}, "city"),
        ({"firstname": {"nested": True}}, "firstname"),
    ],
)
def test_rnf_04_invalid_values_are_rejected_naming_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRecordError) as err:
        build_attendee(fields, "ada@example.com", "expo2026")
    assert err.value.reason == f"invalid_field:{field}"


def test_rnf_04_provinces_outside_the_us_pass_through() -> None:
    assert build_attendee({"countryid": "GB", "state": "lnd"}, "a@b.co", "e")["state"] == "LND"

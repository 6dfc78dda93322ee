"""Marketo connection and activation config, validated at config time (MKT-01, 05, 06, 09) - no network."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from activation_core.errors import ConfigError, PermanentError
from activation_core.models.config import DestinationInstance
from marketo.client import base_url
from marketo.models import MarketoConnection, PersonAction, SyncType
from marketo.service import validate_instance


@pytest.fixture
def document(config_document: dict[str, Any]) -> dict[str, Any]:
    """The example Marketo instance (a copy the test may change)."""
    return copy.deepcopy(next(d for d in config_document["destinations"] if d["type"] == "marketo"))


def refused(document: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        validate_instance(DestinationInstance.model_validate(document))
    assert err.value.instance == document["id"]
    assert f"destination '{document['id']}', field '{err.value.field}'" in str(err.value)
    return err.value


def mapping_row(document: dict[str, Any], target: str) -> dict[str, Any]:
    return next(row for row in document["mapping"] if row["target"] == target)


# ---------------------------------------------------------------------------------------- MKT-01


def test_mkt_01_the_example_instance_is_valid(document: dict[str, Any]) -> None:
    validated = validate_instance(DestinationInstance.model_validate(document))
    settings = validated.settings
    assert (settings.munchkin_id, settings.workspace, settings.partition_name) == (
        "123-ABC-456",
        "Default",
        "Expo",
    )
    assert (settings.sync_type, settings.person_action) == (
        SyncType.AUDIENCE_AND_PROFILE,
        PersonAction.UPDATE_AND_CREATE,
    )
    assert settings.dedupe_field == "email"
    assert validated.list_ids == {"aud-expo-invitees": 1001}
    assert (settings.calls_per_window, settings.concurrent_calls) == (100, 10)


@pytest.mark.parametrize("munchkin", ["123-abc-456", "12-ABC-456", "123ABC456", "123-ABC-456.evil.com", ""])
def test_mkt_01_the_munchkin_id_is_validated(document: dict[str, Any], munchkin: str) -> None:
    document["settings"]["munchkinId"] = munchkin
    assert refused(document).field == "settings.munchkinId"


def test_mkt_01_the_base_url_is_the_munchkin_instance() -> None:
    secret = MarketoConnection.model_validate({"clientId": "c", "clientSecret": "s"})
    assert base_url(secret, "284-RPR-133", allow_loopback=False) == "https://284-rpr-133.mktorest.com"
    # The UI's "REST endpoint" ends in /rest: accepted, trimmed.
    with_rest = secret.model_copy(update={"base_url": "https://284-rpr-133.mktorest.com/rest/"})
    assert base_url(with_rest, "284-RPR-133", allow_loopback=False) == "https://284-rpr-133.mktorest.com"


@pytest.mark.parametrize(
    "url",
    [
        "https://999-XXX-999.mktorest.com",  # another instance
        "http://284-RPR-133.mktorest.com",  # not https
        "https://284-RPR-133.mktorest.com.evil.com",
        "https://user:pw@284-RPR-133.mktorest.com",
        "http://127.0.0.1:8080",  # loopback outside local mode
    ],
)
def test_mkt_01_a_base_url_for_another_host_is_refused(url: str) -> None:
    secret = MarketoConnection.model_validate({"clientId": "c", "clientSecret": "s", "baseUrl": url})
    with pytest.raises(PermanentError):
        base_url(secret, "284-RPR-133", allow_loopback=False)


@pytest.mark.parametrize("sync_type", ["audience_only", "profile_only", "audience_and_profile"])
def test_mkt_01_the_three_sync_types_are_accepted(document: dict[str, Any], sync_type: str) -> None:
    document["settings"]["syncType"] = sync_type
    if sync_type == "audience_only":
        del document["settings"]["personAction"], document["settings"]["partition"]
    assert validate_instance(DestinationInstance.model_validate(document)).settings.sync_type == sync_type


def test_mkt_01_an_unknown_sync_type_is_refused(document: dict[str, Any]) -> None:
    document["settings"]["syncType"] = "everything"
    assert refused(document).field == "settings.syncType"


def test_mkt_01_partition_only_with_the_profile_sync_types(document: dict[str, Any]) -> None:
    document["settings"].update(syncType="audience_only")
    del document["settings"]["personAction"]
    assert refused(document).field == "settings.partition"


def test_mkt_01_partition_is_optional_and_defaults_to_default(document: dict[str, Any]) -> None:
    del document["settings"]["partition"]
    assert (
        validate_instance(DestinationInstance.model_validate(document)).settings.partition_name == "Default"
    )


def test_mkt_01_profile_sync_types_need_a_person_action(document: dict[str, Any]) -> None:
    del document["settings"]["personAction"]
    assert refused(document).field == "settings.personAction"


def test_mkt_01_audience_only_takes_no_person_action(document: dict[str, Any]) -> None:
    document["settings"]["syncType"] = "audience_only"
    del document["settings"]["partition"]
    assert refused(document).field == "settings.personAction"


def test_mkt_01_limits_cannot_exceed_marketos(document: dict[str, Any]) -> None:
    document["settings"]["callsPer20Seconds"] = 101
    assert refused(document).field == "settings.callsPer20Seconds"
    document["settings"]["callsPer20Seconds"] = 50
    document["settings"]["concurrentCalls"] = 11
    assert refused(document).field == "settings.concurrentCalls"


def test_mkt_01_audience_sync_types_need_a_static_list_per_audience(document: dict[str, Any]) -> None:
    document["audiences"][0]["extras"] = {}
    assert refused(document).field == "audiences.0.extras.listId"
    document["audiences"][0]["extras"] = {"listId": "not-a-number"}
    assert refused(document).field == "audiences.0.extras.listId"


def test_mkt_01_profile_only_needs_no_list(document: dict[str, Any]) -> None:
    document["settings"]["syncType"] = "profile_only"
    document["audiences"][0]["extras"] = {}
    assert validate_instance(DestinationInstance.model_validate(document)).list_ids == {}


def test_mkt_01_the_connection_secret_needs_the_credentials() -> None:
    with pytest.raises(ValueError, match="clientSecret"):
        MarketoConnection.model_validate({"clientId": "c"})
    assert "s3cr3t" not in repr(MarketoConnection.model_validate({"clientId": "c", "clientSecret": "s3cr3t"}))


# ---------------------------------------------------------------------------------------- MKT-05


@pytest.mark.parametrize("field", ["id", "leadId", "ECID", "ecid", "lead_id"])
def test_mkt_05_lead_id_and_ecid_are_refused_as_dedupe_fields(document: dict[str, Any], field: str) -> None:
    document["settings"]["dedupeField"] = field
    assert refused(document).field == "settings.dedupeField"


def test_mkt_05_dedupe_field_must_be_mapped(document: dict[str, Any]) -> None:
    document["mapping"] = [row for row in document["mapping"] if row["target"] != "DedupeField"]
    assert refused(document).field == "mapping"


def test_mkt_05_dedupe_field_must_be_the_target_identity(document: dict[str, Any]) -> None:
    mapping_row(document, "DedupeField")["identity"] = False
    assert refused(document).field == "mapping"


def test_mkt_05_dedupe_field_is_the_only_target_identity(document: dict[str, Any]) -> None:
    document["mapping"].append({"source": "identities.crmId", "target": "sfdcLeadId", "identity": True})
    assert refused(document).field == "mapping"


def test_mkt_05_ecid_cannot_feed_the_dedupe_field(document: dict[str, Any]) -> None:
    mapping_row(document, "DedupeField")["source"] = "identities.ecid"
    assert refused(document).field == "mapping.DedupeField"


@pytest.mark.parametrize("target", ["id", "createdAt", "updatedAt", "leadPartitionId"])
def test_mkt_05_system_managed_fields_are_not_targets(document: dict[str, Any], target: str) -> None:
    document["mapping"].append({"source": "identities.crmId", "target": target})
    assert refused(document).field == f"mapping.{target}"


def test_mkt_05_any_other_dedupe_field_is_accepted_here(document: dict[str, Any]) -> None:
    # Whether it is searchable is Marketo's to say (Describe2), checked on first use: see the contract tests.
    document["settings"]["dedupeField"] = "crmId"
    mapping_row(document, "DedupeField")["source"] = "identities.crmId"
    document["mapping"].append({"source": "identities.email", "target": "email"})
    validate_instance(DestinationInstance.model_validate(document))


# ---------------------------------------------------------------------------------------- MKT-06


@pytest.mark.parametrize("missing", ["firstName", "lastName"])
def test_mkt_06_creating_leads_needs_first_and_last_name_even_with_email_dedupe(
    document: dict[str, Any], missing: str
) -> None:
    document["mapping"] = [row for row in document["mapping"] if row["target"] != missing]
    assert refused(document).field == f"mapping.{missing}"


def test_mkt_06_with_another_dedupe_field_email_must_be_mapped_too(document: dict[str, Any]) -> None:
    document["settings"]["dedupeField"] = "crmId"
    mapping_row(document, "DedupeField")["source"] = "identities.crmId"
    document["mapping"] = [row for row in document["mapping"] if row["target"] != "crmId"]
    assert refused(document).field == "mapping.email"
    document["mapping"].append({"source": "identities.email", "target": "email"})
    validate_instance(DestinationInstance.model_validate(document))


def test_mkt_06_updating_existing_leads_only_needs_no_name(document: dict[str, Any]) -> None:
    document["settings"]["personAction"] = "update_existing_only"
    document["mapping"] = [
        row for row in document["mapping"] if row["target"] not in ("firstName", "lastName")
    ]
    validate_instance(DestinationInstance.model_validate(document))


# ---------------------------------------------------------------------------------------- MKT-09


@pytest.mark.parametrize("audience_type", ["account", "prospect", "dataset", "Account"])
def test_mkt_09_only_person_audiences_are_accepted(document: dict[str, Any], audience_type: str) -> None:
    document["audiences"][0]["extras"]["audienceType"] = audience_type
    assert refused(document).field == "audiences.0.extras.audienceType"


@pytest.mark.parametrize("origin", ["segmentation", "upload", "lookalike", "federated", "journey_optimizer"])
def test_mkt_09_audiences_of_any_origin_are_accepted(document: dict[str, Any], origin: str) -> None:
    document["audiences"][0]["origin"] = origin
    document["audiences"][0]["extras"]["audienceType"] = "person"
    validate_instance(DestinationInstance.model_validate(document))

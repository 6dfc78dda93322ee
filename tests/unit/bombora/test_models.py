"""Bombora settings, config validation, domain normalisation and list naming (BOM-01..06) - no network."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from activation_core.errors import ConfigError, InvalidRecordError, PermanentError
from activation_core.models.config import DestinationInstance
from bombora.client import AccountList, BomboraClient
from bombora.models import BomboraConnection, BomboraSettings, list_key, normalise_domain
from bombora.service import BomboraDestination, _oldest, account_key, check_audience_names, validate_instance


def bombora(document: dict[str, Any]) -> dict[str, Any]:
    """The Bombora instance of the example config (functions/bombora/example.json)."""
    return next(d for d in document["destinations"] if d["type"] == "bombora")


def instance(raw: dict[str, Any]) -> DestinationInstance:
    return DestinationInstance.model_validate(raw)


@pytest.fixture
def raw(config_document: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(bombora(config_document))


def config_error(raw: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        validate_instance(instance(raw))
    return err.value


def test_the_example_instance_validates_with_defaults(raw: dict[str, Any]) -> None:
    settings = validate_instance(instance(raw))
    assert (settings.batch_size, settings.account_list_path, settings.token_path) == (
        1000,
        "/account-list/v1",
        "/oauth/token",
    )


# ---------------------------------------------------------------- BOM-01


def test_bom_01_the_destination_takes_account_events_only() -> None:
    assert BomboraDestination.entity == "account"


def test_bom_01_custom_upload_audiences_are_refused_at_config_time(raw: dict[str, Any]) -> None:
    raw["audiences"][0]["origin"] = "upload"
    error = config_error(raw)
    assert (error.instance, error.field) == ("bombora-abm", "audiences.0.origin")
    assert "segmentation audiences only" in error.detail


@pytest.mark.parametrize("kind", ["person", "people", "prospect"])
def test_bom_01_person_audiences_are_refused_at_config_time(raw: dict[str, Any], kind: str) -> None:
    raw["audiences"][0]["extras"] = {"audienceType": kind}
    error = config_error(raw)
    assert error.field == "audiences.0.extras.audienceType"
    assert "account audiences only" in error.detail


def test_bom_01_unknown_audience_extras_are_refused(raw: dict[str, Any]) -> None:
    raw["audiences"][0]["extras"] = {"listId": "123"}
    assert config_error(raw).field == "audiences.0.extras"


# ---------------------------------------------------------------- BOM-02


def test_bom_02_the_connection_is_a_client_id_and_a_client_secret() -> None:
    connection = BomboraConnection.model_validate({"clientId": "id", "clientSecret": "secret"})
    assert connection.base_url == "https://api.bombora.com"
    assert "secret" not in repr(connection)
    for missing in ("clientId", "clientSecret"):
        with pytest.raises(ValueError, match=missing):
            BomboraConnection.model_validate({k: "x" for k in ("clientId", "clientSecret") if k != missing})


@pytest.mark.parametrize(
    "url",
    [
        "https://api.bombora.com.evil.example",
        "http://api.bombora.com",
        "https://10.0.0.1",
        "https://bombora.co",
    ],
)
def test_bom_02_the_base_url_must_be_a_bombora_host(url: str) -> None:
    connection = BomboraConnection.model_validate({"baseUrl": url, "clientId": "i", "clientSecret": "s"})
    with pytest.raises(PermanentError) as err:
        BomboraClient(connection, BomboraSettings(), tokens=None, allow_loopback=False)  # type: ignore[arg-type]
    assert err.value.reason == "invalid_base_url"


@pytest.mark.parametrize("field", ["batchSize", "pendingRetrySeconds", "maxConcurrency"])
def test_bom_02_settings_out_of_range_name_their_field(raw: dict[str, Any], field: str) -> None:
    raw["settings"][field] = -1
    assert config_error(raw).field == f"settings.{field}"


# ---------------------------------------------------------------- BOM-03


def test_bom_03_primary_id_must_be_mapped_as_the_target_identity(raw: dict[str, Any]) -> None:
    raw["mapping"] = [row for row in raw["mapping"] if row["target"] != "primaryId"]
    error = config_error(raw)
    assert error.field == "mapping"
    assert "primaryId must be mapped" in error.detail


def test_bom_03_primary_id_mapped_as_a_plain_field_is_not_enough(raw: dict[str, Any]) -> None:
    raw["mapping"][0]["identity"] = False
    assert "primaryId" in config_error(raw).detail


def test_bom_03_any_source_may_feed_primary_id(raw: dict[str, Any]) -> None:
    raw["mapping"][0]["source"] = "attributes.accountOrganization.name"
    validate_instance(instance(raw))


def test_bom_03_no_other_identity_is_accepted(raw: dict[str, Any]) -> None:
    raw["mapping"][1]["identity"] = True
    assert config_error(raw).field == "mapping"


# ---------------------------------------------------------------- BOM-04


def test_bom_04_company_website_domain_must_be_mapped(raw: dict[str, Any]) -> None:
    raw["mapping"] = [row for row in raw["mapping"] if row["target"] != "companyWebsiteDomain"]
    error = config_error(raw)
    assert (error.field, "companyWebsiteDomain must be mapped" in error.detail) == ("mapping", True)


def test_bom_04_only_primary_id_and_company_website_domain_are_targets(raw: dict[str, Any]) -> None:
    raw["mapping"].append({"source": "account.accountOrganization.name", "target": "companyName"})
    assert config_error(raw).field == "mapping.companyName"


def test_bom_04_a_hashed_domain_is_refused(raw: dict[str, Any]) -> None:
    raw["mapping"][1]["transforms"] = ["trim", "sha256"]
    assert config_error(raw).field == "mapping.companyWebsiteDomain"


@pytest.mark.parametrize(
    ("given_value", "expected"),
    [
        ("example.com", "example.com"),
        ("Example.COM", "example.com"),
        ("  www.example.com  ", "example.com"),
        ("https://www.Example.com/about", "example.com"),
        ("http://example.com:8080/a/b?c=d#e", "example.com"),
        ("HTTPS://user:pass@Example.com", "example.com"),
        ("//cdn.example.co.uk/x", "cdn.example.co.uk"),
        ("example.com.", "example.com"),
        ("example.com\\path", "example.com"),
        ("shop.example.com", "shop.example.com"),
        ("www.com", "www.com"),  # a domain of its own, not a www. prefix
        ("WWW.www.example.com", "example.com"),
        ("https://Bücher.example/", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("straße.de", "xn--strae-oqa.de"),
        ("日本.jp", "xn--wgv71a.jp"),
        # Full-width letters and ideographic dots.
        ("www\u3002\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25\u3002com\u3002", "example.com"),
    ],
)
def test_bom_04_domains_are_normalised(given_value: str, expected: str) -> None:
    assert normalise_domain(given_value) == expected


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        42,
        {"domain": "example.com"},
        "localhost",
        "not a domain",
        "exa_mple.com",
        "-example.com",
        "example-.com",
        "example..com",
        "192.168.0.1",
        "http://[2001:db8::1]/",
        "example.com:http",
        "example.c0m1",
        "a" * 64 + ".com",
        ("a" * 60 + ".") * 5 + "com",
        "☃.net",
        "mailto:someone",
    ],
)
def test_bom_04_invalid_domains_are_rejected_naming_the_field(value: Any) -> None:
    with pytest.raises(InvalidRecordError) as err:
        normalise_domain(value)
    assert err.value.reason == "invalid_field:companyWebsiteDomain"


_SHAPE = re.compile(r"^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+([a-z]{2,63}|xn--[a-z0-9-]+)$")


# URL-ish pieces, so that generated values often come out as domains (plain text rarely does).
_PIECES = st.sampled_from(
    [
        *"abcxyzABC019-._/:@?#\\ ",
        "ü",
        "ß",
        "\u3002",
        "\uff25",
        "\u200b",
        "www.",
        "WWW.",
        "http://",
        "xn--",
        ":80",
    ]
)


@given(st.one_of(st.text(max_size=80), st.lists(_PIECES, max_size=25).map("".join)))
def test_bom_04_normalising_is_idempotent_and_only_ever_yields_ascii_domains(value: str) -> None:
    try:
        domain = normalise_domain(value)
    except InvalidRecordError:
        return
    assert _SHAPE.match(domain), domain
    assert len(domain) <= 253
    assert normalise_domain(domain) == domain


@given(st.from_regex(r"[a-z][a-z0-9]{0,20}\.(com|org|example|co\.uk)", fullmatch=True))
def test_bom_04_any_url_form_of_a_domain_gives_that_domain(domain: str) -> None:
    for form in (domain, domain.upper(), f"https://www.{domain}/x?y=1", f"http://{domain}:81", f"{domain}."):
        assert normalise_domain(form) == domain


# ---------------------------------------------------------------- BOM-05


def second_dataflow(raw: dict[str, Any], **changes: Any) -> DestinationInstance:
    other = copy.deepcopy(raw)
    other.update({"id": "bombora-abm-emea", **changes})
    return instance(other)


def test_bom_05_the_same_audience_name_through_two_dataflows_is_an_error_naming_both(
    raw: dict[str, Any],
) -> None:
    first = instance(raw)
    second = second_dataflow(raw)
    with pytest.raises(ConfigError) as err:
        check_audience_names(first, [first, second])
    assert (err.value.instance, err.value.field) == ("bombora-abm", "audiences.0.name")
    assert "'bombora-abm'" in err.value.detail and "'bombora-abm-emea'" in err.value.detail
    assert "ABM tier 1" in err.value.detail


def test_bom_05_names_compare_regardless_of_case_and_spacing(raw: dict[str, Any]) -> None:
    other = copy.deepcopy(raw)
    other["audiences"][0].update({"id": "aud-other", "name": "  abm   TIER 1 "})
    with pytest.raises(ConfigError):
        check_audience_names(instance(raw), [second_dataflow(other)])


def test_bom_05_one_name_twice_in_one_dataflow_is_an_error(raw: dict[str, Any]) -> None:
    raw["audiences"].append({"id": "aud-abm-tier1-copy", "name": "ABM Tier 1"})
    with pytest.raises(ConfigError) as err:
        check_audience_names(instance(raw), [])
    assert err.value.field == "audiences.1.name"
    assert "aud-abm-tier1" in err.value.detail and "aud-abm-tier1-copy" in err.value.detail


def test_bom_05_other_connections_and_disabled_dataflows_do_not_conflict(raw: dict[str, Any]) -> None:
    mine = instance(raw)
    check_audience_names(mine, [mine, second_dataflow(raw, secret="activation-local/bombora/other-account")])
    check_audience_names(mine, [mine, second_dataflow(raw, enabled=False)])
    other_name = copy.deepcopy(raw)
    other_name["audiences"][0]["name"] = "ABM tier 2"
    check_audience_names(mine, [mine, second_dataflow(other_name)])


def test_bom_05_one_bombora_account_is_one_base_url_and_client_id() -> None:
    def key(**fields: str) -> str:
        return account_key(BomboraConnection.model_validate({"clientId": "c", "clientSecret": "s", **fields}))

    assert key() == key(clientSecret="rotated") == key(baseUrl="https://api.bombora.com/")
    assert key() != key(clientId="other")


# ---------------------------------------------------------------- BOM-06


def test_bom_06_lists_are_keyed_by_audience_name() -> None:
    assert list_key("  ABM   Tier 1 ") == list_key("abm tier 1") == "abm tier 1"
    settings = BomboraSettings.model_validate({"listDescription": "{audienceName} from {audienceId}"})
    assert settings.describe("aud-1", "ABM tier 1") == "ABM tier 1 from aud-1"


def test_bom_06_of_several_lists_with_the_name_the_oldest_is_used() -> None:
    lists = [
        AccountList("b", "ABM", "Manual", "2026-02-01T00:00:00"),
        AccountList("a", "ABM", "Manual", "2026-01-01T00:00:00"),
        AccountList("c", "ABM", "Manual", ""),
    ]
    assert _oldest(lists).id == "a"

"""Function settings from the environment, and the config document from Parameter Store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from activation_core.config_store import load_destinations, load_instances
from activation_core.errors import ConfigError
from activation_core.settings import FunctionSettings
from tests.support import example_config, instance_of


def test_settings_are_read_from_the_template_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "DESTINATION_TYPE": "rainfocus",
        "CONFIG_PARAMETER_NAME": "/stack/destinations",
        "STATE_TABLE_NAME": "state",
        "DEAD_LETTER_QUEUE_URL": "https://sqs/dlq",
        "ALLOW_LOOPBACK_URLS": "TRUE",
        "CONFIG_CACHE_SECONDS": "5",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = FunctionSettings.from_env()
    assert settings.destination_type == "rainfocus"
    assert settings.allow_loopback_urls is True
    assert settings.config_cache_seconds == 5


def test_loopback_urls_are_refused_unless_the_local_flag_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALLOW_LOOPBACK_URLS", raising=False)
    for key in ("DESTINATION_TYPE", "CONFIG_PARAMETER_NAME", "STATE_TABLE_NAME", "DEAD_LETTER_QUEUE_URL"):
        monkeypatch.setenv(key, "x")
    assert FunctionSettings.from_env().allow_loopback_urls is False


def test_missing_environment_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DESTINATION_TYPE", raising=False)
    with pytest.raises(ValueError, match="destination_type"):
        FunctionSettings.from_env()


@pytest.fixture
def ssm() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("ssm")


def test_config_is_loaded_from_parameter_store_and_cached(ssm: Any) -> None:
    ssm.put_parameter(Name="/s/destinations", Type="String", Value=json.dumps(example_config()))
    first = load_destinations("/s/destinations", max_age=60)
    ssm.put_parameter(Name="/s/destinations", Type="String", Value="{}", Overwrite=True)
    assert load_destinations("/s/destinations", max_age=60) == first  # served from the short cache
    assert [d.id for d in first.of_type("rainfocus")] == ["rainfocus-expo2026"]


def test_an_invalid_stored_instance_is_set_aside_naming_instance_and_field(ssm: Any) -> None:
    document = example_config()
    instance_of(document, "rainfocus")["mapping"][0]["source"] = "nowhere"
    ssm.put_parameter(Name="/bad/destinations", Type="String", Value=json.dumps(document))
    loaded = load_instances("/bad/destinations", max_age=0)
    (invalid,) = loaded.invalid
    assert (invalid.id, invalid.type, invalid.error.field) == (
        "rainfocus-expo2026",
        "rainfocus",
        "mapping.0.source",
    )
    assert invalid.audience_ids == frozenset({"aud-expo-invitees"})
    assert "rainfocus-expo2026" not in [d.id for d in loaded.config.destinations]
    assert len(loaded.config.destinations) == len(document["destinations"]) - 1  # the others all load


def test_an_unreadable_stored_config_fails_the_whole_document(ssm: Any) -> None:
    ssm.put_parameter(Name="/junk/destinations", Type="String", Value="{not json")
    with pytest.raises(ConfigError) as err:
        load_destinations("/junk/destinations", max_age=0)
    assert err.value.instance == "<document>"

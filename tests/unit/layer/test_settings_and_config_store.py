"""Function settings from the environment, and the config document from Parameter Store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from activation_core.config_store import load_destinations
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


def test_an_invalid_stored_config_names_instance_and_field(ssm: Any) -> None:
    document = example_config()
    instance_of(document, "rainfocus")["mapping"][0]["source"] = "nowhere"
    ssm.put_parameter(Name="/bad/destinations", Type="String", Value=json.dumps(document))
    with pytest.raises(ConfigError) as err:
        load_destinations("/bad/destinations", max_age=0)
    assert err.value.instance == "rainfocus-expo2026"
    assert err.value.field == "mapping.0.source"

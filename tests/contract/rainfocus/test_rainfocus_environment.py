"""RNF-01: the document's four connection fields (client ID, client secret, environment, org ID) are
enough; `environment` chooses the API base (the project's table, or the operator's override)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from activation_core.config_store import parse_destinations
from activation_core.errors import ConfigError
from activation_core.models.config import DestinationInstance
from activation_core.outcomes import Kind
from activation_core.pipeline import Pipeline
from activation_core.settings import FunctionSettings
from local.fakes.rainfocus import FakeRainfocus
from rainfocus.models import ENVIRONMENT_BASE_URLS
from rainfocus.service import RainfocusDestination
from tests.contract.conftest import put_connection_secret
from tests.support import example_config, instance_of, load_event, sqs_record

SECRET = "activation-local/rainfocus/expo2026"


@pytest.fixture
def environments() -> Iterator[dict[str, FakeRainfocus]]:
    """Two RainFocus environments of one org, each its own server; the token names the API profile."""
    with FakeRainfocus(profile_from_token=True) as dev, FakeRainfocus(profile_from_token=True) as prod:
        yield {"dev": dev, "prod": prod}


def four_fields(aws_backend: Any, fake: FakeRainfocus) -> None:
    put_connection_secret(
        aws_backend,
        SECRET,
        {"clientId": fake.client_id, "clientSecret": fake.client_secret, "orgId": fake.org_id},
    )


def instance(**settings: Any) -> dict[str, Any]:
    document = instance_of(example_config(), "rainfocus")
    document["settings"].update(settings)
    return document


def run(function_settings: FunctionSettings, document: dict[str, Any], email: str) -> Any:
    config = parse_destinations({"schemaVersion": "1", "destinations": [document]})
    event = load_event("profile-membership-realized")
    event["detail"]["profile"]["identities"]["email"] = email
    return Pipeline(RainfocusDestination(), function_settings, lambda: config).process(
        [sqs_record(event, "m-1")]
    )


def test_rnf_01_environment_chooses_the_api_base_with_the_four_document_fields(
    aws_backend: Any, environments: dict[str, FakeRainfocus], function_settings: FunctionSettings
) -> None:
    four_fields(aws_backend, environments["dev"])
    overrides = {name: fake.base_url for name, fake in environments.items()}
    results = run(
        function_settings, instance(environment="dev", environmentBaseUrls=overrides), "ada@example.com"
    )

    assert results["m-1"].outcome.kind is Kind.DELIVERED
    assert list(environments["dev"].attendees) == [("expo2026", "ada@example.com")]
    assert environments["prod"].requests == []  # the other environment is never called


def test_rnf_01_an_environment_without_a_known_base_is_a_config_error_naming_it(
    aws_backend: Any, function_settings: FunctionSettings
) -> None:
    put_connection_secret(aws_backend, SECRET, {"clientId": "c", "clientSecret": "s", "orgId": "org-1"})
    document = DestinationInstance.model_validate(instance(environment="staging"))
    with pytest.raises(ConfigError, match=r"settings\.environment.*staging"):
        RainfocusDestination().connect(document, function_settings)


def test_rnf_01_the_secret_base_url_still_overrides_the_environment(
    aws_backend: Any, environments: dict[str, FakeRainfocus], function_settings: FunctionSettings
) -> None:
    fake = environments["prod"]
    put_connection_secret(
        aws_backend,
        SECRET,
        {"baseUrl": fake.base_url, "clientId": fake.client_id, "clientSecret": fake.client_secret,
         "orgId": fake.org_id},
    )  # fmt: skip
    results = run(function_settings, instance(environment="prod"), "ada@example.com")
    assert results["m-1"].outcome.kind is Kind.DELIVERED
    assert ("expo2026", "ada@example.com") in fake.attendees


def test_the_production_environment_has_a_known_base() -> None:
    assert ENVIRONMENT_BASE_URLS["prod"] == "https://api.rainfocus.com"

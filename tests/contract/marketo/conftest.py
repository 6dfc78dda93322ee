"""Fixtures for the Marketo connector against the fake Marketo server (over HTTP, AWS in moto)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from moto import mock_aws

from activation_core import aws, oauth
from activation_core.config_store import parse_destinations
from activation_core.outcomes import Outcome
from activation_core.pipeline import Pipeline
from activation_core.settings import FunctionSettings
from local.fakes.marketo import FakeMarketo
from local.moto_patches import make_dynamodb_writes_atomic
from marketo.service import MarketoDestination, clear_schema_cache
from tests.contract.conftest import STATE_TABLE, put_connection_secret
from tests.support import create_state_table, example_config, load_event, sqs_record

SECRET = "activation-local/marketo/expo2026"
EXPO = "aud-expo-invitees"
WEBINAR = "aud-webinar"
EXPO_LIST = 1001
WEBINAR_LIST = 1002


@dataclass
class Recorder:
    """Metrics and sleeps the connector asked for (no wall-clock waits in tests)."""

    metrics: list[tuple[str, float]] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def metric(self, name: str, value: float) -> None:
        self.metrics.append((name, value))

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def count(self, name: str) -> float:
        return sum(v for n, v in self.metrics if n == name)


@pytest.fixture(scope="module")
def _moto_module() -> Iterator[None]:
    """One moto for a test module: boto3 clients are built once, not per test (they cost ~0.3 s each)."""
    with mock_aws():
        aws.reset_clients()
        yield
        aws.reset_clients()


@pytest.fixture
def aws_backend(_moto_module: None) -> Iterator[Any]:
    """This package's override of the contract `aws_backend`: a fresh state table and no secrets per test."""
    oauth.clear_memory_cache()
    dynamodb, secrets = aws.client("dynamodb"), aws.client("secretsmanager")
    create_state_table(dynamodb, STATE_TABLE)
    yield secrets
    dynamodb.delete_table(TableName=STATE_TABLE)
    for page in secrets.get_paginator("list_secrets").paginate():
        for secret in page["SecretList"]:
            secrets.delete_secret(SecretId=secret["ARN"], ForceDeleteWithoutRecovery=True)
    oauth.clear_memory_cache()


@pytest.fixture(autouse=True)
def fresh_schema_cache() -> Iterator[None]:
    clear_schema_cache()
    yield
    clear_schema_cache()


@pytest.fixture(scope="module")
def _fake_server() -> Iterator[FakeMarketo]:
    with FakeMarketo() as server:
        yield server


@pytest.fixture
def fake(_fake_server: FakeMarketo) -> Iterator[FakeMarketo]:
    """An empty Marketo instance with partitions Default and Expo and two static lists."""
    server = _fake_server
    server.reset()
    server.add_partition("Expo")
    server.add_list(EXPO_LIST, "Expo 2026 invitees")
    server.add_list(WEBINAR_LIST, "Webinar")
    yield server
    # Every request matched Marketo's OpenAPI files: the autouse fixture in tests/conftest.py.


@pytest.fixture
def connection(aws_backend: Any, fake: FakeMarketo) -> Any:
    put_connection_secret(
        aws_backend,
        SECRET,
        {"baseUrl": fake.base_url, "clientId": fake.client_id, "clientSecret": fake.client_secret},
    )
    return aws_backend


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def marketo_instance(**settings: Any) -> dict[str, Any]:
    """The example Marketo instance, with settings overridden (a None value removes the setting)."""
    document = next(d for d in example_config()["destinations"] if d["type"] == "marketo")
    instance = copy.deepcopy(document)
    for name, value in settings.items():
        if value is None:
            instance["settings"].pop(name, None)
        else:
            instance["settings"][name] = value
    instance["audiences"].append(
        {"id": WEBINAR, "name": "Webinar", "origin": "upload", "extras": {"listId": WEBINAR_LIST}}
    )
    return instance


def settings_for(sync_type: str, person_action: str | None, partition: str | None = "Expo") -> dict[str, Any]:
    profiles = sync_type != "audience_only"
    return {
        "syncType": sync_type,
        "personAction": person_action if profiles else None,
        "partition": partition if profiles else None,
    }


@dataclass
class Run:
    """A pipeline for one configured instance: `run(events)` -> outcome per message id."""

    pipeline: Pipeline

    def __call__(self, events: list[dict[str, Any]]) -> dict[str, Outcome]:
        records = [sqs_record(event, f"m-{i}") for i, event in enumerate(events)]
        return {key: result.outcome for key, result in self.pipeline.process(records).items()}


def make_run(
    function_settings: FunctionSettings,
    recorder: Recorder,
    instance: dict[str, Any] | None = None,
    **destination: Any,
) -> Run:
    config = parse_destinations({"schemaVersion": "1", "destinations": [instance or marketo_instance()]})
    plug = MarketoDestination(emit_metric=recorder.metric, sleep=recorder.sleep, **destination)
    return Run(Pipeline(plug, function_settings, lambda: config))


@pytest.fixture
def run_with(connection: Any, function_settings: FunctionSettings, recorder: Recorder) -> Callable[..., Run]:
    """`run_with(**settings)` -> a Run for the example instance with those settings."""

    def build(**settings: Any) -> Run:
        return make_run(function_settings, recorder, marketo_instance(**settings))

    return build


def profile(
    email: str,
    *,
    status: str = "realized",
    audience: str = EXPO,
    occurred_at: str = "2026-11-28T10:00:00Z",
    first: str = "Ada",
    last: str = "Lovelace",
    **attributes: Any,
) -> dict[str, Any]:
    """A membership event for one profile (the sample event with this email, names and audience)."""
    event = load_event("profile-membership-realized")
    detail = event["detail"]
    detail["eventId"] = f"evt-{email}-{audience}-{status}-{occurred_at}"
    detail["occurredAt"] = occurred_at
    detail["profile"]["identities"] = {"email": email}
    detail["profile"]["attributes"]["person"]["name"] = {"firstName": first, "lastName": last}
    for name, value in attributes.items():
        section, key = name.split("__")
        detail["profile"]["attributes"].setdefault(section, {})[key] = value
    detail["audiences"] = [
        {
            "id": audience,
            "name": audience,
            "status": status,
            "origin": "segmentation",
            "updatedAt": occurred_at,
        }
    ]
    return event


@pytest.fixture
def atomic_dynamodb_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto checks a write's condition and stores the item without a lock; DynamoDB serialises them."""
    make_dynamodb_writes_atomic(monkeypatch.setattr)

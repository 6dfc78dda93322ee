"""COM-06: a connection secret that does not validate (here a numeric client secret) makes its instance
retry, naming the instance and the field, never the value; nothing of it reaches an outcome or a log line."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from activation_cli import discovery
from activation_core import aws
from activation_core.config_store import load_destinations
from activation_core.models.config import DestinationInstance
from activation_core.observability import logger
from activation_core.pipeline import Pipeline
from activation_core.settings import FunctionSettings
from tests.support import example_config, sqs_record

NUMERIC_SECRET = 987654321


@pytest.fixture
def aws_mock() -> Iterator[None]:
    with mock_aws():
        aws.reset_clients()
        yield
        aws.reset_clients()


@pytest.mark.parametrize("destination_type", discovery.destination_types())
def test_com_06_a_numeric_client_secret_never_reaches_an_error_or_a_log(
    aws_mock: None, destination_type: str
) -> None:
    document = next(d for d in example_config()["destinations"] if d["type"] == destination_type)
    secret: dict[str, Any] = {"clientId": "id-of-a-test-client", "clientSecret": NUMERIC_SECRET, "baseUrl": 1}
    boto3.client("secretsmanager").create_secret(Name=document["secret"], SecretString=json.dumps(secret))
    config = {"schemaVersion": "1", "destinations": [document]}
    boto3.client("ssm").put_parameter(
        Name=f"/config/{destination_type}", Type="String", Value=json.dumps(config)
    )
    instance = DestinationInstance.model_validate(document)
    settings = FunctionSettings(
        destination_type=destination_type,
        config_parameter_name=f"/config/{destination_type}",
        state_table_name="t",
        dead_letter_queue_url="q",
    )
    destination = discovery.destination(destination_type)

    # Through the pipeline, as a batch meets it: retried, and the log line names the field only.
    pipeline = Pipeline(destination, settings, lambda: load_destinations(f"/config/{destination_type}", 0))
    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        results = pipeline.process([sqs_record(json.dumps(_event(destination_type)))])
    finally:
        logger.registered_handler.setStream(previous)  # type: ignore[attr-defined]
    (result,) = results.values()
    # This instance only retries, as the README says of a connection secret that does not parse
    # (the same reason for every destination), naming a field of its own connection secret (the
    # numeric one, or one it lacks: a static-credential destination has no clientSecret).
    assert result.outcome.reason == f"connection_unavailable:{instance.id}"
    fields = discovery.model_fields(discovery.connection_kinds()[destination_type].model)
    assert any(field in result.outcome.detail for field in fields), result.outcome.detail
    assert str(NUMERIC_SECRET) not in stream.getvalue()
    assert str(NUMERIC_SECRET) not in json.dumps([r.outcome.detail for r in results.values()])


def _event(destination_type: str) -> dict[str, Any]:
    from local.examples import sample_events

    spec = discovery.destinations().get(destination_type)
    account = spec is not None and spec.entity == "account"
    wanted = "Account Audience Membership Changed" if account else "Profile Updated"
    return next(e for e in sample_events() if e["detail-type"] == wanted)

"""Contract tests: a destination's real client against its fake vendor server, over a socket.

AWS (Secrets Manager for the connection and token, DynamoDB for the token lease) is moto in-process;
the vendor is a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from activation_core import aws, oauth
from activation_core.settings import FunctionSettings
from tests.support import create_state_table

STATE_TABLE = "state"


@pytest.fixture
def aws_backend() -> Iterator[Any]:
    with mock_aws():
        aws.reset_clients()
        oauth.clear_memory_cache()
        create_state_table(boto3.client("dynamodb"), STATE_TABLE)
        yield boto3.client("secretsmanager")
        oauth.clear_memory_cache()
        aws.reset_clients()


def put_connection_secret(secrets: Any, name: str, value: dict[str, Any]) -> None:
    secrets.create_secret(Name=name, SecretString=json.dumps(value))


def read_secret(secrets: Any, name: str) -> dict[str, Any]:
    return dict(json.loads(secrets.get_secret_value(SecretId=name)["SecretString"]))


@pytest.fixture
def function_settings() -> FunctionSettings:
    return FunctionSettings(
        destination_type="test",
        config_parameter_name="/test/destinations",
        state_table_name=STATE_TABLE,
        dead_letter_queue_url="unused",
        allow_loopback_urls=True,
    )

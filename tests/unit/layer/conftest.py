"""Fixtures for the layer's AWS-backed mechanisms: in-process moto (no sockets), a state table."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from activation_core import aws
from local.moto_patches import make_dynamodb_writes_atomic
from tests.support import create_state_table

STATE_TABLE = "activation-state-test"
REGION = "us-east-1"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # In-process moto intercepts only AWS endpoints: a custom endpoint would reach for a socket.
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    aws.reset_clients()
    yield
    aws.reset_clients()


@pytest.fixture
def atomic_dynamodb_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto's item writes atomic, as DynamoDB's are.

    moto evaluates a condition and then stores the item without a lock, so threads racing in one
    process could both "win"; real DynamoDB serialises conditional writes per item.
    """
    make_dynamodb_writes_atomic(monkeypatch.setattr)


@pytest.fixture
def mocked_aws(aws_env: None, atomic_dynamodb_writes: None) -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def dynamodb(mocked_aws: None) -> Any:
    client = boto3.client("dynamodb", region_name=REGION)
    create_state_table(client, STATE_TABLE)
    return client


@pytest.fixture
def state_table(dynamodb: Any) -> str:
    """The name of the state table `dynamodb` created."""
    return STATE_TABLE


@pytest.fixture
def secretsmanager(mocked_aws: None) -> Any:
    return boto3.client("secretsmanager", region_name=REGION)

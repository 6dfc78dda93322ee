"""In-process moto (no sockets) with a state table, for the Bombora list registry."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from activation_core import aws
from bombora import lists
from local.moto_patches import make_dynamodb_writes_atomic
from tests.support import create_state_table

STATE_TABLE = "state"


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # in-process moto intercepts AWS endpoints only
    # DynamoDB serialises conditional writes per item; moto does not: make its writes atomic.
    make_dynamodb_writes_atomic(monkeypatch.setattr)
    aws.reset_clients()
    lists.clear_memory_cache()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_state_table(client, STATE_TABLE)
        yield client
    lists.clear_memory_cache()
    aws.reset_clients()

"""Shared fixtures of the webhook contract tests: the fake receiver and its connection secret."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from local.fakes.webhook import FakeWebhook
from tests.contract.conftest import put_connection_secret

SECRET = "activation-local/webhook/crm-sync"


@pytest.fixture
def fake() -> Iterator[FakeWebhook]:
    with FakeWebhook() as server:
        yield server


@pytest.fixture
def connection(aws_backend: Any, fake: FakeWebhook) -> Any:
    put_connection_secret(aws_backend, SECRET, {"url": fake.url, "signingSecret": fake.signing_secret})
    return aws_backend

"""Shared fixtures of the RainFocus contract tests: the fake RainFocus and its connection secret."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from local.fakes.rainfocus import FakeRainfocus
from tests.contract.conftest import put_connection_secret

SECRET = "activation-local/rainfocus/expo2026"


@pytest.fixture
def fake() -> Iterator[FakeRainfocus]:
    with FakeRainfocus() as server:
        yield server


@pytest.fixture
def connection(aws_backend: Any, fake: FakeRainfocus) -> Any:
    put_connection_secret(
        aws_backend,
        SECRET,
        {"baseUrl": fake.base_url, "clientId": fake.client_id, "clientSecret": fake.client_secret,
         "orgId": fake.org_id, "apiProfile": fake.api_profile},
    )  # fmt: skip
    return aws_backend

"""Bombora contract fixtures: the fake Bombora server and its connection secret."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bombora import lists
from local.fakes.bombora import FakeBombora
from tests.contract.bombora.helpers import SECRET, secret_for
from tests.contract.conftest import put_connection_secret


@pytest.fixture(autouse=True)
def fresh_list_cache() -> Iterator[None]:
    lists.clear_memory_cache()
    yield
    lists.clear_memory_cache()


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeBombora]:
    # One server per module: stopping one waits out its serve loop's poll interval (~0.5 s).
    with FakeBombora() as server:
        yield server


@pytest.fixture
def fake(fake_server: FakeBombora) -> FakeBombora:
    fake_server.reset()
    return fake_server


@pytest.fixture
def connection(aws_backend: Any, fake: FakeBombora) -> Any:
    put_connection_secret(aws_backend, SECRET, secret_for(fake))
    return aws_backend

"""Fixtures for the SFMC contract tests: moto in-process, the fake SFMC over HTTP, a steerable clock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from activation_core import http
from local.fakes.sfmc import FakeSfmc
from sfmc_ingestion.tasks import page as page_task
from tests.contract.sfmc.flow import SfmcEnv, install_secret


class Clock:
    """Wall time that a test moves forward (token lifetimes) without sleeping."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> Iterator[FakeSfmc]:
    with FakeSfmc(clock=clock) as server:
        yield server


@pytest.fixture
def make_env(aws_backend: Any, fake: FakeSfmc, clock: Clock) -> Iterator[Any]:
    """`make_env(config_document)` -> an SfmcEnv with the connection secret installed."""
    page_task.reset_clients()
    http.reset_shared_client()
    created: list[SfmcEnv] = []

    def make(config_document: dict[str, Any]) -> SfmcEnv:
        env = SfmcEnv(fake=fake, config_document=config_document, clock=clock)
        if not created:
            install_secret(aws_backend, env)
        created.append(env)
        return env

    yield make
    page_task.reset_clients()
    http.reset_shared_client()

"""The project's local stack for integration tests: template.yaml in moto, fake vendors on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.harness import ActivationHarness


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ActivationHarness]:
    """One deployed stack per test module; tests in a module share it (and its counters)."""
    with ActivationHarness(workdir=tmp_path_factory.mktemp("activation")) as running:
        yield running

"""`activation local up`: the local stack kept running for the other commands (dev only)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli.conftest import Invoke

pytestmark = pytest.mark.integration


def test_local_up_starts_the_stack_prints_its_exports_and_stops(cli: Invoke, tmp_path: Path) -> None:
    endpoint_before = os.environ.get("AWS_ENDPOINT_URL")
    result = cli("local", "up", "--duration", "0", "--workdir", tmp_path)
    assert result.exit_code == 0, result.output
    assert "export ACTIVATION_STACK=activation-local" in result.stdout
    assert "export AWS_ENDPOINT_URL=http://127.0.0.1:" in result.stdout
    assert '"rainfocus": "http://127.0.0.1:' in result.stdout  # the fakes the example secrets point at
    assert "local stack stopped" in result.stdout
    assert os.environ.get("AWS_ENDPOINT_URL") == endpoint_before  # this process is left as it was

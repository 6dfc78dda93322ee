"""The CLI under test: Typer's CliRunner in this process, so it sees the environment a test (or a
running local stack) sets; machine-readable output is read from stdout only."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from typer.testing import CliRunner, Result

from activation_cli.main import app

Invoke = Callable[..., Result]


@pytest.fixture
def cli() -> Invoke:
    runner = CliRunner()

    def invoke(*args: object, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        # Wide enough that Rich never folds a table cell a test looks for.
        return runner.invoke(
            app,
            [str(a) for a in args],
            input=input,
            env={"COLUMNS": "220", **(env or {})},
            catch_exceptions=False,
        )

    return invoke

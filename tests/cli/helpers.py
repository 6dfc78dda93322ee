"""Helpers shared by the CLI tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import Result


def stdout_json(result: Result) -> Any:
    assert result.stdout.strip(), f"no output (exit {result.exit_code}): {result.stderr}"
    return json.loads(result.stdout)


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path

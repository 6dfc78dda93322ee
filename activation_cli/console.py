"""Output helpers: Rich consoles for people, plain JSON for scripts, one way to fail."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

# No file given: Rich writes to whatever sys.stdout/sys.stderr is at print time (tests capture it).
out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    """Machine-readable output on stdout, nothing else on it (scripts pipe it to jq)."""
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))

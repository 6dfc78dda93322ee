"""`activation preview --destination ID EVENT.json`: the exact vendor requests a profile would produce.

The event runs through the destination's real pipeline and connector (mapping, hashing, consent,
batching, payloads) in a sandbox process where nothing can leave: AWS is an in-memory mock and every
HTTP request is recorded and answered by the vendor's fake (see activation_cli/sandbox.py). Secrets
are masked, and emails too unless --show-pii.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.json import JSON
from rich.markup import escape
from rich.table import Table

from activation_cli import development
from activation_cli.config import check, read_document, read_pushed
from activation_cli.console import err, fail, out, print_json
from activation_cli.stack import STACK_ENV, load_stack

SANDBOX_TIMEOUT = 120


def _events(path: Path) -> list[Any]:
    document = read_document(path)
    if isinstance(document, dict) and isinstance(document.get("Records"), list):
        return list(document["Records"])  # an SQS batch as the function receives it
    return list(document) if isinstance(document, list) else [document]


def _config(config_file: Path | None, stack_name: str | None) -> dict[str, Any]:
    if config_file is not None:
        document = read_document(config_file)
    elif stack_name:
        document = read_pushed(load_stack(stack_name))
    else:
        development.require("preview", moto=False, files=("shared/config",))
        from local.examples import example_config

        document = example_config()
        err.print(
            "[dim]no --config or --stack: previewing with the example config (functions/<type>/example.json)[/]"
        )
    if not isinstance(document, dict):
        fail("the destinations config is not a JSON object")
    return document


def run_sandbox(request: dict[str, Any]) -> dict[str, Any]:
    """Run the sandbox in its own process, with no AWS credentials or endpoint to reach anything real."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "preview",
            "AWS_SECRET_ACCESS_KEY": "preview",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "ActivationPreview",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
    )
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "activation_cli.sandbox"],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            env=env,
            timeout=SANDBOX_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        fail(f"the preview did not finish in {SANDBOX_TIMEOUT} s")
    try:
        result: dict[str, Any] = json.loads(completed.stdout)
    except json.JSONDecodeError:
        fail(f"the preview sandbox failed: {completed.stderr.strip()[-800:] or 'no output'}")
    if "error" in result:
        fail(f"the preview failed: {result['error']}")
    return result


def _render(result: dict[str, Any]) -> None:
    source = "the vendor's local fake" if result["fake"] else "a generic success (no fake for this vendor)"
    out.print(
        f"[bold]{escape(result['instance'])}[/] ({result['type']}): {len(result['requests'])} request(s), "
        f"nothing sent. Answers came from {source}; credentials and vendor ids are the fake's."
    )
    for index, call in enumerate(result["requests"], start=1):
        out.print(f"\n[bold cyan]{index}. {call['method']} {escape(call['url'])}[/]  -> {call['status']}")
        for name, value in call["headers"].items():
            out.print(f"   {escape(name)}: {escape(value)}")
        if isinstance(call["body"], dict | list):
            out.print(JSON(json.dumps(call["body"]), indent=2))
        elif call["body"]:
            out.print(escape(str(call["body"])))
    table = Table(title="\noutcomes", title_justify="left")
    for column in ("record", "outcome", "reason", "detail"):
        table.add_column(column, overflow="fold")
    for outcome in result["outcomes"]:
        table.add_row(outcome["messageId"], outcome["outcome"], outcome["reason"], outcome["detail"])
    out.print(table)


def preview(
    *,
    event_file: Annotated[
        Path,
        typer.Argument(metavar="EVENT.json", help="An EventBridge event, a list of them, or an SQS batch"),
    ],
    destination: Annotated[str, typer.Option("--destination", "-d", help="The destination instance id")],
    config_file: Annotated[Path | None, typer.Option("--config", help="Destinations config file")] = None,
    stack_name: Annotated[
        str | None, typer.Option("--stack", envvar=STACK_ENV, help="Read the config the stack runs with")
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="Vendor base URL to show (default: the connection model's)"),
    ] = None,
    show_pii: Annotated[
        bool, typer.Option("--show-pii", help="Do not mask emails (secrets stay masked)")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable result")] = False,
) -> None:
    """Show the vendor requests EVENT.json would produce on one destination; nothing is sent."""
    development.require("preview")  # the sandbox answers from the vendors' fakes, in moto
    document = _config(config_file, stack_name)
    config, problems = check(document)
    if problems:
        first = problems[0]
        fail(f"the config is invalid: {first.instance}: {first.field}: {first.message}")
    ids = [i.id for i in config.destinations]
    if destination not in ids:
        fail(f"no destination instance '{destination}' in the config; known: {', '.join(ids)}")
    request = {
        "config": document,
        "instance": destination,
        "events": _events(event_file),
        "baseUrl": base_url,
        "showPii": show_pii,
    }
    result = run_sandbox(request)
    if as_json:
        print_json(result)
    else:
        _render(result)

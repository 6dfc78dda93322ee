"""`activation ingest run|status|validate|push`: the Salesforce Marketing Cloud ingestion, on demand.

A thin wrapper over `sfmc_ingestion.cli` (the ingestion's own operator functions), with the CLI's
session (profile, region, AWS_ENDPOINT_URL) and stack lookup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from activation_cli.console import fail, out, print_json
from activation_cli.stack import STACK_ENV, aws_errors, client, load_stack

app = typer.Typer(
    no_args_is_help=True, help="Run and watch the SFMC ingestion (data extensions -> profile events)."
)

STATE_MACHINE_OUTPUT = "SfmcIngestionStateMachineArn"


def _outputs(stack_name: str) -> dict[str, str]:
    stack = load_stack(stack_name)
    stack.output(STATE_MACHINE_OUTPUT)  # fails clearly on a stack without the ingestion
    return stack.outputs


@app.command()
def run(
    *,
    stack_name: Annotated[str, typer.Option("--stack", envvar=STACK_ENV, help="The deployed stack")],
    data_extensions: Annotated[
        list[str] | None,
        typer.Option("--data-extension", metavar="KEY", help="Only this data extension (repeatable)"),
    ] = None,
    sources: Annotated[
        list[str] | None, typer.Option("--source", metavar="ID", help="Only this source (repeatable)")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the run and print its result")] = False,
    check_deletions: Annotated[
        bool,
        typer.Option("--check-deletions", help="Also run the deletion checks (rows deleted -> exits) now"),
    ] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="With --wait: give up after N seconds")] = 900.0,
    poll: Annotated[
        float, typer.Option("--poll", min=0.01, help="With --wait: seconds between checks")
    ] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable result")] = False,
) -> None:
    """Start an ingestion run now, whatever the schedules say. Exit 1 if a waited-for run fails."""
    from sfmc_ingestion import cli

    outputs = _outputs(stack_name)
    with aws_errors():
        arn = cli.start_run(
            outputs,
            data_extensions=data_extensions or (),
            sources=sources or (),
            sfn=client("stepfunctions"),
            check_deletions=check_deletions,
        )
        if not wait:
            if as_json:
                print_json({"executionArn": arn, "status": "RUNNING"})
            else:
                out.print(f"started {arn}")
            return
        try:
            execution = cli.wait_for(arn, sfn=client("stepfunctions"), timeout=timeout, poll=poll)
        except TimeoutError as exc:
            fail(str(exc))
        report = cli.status(outputs, runs=1, dynamodb=client("dynamodb"))
    if as_json:
        print_json({"executionArn": arn, "status": execution["status"], "report": report})
    else:
        out.print(f"{arn}: {execution['status']}")
        out.print(cli.render_status(report), markup=False)
    if execution["status"] != "SUCCEEDED":
        raise typer.Exit(1)


@app.command()
def status(
    stack_name: Annotated[str, typer.Option("--stack", envvar=STACK_ENV, help="The deployed stack")],
    runs: Annotated[int, typer.Option("--runs", min=1, help="How many recent runs")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable result")] = False,
) -> None:
    """Recent runs (rows read, landed, published, failed per data extension) and watermarks."""
    from sfmc_ingestion import cli

    outputs = _outputs(stack_name)
    with aws_errors():
        report = cli.status(outputs, runs=runs, dynamodb=client("dynamodb"))
    if as_json:
        print_json(report)
    else:
        out.print(cli.render_status(report), markup=False)


@app.command()
def validate(file: Annotated[Path, typer.Argument(help="The ingestion config (JSON)")]) -> None:
    """Check an ingestion config file; exit 1 naming the source and field when invalid."""
    from activation_core.errors import ConfigError
    from sfmc_ingestion.config import parse_ingestion_config

    if not file.is_file():
        fail(f"no such file: {file}")
    try:
        config = parse_ingestion_config(file.read_text())
    except ConfigError as exc:
        fail(f"invalid ingestion config: {exc.detail}")
    count = sum(len(s.data_extensions) for s in config.sources)
    out.print(f"valid: {len(config.sources)} source(s), {count} data extension(s)")


@app.command()
def push(
    file: Annotated[Path, typer.Argument(help="The ingestion config (JSON)")],
    stack_name: Annotated[str, typer.Option("--stack", envvar=STACK_ENV, help="The deployed stack")],
) -> None:
    """Validate the ingestion config and write it to the stack's parameter."""
    from activation_core.errors import ConfigError
    from sfmc_ingestion import cli

    if not file.is_file():
        fail(f"no such file: {file}")
    outputs = _outputs(stack_name)
    try:
        with aws_errors():
            count = cli.push_config(outputs, file.read_text(), ssm=client("ssm"))
    except ConfigError as exc:
        fail(f"invalid ingestion config: {exc.detail}")
    out.print(f"installed: {count} data extension(s) in {outputs['SfmcIngestionConfigParameterName']}")

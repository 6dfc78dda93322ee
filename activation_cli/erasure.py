"""`activation erasure status REQUEST_ID`: what every destination instance did with a data subject's
erasure request (`Profile Erasure Requested`), from the erasure ledger in the state table
(`activation_core.erasure`), so a data protection officer can show the request was carried out.

The stack's own stores answer too, under `stack` (e.g. `sfmc-deletion-check-keys`: the SFMC source's
deletion-check keys of the person were forgotten, or it held none).

Outcomes: `erased` (the vendor deleted the person), `not_found` (the vendor held no such person),
`unsupported` (the vendor's API offers no deletion: erase there by hand), `failed` (the request reached
the DLQ: fix the cause, replay it). An instance with no line yet has not answered (the request is
still queued or retrying).
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

import typer
from rich.table import Table

from activation_cli.console import out, print_json
from activation_cli.stack import STACK_ENV, aws_errors, client, load_stack

app = typer.Typer(no_args_is_help=True, help="Data subject erasure requests: their outcomes per destination.")


def report(state_table: str, request_id: str, destination_types: list[str]) -> dict[str, Any]:
    from activation_core import erasure

    with aws_errors():
        outcomes = erasure.read(
            client("dynamodb"), state_table, request_id, [*destination_types, erasure.STACK]
        )
    rows = [
        {
            "destination": o.destination_type,
            "instance": o.instance_id,
            "outcome": o.outcome,
            "reason": o.reason,
            "detail": o.detail,
            "recordedAt": int(o.recorded_at),
        }
        for o in sorted(outcomes, key=lambda o: (o.destination_type, o.instance_id))
    ]
    return {"requestId": request_id, "counts": dict(Counter(r["outcome"] for r in rows)), "outcomes": rows}


@app.command("status")
def status(
    request_id: Annotated[str, typer.Argument(help="The request id of the Profile Erasure Requested event")],
    stack_name: Annotated[str, typer.Option("--stack", envvar=STACK_ENV, help="The deployed stack")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable result")] = False,
) -> None:
    """Every destination instance's (and the stack's own stores') outcome for one erasure request. Exit code 3 while any failed or
    nothing is recorded yet."""
    stack = load_stack(stack_name)
    data = report(stack.output("StateTableName"), request_id, stack.destination_types())
    if as_json:
        print_json(data)
    else:
        table = Table(title=f"erasure request {request_id}", title_justify="left")
        for column in ("destination", "instance", "outcome", "reason", "detail"):
            table.add_column(column)
        for row in data["outcomes"]:
            table.add_row(row["destination"], row["instance"], row["outcome"], row["reason"], row["detail"])
        out.print(table)
        out.print(
            ", ".join(f"{name} {count}" for name, count in sorted(data["counts"].items())) or "no outcome yet"
        )
    if not data["outcomes"] or data["counts"].get("failed"):
        raise typer.Exit(3)

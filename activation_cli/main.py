"""Entry point of the `activation` command: one sub-command per task an operator has.

Every command that touches AWS finds its resources through the stack's Outputs (`--stack`, or
$ACTIVATION_STACK) and honours AWS_ENDPOINT_URL, so it works against AWS and the local stack alike.
"""

from typing import Annotated

import typer

from activation_cli import (
    config,
    connect,
    dlq,
    erasure,
    ingest,
    local,
    preview,
    sfmc,
    snapshot,
    stack,
    status,
    upgrade,
)

app = typer.Typer(
    no_args_is_help=True,
    help="Operate the audience activation stack (AWS or the local stack).",
    pretty_exceptions_show_locals=False,  # a traceback's locals could hold credentials
)


@app.callback()
def _session(
    profile: Annotated[str | None, typer.Option(envvar="AWS_PROFILE", help="AWS profile")] = None,
    region: Annotated[str | None, typer.Option(envvar="AWS_REGION", help="AWS region")] = None,
) -> None:
    stack.configure(profile, region)


app.add_typer(config.app, name="config")
app.add_typer(connect.app, name="connect")
app.add_typer(dlq.app, name="dlq")
app.add_typer(erasure.app, name="erasure")
app.add_typer(ingest.app, name="ingest")
app.add_typer(local.app, name="local")
app.add_typer(sfmc.app, name="sfmc")
app.add_typer(snapshot.app, name="snapshot")
app.command(name="preview")(preview.preview)
app.command(name="status")(status.status)
app.command(name="upgrade-keys")(upgrade.upgrade_keys)

"""Entry point of the `activation` command (commands are added by the CLI modules)."""

import typer

app = typer.Typer(
    no_args_is_help=True, help="Operate the audience activation stack (AWS or the local stack)."
)

"""`activation local up`: the local stack kept running, so every other command can be tried on it
from another shell (dev only: needs the dev extras, `make install`).

It deploys template.yaml into moto, starts the fake vendors, installs the example config, polls the
queues in the background like Lambda's event source mappings, and prints the environment that points
the CLI (and boto3, the AWS CLI) at it.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import time
from pathlib import Path
from typing import Annotated

import typer

from activation_cli import development
from activation_cli.console import err, out

app = typer.Typer(
    no_args_is_help=True, help="The local stack (moto + fake vendors), for trying the CLI (dev only)."
)


@app.command()
def up(
    *,
    sample_events: Annotated[
        bool, typer.Option("--sample-events", help="Publish events/eventbridge/*.json once it is up")
    ] = False,
    duration: Annotated[
        float | None, typer.Option("--duration", min=0, help="Stop after N seconds (default: at Ctrl-C)")
    ] = None,
    workdir: Annotated[
        Path | None,
        typer.Option(
            "--workdir", help="Logs and the translated template (default: .local-stack/ of the repository)"
        ),
    ] = None,
) -> None:
    """Start the local stack and keep it running; prints the exports for another shell."""
    root = development.require("local up", files=("template.yaml", "shared/config", "events/eventbridge"))
    started = time.monotonic()
    # SIGTERM (kill, a supervisor, a closed terminal) stops it as Ctrl-C does, from the first moment:
    # Python's default ends the process at once, and moto, the fakes and the Lambda workers outlived it.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        _run(root, workdir, sample_events, duration, started)
    except KeyboardInterrupt:
        pass  # Ctrl-C or SIGTERM, at any moment: the harness has stopped what it started
    finally:
        signal.signal(signal.SIGTERM, previous)
    out.print("local stack stopped")


def _run(
    root: Path, workdir: Path | None, sample_events: bool, duration: float | None, started: float
) -> None:
    from local.examples import sample_events as load_samples
    from local.harness import STACK_NAME, ActivationHarness
    from local.sam_local.sam import write_env_vars_file

    with ActivationHarness(workdir=workdir or root / ".local-stack") as harness:
        harness.stack.poller.run_in_background()
        endpoint = harness.stack.endpoint_url
        out.print(f"local stack {STACK_NAME} up in {time.monotonic() - started:.1f} s at {endpoint}")
        out.print("In another shell:", markup=False)
        for name, value in (
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_DEFAULT_REGION", harness.stack.region),
            ("ACTIVATION_STACK", STACK_NAME),
        ):
            out.print(f"  export {name}={value}", markup=False)
        out.print(
            f"fakes: {json.dumps({t: p.fake.base_url for t, p in harness.plugs.items()})}", markup=False
        )
        env_vars = write_env_vars_file(harness)
        out.print(f"sam local --env-vars {env_vars} (README: SAM local)", markup=False)
        if sample_events:
            published = harness.publish(load_samples())
            out.print(f"published {published} sample events to {harness.outputs['EventBusName']}")
        err.print("[dim]Ctrl-C stops it[/]")
        # The poller works in its own thread: this one only waits to be told to stop.
        _wait_for_a_signal(duration)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _wait_for_a_signal(seconds: float | None) -> None:
    """Wait `seconds` (None: for ever) or until SIGTERM/SIGINT, whichever thread the kernel gives it to.

    Python runs signal handlers on the main thread, and a main thread asleep in time.sleep wakes only for
    a signal delivered to it: one taken by any of the stack's ~30 threads left `local up` asleep (seen
    under load: SIGTERM ignored for minutes). The wakeup fd is written whichever thread takes the signal,
    so this thread wakes and its handler runs (KeyboardInterrupt)."""
    if seconds is not None and seconds <= 0:
        return
    deadline = None if seconds is None else time.monotonic() + seconds
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    try:
        while deadline is None or time.monotonic() < deadline:
            reader.settimeout(None if deadline is None else max(deadline - time.monotonic(), 0.0))
            with contextlib.suppress(TimeoutError):
                reader.recv(64)  # a signal's number: the handler runs on the next bytecode
    finally:
        signal.set_wakeup_fd(previous)
        reader.close()
        writer.close()

"""`activation local up`: the local stack kept running for the other commands (dev only)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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


def test_local_up_stopped_by_sigterm_stops_every_process_it_started(tmp_path: Path) -> None:
    """`kill` (SIGTERM, what a supervisor or a terminal closing sends) stops the stack as Ctrl-C does:
    the fake vendors, moto and every Lambda worker process end with it."""
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "activation"),
            "local",
            "up",
            "--sample-events",
            "--workdir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: what is left of it afterwards can be found
        env={**os.environ, "COLUMNS": "220"},
    )
    assert process.stdout is not None
    output = []
    for line in process.stdout:  # blocks until the stack has published its sample events
        output.append(line)
        if line.startswith("published "):
            break
    else:
        pytest.fail(f"local up ended ({process.wait()}) before it was up: " + "".join(output))
    process.send_signal(signal.SIGTERM)
    rest, _ = process.communicate(timeout=60)
    assert "local stack stopped" in rest, (process.returncode, rest)
    with pytest.raises(ProcessLookupError):  # no process of its group is left
        os.killpg(process.pid, 0)

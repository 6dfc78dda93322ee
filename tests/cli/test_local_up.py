"""`activation local up`: the local stack kept running for the other commands (dev only)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

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


def test_local_up_wakes_for_a_sigterm_another_of_its_threads_takes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel may hand a process's SIGTERM to any of its threads (`local up` has ~30); Python runs the
    handler on the main thread, which must wake from its wait for it. Once the main thread waits, a
    helper thread takes SIGTERM (pthread_kill to itself, so its C handler runs there) until the wait
    ends: it ends at the first one, with the handler's KeyboardInterrupt, not at its 30 s."""
    from activation_cli import local

    waiting = threading.Event()  # the main thread is in its wait
    done = threading.Event()
    pair = socket.socketpair

    class Reader:  # the wait's end of the socket pair, telling the helper when the wait starts
        def __init__(self, sock: socket.socket) -> None:
            self.sock = sock

        def __getattr__(self, name: str) -> Any:
            return getattr(self.sock, name)

        def recv(self, size: int) -> bytes:
            waiting.set()
            return self.sock.recv(size)

    def socketpair() -> tuple[Any, socket.socket]:
        reader, writer = pair()
        return Reader(reader), writer

    sent = 0

    def take_sigterms() -> None:
        nonlocal sent
        deadline = time.monotonic() + 20
        if not waiting.wait(20):
            return
        while not done.is_set() and time.monotonic() < deadline:
            signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
            sent += 1
            done.wait(0.05)  # again, should the first land before the main thread blocks

    monkeypatch.setattr(socket, "socketpair", socketpair)
    previous = signal.signal(signal.SIGTERM, local._interrupt)
    helper = threading.Thread(target=take_sigterms)
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            helper.start()
            local._wait_for_a_signal(30)
    finally:
        done.set()
        helper.join()
        signal.signal(signal.SIGTERM, previous)
    assert sent >= 1
    assert time.monotonic() - started < 10  # woken by a signal, not by the end of its 30 s

"""Skip the waits of moto's Step Functions interpreter (Retry backoff, Wait states), and record them.

moto 5.2.5 sleeps for real between Retry attempts (`retrier_decl.time.sleep`) and in Wait states
(`WaitFunction._wait_interval`); a Retry with a 5 s interval doubling six times would wait minutes.
`apply()` replaces both with a recorder, so tests run at full speed and can still assert that a
retry asked for backoff. It must run in the process hosting the moto server; `restore()` undoes it.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Callable
from typing import Any

from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

_UPSTREAM: dict[str, Any] = {}


class Waits:
    """Every wait the interpreter asked for, in seconds (retry backoffs and Wait states apart)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.retries: list[float] = []
        self.waits: list[float] = []
        self._on_retry: Callable[[], None] | None = None

    def on_retry(self, action: Callable[[], None] | None) -> None:
        """Run `action` (in the interpreter's thread) whenever a retry would wait: a test makes what the
        waiting run waits for happen then, instead of sleeping on the clock. None removes it."""
        self._on_retry = action

    def clear(self) -> None:
        with self._lock:
            self.retries.clear()
            self.waits.clear()

    def _retry(self, seconds: float) -> None:
        with self._lock:
            self.retries.append(float(seconds))
        if self._on_retry is not None:
            self._on_retry()

    def _wait(self, seconds: float) -> None:
        with self._lock:
            self.waits.append(float(seconds))


RECORDED = Waits()


def apply() -> Waits:
    """Idempotent; returns the recorder (cleared)."""
    if not _UPSTREAM:
        _UPSTREAM["retrier_decl.time"] = getattr(retrier_decl, "time")  # noqa: B009 - not re-exported
        _UPSTREAM["WaitFunction._wait_interval"] = WaitFunction._wait_interval
        # The module's `time` is replaced, not time.sleep: nothing else in the process stops sleeping.
        setattr(retrier_decl, "time", types.SimpleNamespace(sleep=RECORDED._retry))  # noqa: B010

        def _wait_interval(self: WaitFunction, env: Any, wait_seconds: int) -> None:
            RECORDED._wait(wait_seconds)

        WaitFunction._wait_interval = _wait_interval  # type: ignore[method-assign]
    RECORDED.clear()
    return RECORDED


def restore() -> None:
    if _UPSTREAM:
        setattr(retrier_decl, "time", _UPSTREAM.pop("retrier_decl.time"))  # noqa: B010
        WaitFunction._wait_interval = _UPSTREAM.pop("WaitFunction._wait_interval")  # type: ignore[method-assign]


def applied() -> bool:
    return bool(_UPSTREAM)

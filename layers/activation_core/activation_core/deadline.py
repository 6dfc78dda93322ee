"""The invocation's deadline: no vendor call starts that could not finish before Lambda stops the function.

The handler sets it from the Lambda context (`get_remaining_time_in_millis`) minus `RESERVE_SECONDS`,
kept for the end of the batch (DLQ sends, ledger, claims). `http.send` calls `ensure(call budget)`
before each attempt and before a backoff; a record not reached in time retries with reason `deadline`
instead of being killed mid-batch with the others (which SQS would then redrive without a reason).

One invocation runs at a time per Lambda container, so a process-wide value (read by the invocation's
worker threads) is the deadline of the current invocation.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from activation_core.errors import RetryableError

# Kept after the pipeline for the batch's own AWS calls (DLQ, ledger, claims: a few calls of ms each).
RESERVE_SECONDS = 3.0
# Added to a vendor call's timeout: the time around the call itself (TLS, parsing, a thread switch).
CALL_MARGIN_SECONDS = 1.0

_deadline: float | None = None  # time.monotonic() value
_local = threading.local()  # a tighter bound for the work of one thread (`bounded`)


class DeadlineError(RetryableError):
    """Not enough time left in this invocation: the record goes back to its queue, unharmed."""

    def __init__(self, detail: str) -> None:
        super().__init__("deadline", detail)


def begin(context: Any) -> None:
    """Start the invocation's clock from its Lambda context (no context, no deadline)."""
    global _deadline
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    _deadline = None
    if callable(remaining_ms):
        try:
            _deadline = time.monotonic() + float(remaining_ms()) / 1000.0 - RESERVE_SECONDS
        except (TypeError, ValueError):
            _deadline = None


def end() -> None:
    global _deadline
    _deadline = None


def remaining() -> float:
    """Seconds left for vendor work in this invocation and thread (infinite when nothing bounds it)."""
    now = time.monotonic()
    invocation = math.inf if _deadline is None else _deadline - now
    bound: float | None = getattr(_local, "until", None)
    return invocation if bound is None else min(invocation, bound - now)


@contextmanager
def bounded(seconds: float) -> Iterator[None]:
    """Within the block, this thread's vendor calls must also finish within `seconds` (e.g. a token
    request within its lease)."""
    previous: float | None = getattr(_local, "until", None)
    until = time.monotonic() + seconds
    _local.until = until if previous is None else min(previous, until)
    try:
        yield
    finally:
        _local.until = previous


def ensure(seconds: float, what: str = "a vendor call") -> None:
    """Raise DeadlineError unless `seconds` of work still fit before the deadline."""
    left = remaining()
    if left < seconds:
        raise DeadlineError(f"{what} needs {seconds:.1f}s, {max(0.0, left):.1f}s left in this invocation")

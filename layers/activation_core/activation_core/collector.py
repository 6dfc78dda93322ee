"""The cyclic garbage collector paused while one unit of work runs (issue 18, goals 2 and 7).

A unit (an SQS batch, a page of a source's export) allocates tens of thousands of short-lived dicts. Each 700
allocations start a young collection, and every few of those a full pass over every object of the
process, the SDK's service models included: 51-103 ms each, 8 in one batch of 1,000 account changes, a
fifth of a page task's CPU. Reference counting frees a unit's acyclic objects as before; what
holds a cycle (an HTTP response, an exception's traceback) waits until the unit ends, so memory grows
by at most one unit's cycles. The collector's state is restored as found, even on an exception.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cycle_collection_paused() -> Iterator[None]:
    """Pause the cyclic collector for the block; leave it as it was found afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()

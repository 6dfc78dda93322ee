"""What this process has asked of vendors: calls (each attempt), throttled answers and token requests.

`activation_core.http` and `activation_core.oauth` count into the one `VENDOR_COUNTS` of the process;
the batch takes a snapshot before and after an invocation and publishes the difference (the ApiCalls,
VendorThrottles and TokenRequests metrics). The threads of one invocation share it, hence the lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VendorCounts:
    """The counts at one moment (or, from `since`, between two moments)."""

    calls: int = 0
    throttled: int = 0
    token_requests: int = 0

    def since(self, earlier: VendorCounts) -> VendorCounts:
        return VendorCounts(
            self.calls - earlier.calls,
            self.throttled - earlier.throttled,
            self.token_requests - earlier.token_requests,
        )


class VendorCounter:
    """Process-wide running counts, safe to add to from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = VendorCounts()

    def add(self, *, calls: int = 0, throttled: int = 0, token_requests: int = 0) -> None:
        with self._lock:
            now = self._counts
            self._counts = VendorCounts(
                now.calls + calls, now.throttled + throttled, now.token_requests + token_requests
            )

    def snapshot(self) -> VendorCounts:
        with self._lock:
            return self._counts


VENDOR_COUNTS = VendorCounter()

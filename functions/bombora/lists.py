"""Which Bombora list holds which audience: one state-table item per (Bombora account, audience name).

Creating a list is not idempotent at Bombora, so a list is found or created once for every invocation
(BOM-06), by the layer's `ListRegistry` (a lease, then a conditional put of the id).
"""

from __future__ import annotations

from typing import Any

from activation_core.list_registry import ListRegistry as _Registry
from activation_core.list_registry import RecordedList, clear_memory_cache

__all__ = ["ListRegistry", "RecordedList", "clear_memory_cache"]


class ListRegistry(_Registry):
    """List ids of one Bombora account (`account`: a digest of base URL and client id), by audience name key."""

    def __init__(self, table_name: str, account: str, **options: Any) -> None:
        super().__init__(
            table_name,
            f"bombora#lists#{account}",
            lease_prefix=f"bombora-list#{account}",
            reason_prefix="bombora_list",
            **options,
        )
        self.account = account

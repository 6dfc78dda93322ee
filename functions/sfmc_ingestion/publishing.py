"""`Profile Updated` events of SFMC rows to the activation bus: the layer's publisher with this
source's event source and detail type (a page that still fails after its retries is retried by the
state machine and re-published; event ids are deterministic per row version)."""

from __future__ import annotations

from typing import Any

from activation_core import publishing
from activation_core.publishing import MAX_REQUEST_BYTES, PreparedEntry, batches, entry_size
from sfmc_ingestion.rows import DETAIL_TYPE, EVENT_SOURCE

__all__ = ["MAX_REQUEST_BYTES", "EventPublisher", "PreparedEntry", "batches", "entry_size"]


class EventPublisher(publishing.EventPublisher):
    def __init__(self, bus_name: str, **options: Any) -> None:
        super().__init__(bus_name, source=EVENT_SOURCE, detail_type=DETAIL_TYPE, **options)

"""Events to the activation bus: PutEvents in batches of at most 10 entries (and 256 KB), a few
batches in parallel, failed entries re-sent with backoff. Used by every function that publishes (a
source's pages and exits, a snapshot's changes), each with its own event source.

An entry still failing after the retries fails the task (RetryableError): its state machine retries
the task and re-publishes, so delivery is at least once (publishers give deterministic event ids, so
consumers can de-duplicate).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError
from pydantic_core import to_json

from activation_core import aws
from activation_core.chunking import packed
from activation_core.errors import PermanentError, RetryableError

MAX_ENTRIES = 10  # PutEvents limit per call
MAX_REQUEST_BYTES = 256 * 1024  # PutEvents limit per call (sum of entry sizes)
_PERMANENT_CODES = frozenset({"AccessDeniedException", "ResourceNotFoundException", "ValidationException"})


def _utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())  # no copy for the common ASCII detail


def entry_size(entry: dict[str, Any]) -> int:
    """EventBridge's size of an entry (UTF-8 bytes of Source, DetailType, Detail and resources, + 14 for Time)."""
    size = 14
    for name in ("Source", "DetailType", "Detail"):
        size += _utf8_length(str(entry.get(name, "")))
    return size + sum(_utf8_length(r) for r in entry.get("Resources", []))


def batches(
    entries: Sequence[dict[str, Any]], sizes: Sequence[int] | None = None
) -> list[list[dict[str, Any]]]:
    """PutEvents requests of at most 10 entries and 256 KB; `sizes`: each entry's `entry_size`, when
    known already (`EventPublisher.prepare`)."""
    known = [entry_size(entry) for entry in entries] if sizes is None else sizes
    return packed(entries, known, max_count=MAX_ENTRIES, max_bytes=MAX_REQUEST_BYTES)


class PreparedEntry(NamedTuple):
    """A PutEvents entry and its EventBridge size, both from the one serialisation of its detail (a
    named tuple: a frozen dataclass took as long to build as the detail took to serialise)."""

    entry: dict[str, Any]
    size: int


# PreparedEntry(entry, size) without the named tuple's Python-level __new__ (a tenth of `prepare`).
_prepared = tuple.__new__


class EventPublisher:
    """Publishes to `bus_name`; `entry` and `prepare` build entries from `source` and `detail_type`."""

    def __init__(
        self,
        bus_name: str,
        *,
        source: str = "",
        detail_type: str = "",
        events: Any | None = None,
        sleep: Callable[[float], None] = time.sleep,
        workers: int = 4,
        attempts: int = 4,
        base_delay: float = 0.1,
    ) -> None:
        self.bus_name = bus_name
        self.source = source
        self.detail_type = detail_type
        self._events = events
        self._sleep = sleep
        self._workers = workers
        self._attempts = attempts
        self._base_delay = base_delay
        self.calls = 0
        self.retried_entries = 0
        # An entry's size without its detail, for `detail_type` (`prepare` adds the detail's bytes).
        self._fixed_size = 14 + _utf8_length(source) + _utf8_length(detail_type)

    @property
    def _client(self) -> Any:
        if self._events is None:
            self._events = aws.client("events")
        return self._events

    def entry(self, detail: dict[str, Any], detail_type: str | None = None) -> dict[str, Any]:
        return {
            "Source": self.source,
            "DetailType": detail_type or self.detail_type,
            # pydantic-core's serialiser (already in the layer): the same compact JSON as
            # json.dumps(separators=(",", ":"), ensure_ascii=False), at a third of its CPU.
            "Detail": to_json(detail).decode(),
            "EventBusName": self.bus_name,
        }

    def prepare(self, detail: dict[str, Any], detail_type: str | None = None) -> PreparedEntry:
        """`entry(detail)` and its `entry_size`, the detail serialised once: its size is its UTF-8 bytes."""
        data = to_json(detail)
        if detail_type and detail_type != self.detail_type:
            fixed = 14 + _utf8_length(self.source) + _utf8_length(detail_type)
        else:
            detail_type, fixed = self.detail_type, self._fixed_size
        entry = {
            "Source": self.source,
            "DetailType": detail_type,
            "Detail": data.decode(),
            "EventBusName": self.bus_name,
        }
        return _prepared(PreparedEntry, (entry, fixed + len(data)))

    @staticmethod
    def fits(entry: dict[str, Any]) -> bool:
        return entry_size(entry) <= MAX_REQUEST_BYTES

    def publish(self, entries: Sequence[dict[str, Any]], sizes: Sequence[int] | None = None) -> int:
        """Send every entry; returns how many were accepted (all of them, or it raises). `sizes`: the
        entries' sizes when `prepare` gave them."""
        groups = batches(entries, sizes)
        if not groups:
            return 0
        if len(groups) == 1 or self._workers <= 1:
            return sum(self._send(group) for group in groups)
        # One task per worker, each taking the next request until none is left: the same requests in
        # flight as one task per request, without a thread hand-off per request (250 for a 2,500-row page).
        workers = min(self._workers, len(groups))
        queue = iter(groups)
        lock = threading.Lock()

        def drain() -> int:
            sent = 0
            while True:
                with lock:
                    group = next(queue, None)
                if group is None:
                    return sent
                sent += self._send(group)

        with ThreadPoolExecutor(max_workers=workers) as pool:
            return sum(pool.map(lambda _: drain(), range(workers)))

    def _send(self, group: list[dict[str, Any]]) -> int:
        pending = group
        for attempt in range(self._attempts):
            self.calls += 1
            try:
                response = self._client.put_events(Entries=pending)
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
                if code in _PERMANENT_CODES:
                    raise PermanentError("put_events_refused", code) from exc
                failed = pending
            except BotoCoreError:
                failed = pending
            else:
                results = response.get("Entries", [])
                failed = [
                    entry for entry, result in zip(pending, results, strict=False) if result.get("ErrorCode")
                ]
                if len(results) < len(pending):  # defensive: an unanswered entry counts as failed
                    failed.extend(pending[len(results) :])
            if not failed:
                return len(group)
            self.retried_entries += len(failed)
            pending = failed
            if attempt + 1 < self._attempts:
                self._sleep(random.uniform(0, self._base_delay * (2**attempt)))
        raise RetryableError(
            "put_events_failed", f"{len(pending)} entries still failing after {self._attempts} attempts"
        )

"""Watermarks and run records in the state table (pk/sk strings, ttl number).

Exactly the right rows, at least once:
- a data extension's watermark is the highest incremental value of a run whose every page succeeded;
  it is written by the commit task only, never while pages are still unprocessed;
- the next run reads `>= watermark - lookBack` (a row that became visible after a run although it is
  stamped a little before the watermark is still read), so rows in that window are read again: the
  ones already processed are recognised by their incremental value and primary-key digest (`recent`,
  the same pair the event id is derived from) and skipped; a row not among them is new and published;
- when too many rows fall in the window to remember them all, the oldest values are forgotten and
  `recentFrom` moves up: rows re-read below it are published again rather than risk losing one;
- the commit is conditional on the version the run started from; a concurrent run's commit is merged
  (the higher watermark wins, equal ones union their recent rows), so the watermark never moves back.
"""

from __future__ import annotations

import heapq
import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from activation_core import aws
from activation_core.errors import RetryableError
from sfmc_ingestion.models import Watermark
from sfmc_ingestion.rows import iso, parse_iso

# Primary-key digests remembered in the look-back window: 20 hex characters each, ~70 KB in a Map
# iteration's state (256 KB limit) and in the DynamoDB item (400 KB limit).
RECENT_LIMIT = 3000
WATERMARK_PK = "sfmc#watermark"
RUNS_PK = "sfmc#runs"
RUN_RETENTION_DAYS = 90
_CONDITION_FAILED = "ConditionalCheckFailedException"
_COMMIT_ATTEMPTS = 5


def _later(a: str, b: str) -> bool:
    return parse_iso(a) > parse_iso(b)


def _same(a: str, b: str) -> bool:
    return parse_iso(a) == parse_iso(b)


class RecentRows:
    """Follows the highest incremental value seen and every row (value, primary-key digest) within
    `window` of it (one data extension in one run; carried from page to page in the item).

    Rows arrive in ascending order of their value (`$orderBy`), so values leave the window oldest
    first: a heap of the values held makes forgetting O(log n) per value, whatever the window's size.
    """

    def __init__(self, start: Watermark, window: timedelta = timedelta(0), limit: int = RECENT_LIMIT) -> None:
        self.value = start.value
        self._high: datetime | None = parse_iso(start.value) if start.value else None
        self._window = window
        self._limit = limit
        self._rows: dict[datetime, set[str]] = {parse_iso(v): set(keys) for v, keys in start.recent.items()}
        self._heap = list(self._rows)
        heapq.heapify(self._heap)
        self._size = sum(len(keys) for keys in self._rows.values())
        self._from: datetime | None = parse_iso(start.recent_from) if start.recent_from else None

    def see(self, incremental: str | None, pk_digest: str) -> None:
        self.see_all(((incremental, pk_digest),))

    def see_all(self, rows: Iterable[tuple[str | None, str]]) -> None:
        """`see` for each (incremental value, primary-key digest) in order, in one loop over local
        names (for a page task's 2,500 rows, the calls and attribute writes per row were most of it)."""
        high, value, floor, size = self._high, self.value, self._from, self._size
        held, heap, window, limit = self._rows, self._heap, self._window, self._limit
        last: str | None = None
        moment = datetime.min
        for incremental, pk_digest in rows:
            if incremental is None:
                continue
            if incremental != last:  # consecutive rows often share a value
                last, moment = incremental, parse_iso(incremental)
            if high is None or moment > high:
                value, high = incremental, moment
                lowest = moment - window
                while heap and heap[0] < lowest:  # forget what left the window
                    size -= len(held.pop(heapq.heappop(heap)))
                if floor is None or lowest > floor:
                    floor = lowest
            elif moment < high - window:
                continue
            if floor is not None and moment < floor:
                continue  # below what was forgotten: the set must stay complete from `floor` up
            keys = held.get(moment)
            if keys is None:
                keys = held[moment] = set()
                heapq.heappush(heap, moment)
            if pk_digest not in keys:
                keys.add(pk_digest)
                size += 1
            while size > limit:  # forget whole values, oldest first: never a partial value
                oldest = heapq.heappop(heap)
                size -= len(held.pop(oldest))
                floor = heap[0] if heap else oldest + timedelta(microseconds=1)
        self._high, self.value, self._from, self._size = high, value, floor, size

    def watermark(self, version: int = 0) -> Watermark:
        if self._high is not None and self._from is None:
            self._from = self._high - self._window
        return Watermark(
            value=self.value,
            recent={iso(m): sorted(keys) for m, keys in sorted(self._rows.items())},
            recent_from=iso(self._from) if self._from is not None else None,
            version=version,
        )


class DuplicateFilter:
    """Rows re-read in the previous run's look-back window that the previous run already processed."""

    def __init__(self, previous: Watermark) -> None:
        self._from = parse_iso(previous.recent_from) if previous.recent_from and previous.value else None
        self._high = parse_iso(previous.value) if previous.value else None
        self._rows = {parse_iso(v): frozenset(keys) for v, keys in previous.recent.items()}

    @property
    def empty(self) -> bool:
        """Nothing to recognise (no previous run, or none of its rows known): `seen` is always False."""
        return self._from is None or self._high is None

    def seen(self, incremental: str | None, pk_digest: str) -> bool:
        if self._from is None or self._high is None or incremental is None:
            return False
        moment = parse_iso(incremental)
        if not self._from <= moment <= self._high:
            return False
        return pk_digest in self._rows.get(moment, frozenset())


def merge(current: Watermark, ours: Watermark) -> Watermark:
    """The watermark after two runs both committed: never backwards; equal values union their rows
    (complete only from the later of the two `recentFrom`)."""
    if ours.value is None:
        return current
    if current.value is None or _later(ours.value, current.value):
        return ours
    if not _same(ours.value, current.value):
        return current
    froms = [f for f in (current.recent_from, ours.recent_from) if f]
    floor = max(froms, key=parse_iso) if len(froms) == 2 else None
    rows: dict[str, set[str]] = {}
    for mark in (current, ours):
        for value, keys in mark.recent.items():
            if floor is None or not _later(floor, value):
                rows.setdefault(value, set()).update(keys)
    tracker = RecentRows(
        Watermark(
            value=current.value,
            recent={v: sorted(k) for v, k in rows.items()},
            recent_from=floor,
        ),
        window=timedelta(days=36500),  # keep what both remembered; only the size limit applies
    )
    merged = tracker.watermark()
    if floor is None:
        merged.recent, merged.recent_from = {}, None  # nothing known to be complete: re-publish
    return merged


@dataclass(frozen=True)
class CommitResult:
    before: Watermark
    after: Watermark
    merged: bool  # another run committed meanwhile


def _error_code(exc: BotoCoreError | ClientError) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__


class WatermarkStore(aws.UsesDynamoDB):
    def __init__(
        self, table_name: str, *, dynamodb: Any | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self._table = table_name
        self._dynamodb = dynamodb
        self._clock = clock

    @staticmethod
    def _key(source_id: str, de_key: str) -> dict[str, dict[str, str]]:
        return {"pk": {"S": WATERMARK_PK}, "sk": {"S": f"{source_id}#{de_key}"}}

    def read(self, source_id: str, de_key: str) -> Watermark:
        try:
            item = self._client.get_item(
                TableName=self._table, Key=self._key(source_id, de_key), ConsistentRead=True
            ).get("Item")
        except (BotoCoreError, ClientError) as exc:
            raise RetryableError("state_unavailable", _error_code(exc)) from exc
        return _from_item(item) if item else Watermark()

    def list_all(self) -> dict[str, Watermark]:
        """Every watermark by `<source>#<data extension>` (the status command)."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": WATERMARK_PK}},
        }
        while True:
            page = self._client.query(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return {item["sk"]["S"]: _from_item(item) for item in items}

    def commit(
        self,
        source_id: str,
        de_key: str,
        *,
        started_from: Watermark,
        high: Watermark,
        run_id: str,
        started_at: str,
    ) -> CommitResult:
        """Write `high` if the watermark is still the one the run started from; merge otherwise."""
        expected, ours = started_from.version, high
        merged = False
        current = started_from
        for _ in range(_COMMIT_ATTEMPTS):
            target = merge(current, ours) if merged else ours
            after = Watermark(
                value=target.value,
                recent=target.recent,
                recent_from=target.recent_from,
                version=expected + 1,
                last_success_at=started_at,
            )
            try:
                self._client.put_item(
                    TableName=self._table,
                    Item=_to_item(self._key(source_id, de_key), after, run_id, self._clock()),
                    ConditionExpression="attribute_not_exists(pk) OR version = :expected",
                    ExpressionAttributeValues={":expected": {"N": str(expected)}},
                )
                return CommitResult(before=started_from, after=after, merged=merged)
            except (BotoCoreError, ClientError) as exc:
                if _error_code(exc) != _CONDITION_FAILED:
                    raise RetryableError("state_unavailable", _error_code(exc)) from exc
            current = self.read(source_id, de_key)
            expected, merged = current.version, True
        raise RetryableError("watermark_contended", "the watermark kept changing under concurrent runs")

    def put_run(self, record: dict[str, Any]) -> None:
        """One run's summary (SFMC-05), readable with `python -m sfmc_ingestion status`."""
        ttl = math.ceil(self._clock() + RUN_RETENTION_DAYS * 86400)
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": RUNS_PK},
                    "sk": {"S": f"{record['startedAt']}#{record['runId']}"},
                    "runId": {"S": record["runId"]},
                    "status": {"S": record["status"]},
                    "summary": {"S": json.dumps(record, separators=(",", ":"))},
                    "ttl": {"N": str(ttl)},
                },
            )
        except (BotoCoreError, ClientError) as exc:
            raise RetryableError("state_unavailable", _error_code(exc)) from exc

    def runs(self, limit: int = 10) -> list[dict[str, Any]]:
        page = self._client.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": RUNS_PK}},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [json.loads(item["summary"]["S"]) for item in page.get("Items", [])]


def _to_item(key: dict[str, dict[str, str]], wm: Watermark, run_id: str, now: float) -> dict[str, Any]:
    item: dict[str, Any] = {
        **key,
        "recent": {"S": json.dumps(wm.recent, separators=(",", ":"))},
        "version": {"N": str(wm.version)},
        "lastRunId": {"S": run_id},
        "updatedAt": {"N": f"{now:.3f}"},
    }
    if wm.value is not None:
        item["value"] = {"S": wm.value}
    if wm.last_success_at is not None:
        item["lastSuccessAt"] = {"S": wm.last_success_at}
    if wm.recent_from is not None:
        item["recentFrom"] = {"S": wm.recent_from}
    return item


def _from_item(item: dict[str, Any]) -> Watermark:
    # An item written before the look-back window (a `boundary` list, no `recent`) remembers nothing
    # usable: its rows at the watermark are published once more (at least once, never lost).
    recent: dict[str, list[str]] = json.loads(item.get("recent", {}).get("S", "{}"))
    return Watermark(
        value=item.get("value", {}).get("S"),
        recent=recent,
        recent_count=sum(len(keys) for keys in recent.values()),
        recent_from=item.get("recentFrom", {}).get("S") if recent else None,
        version=int(item.get("version", {}).get("N", "0")),
        last_success_at=item.get("lastSuccessAt", {}).get("S"),
    )

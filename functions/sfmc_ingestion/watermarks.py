"""Watermarks and run records in the state table (pk/sk strings, ttl number).

Exactly the right rows, at least once:
- a data extension's watermark is the highest incremental value of a run whose every page succeeded;
  it is written by the commit task only, never while pages are still unprocessed;
- the next run reads `>= watermark`, so rows sharing the watermark's timestamp are read again and the
  ones already processed are recognised by their primary-key digests (`boundary`) and skipped;
- when too many rows share that timestamp to remember them all, `overflow` is set and those rows are
  published again rather than risk losing one;
- the commit is conditional on the version the run started from; a concurrent run's commit is merged
  (the higher watermark wins, equal ones union their boundaries), so the watermark never moves back.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from activation_core import aws
from activation_core.errors import RetryableError
from sfmc_ingestion.models import Watermark
from sfmc_ingestion.rows import parse_iso

BOUNDARY_LIMIT = 1000  # 20-hex digests: ~25 KB in a Map iteration's state and in the DynamoDB item
WATERMARK_PK = "sfmc#watermark"
RUNS_PK = "sfmc#runs"
RUN_RETENTION_DAYS = 90
_CONDITION_FAILED = "ConditionalCheckFailedException"
_COMMIT_ATTEMPTS = 5


def _later(a: str, b: str) -> bool:
    return parse_iso(a) > parse_iso(b)


def _same(a: str, b: str) -> bool:
    return parse_iso(a) == parse_iso(b)


class BoundaryTracker:
    """Follows the highest incremental value seen and the primary keys sharing it (one page task)."""

    def __init__(self, start: Watermark) -> None:
        self.value = start.value
        self._moment: datetime | None = parse_iso(start.value) if start.value else None
        self.boundary: list[str] = list(start.boundary)
        self._members = set(self.boundary)
        self.overflow = start.overflow

    def see(self, incremental: str | None, pk_digest: str) -> None:
        if incremental is None:
            return
        moment = parse_iso(incremental)
        if self._moment is None or moment > self._moment:
            self.value, self._moment = incremental, moment
            self.boundary, self._members, self.overflow = [pk_digest], {pk_digest}, False
        elif moment == self._moment and pk_digest not in self._members:
            if len(self.boundary) >= BOUNDARY_LIMIT:
                self.overflow = True  # forget nothing silently: rows at this value will be re-published
                return
            self.boundary.append(pk_digest)
            self._members.add(pk_digest)

    def watermark(self, version: int = 0) -> Watermark:
        return Watermark(
            value=self.value, boundary=list(self.boundary), overflow=self.overflow, version=version
        )


class DuplicateFilter:
    """Rows re-read at the previous watermark's timestamp that the previous run already processed."""

    def __init__(self, previous: Watermark) -> None:
        self._moment = parse_iso(previous.value) if previous.value and not previous.overflow else None
        self._keys = frozenset(previous.boundary)

    def seen(self, incremental: str | None, pk_digest: str) -> bool:
        if self._moment is None or incremental is None or pk_digest not in self._keys:
            return False
        return parse_iso(incremental) == self._moment


def merge(current: Watermark, ours: Watermark) -> Watermark:
    """The watermark after two runs both committed: never backwards; equal values union their keys."""
    if ours.value is None:
        return current
    if current.value is None or _later(ours.value, current.value):
        return ours
    if _same(ours.value, current.value):
        keys = list(dict.fromkeys([*current.boundary, *ours.boundary]))
        overflow = current.overflow or ours.overflow or len(keys) > BOUNDARY_LIMIT
        return Watermark(value=current.value, boundary=keys[:BOUNDARY_LIMIT], overflow=overflow)
    return current


@dataclass(frozen=True)
class CommitResult:
    before: Watermark
    after: Watermark
    merged: bool  # another run committed meanwhile


def _error_code(exc: BotoCoreError | ClientError) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__


class WatermarkStore:
    def __init__(
        self, table_name: str, *, dynamodb: Any | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self._table = table_name
        self._dynamodb = dynamodb
        self._clock = clock

    @property
    def _client(self) -> Any:
        if self._dynamodb is None:
            self._dynamodb = aws.client("dynamodb")
        return self._dynamodb

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
                boundary=target.boundary,
                overflow=target.overflow,
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
        "boundary": {"L": [{"S": d} for d in wm.boundary]},
        "overflow": {"BOOL": wm.overflow},
        "version": {"N": str(wm.version)},
        "lastRunId": {"S": run_id},
        "updatedAt": {"N": f"{now:.3f}"},
    }
    if wm.value is not None:
        item["value"] = {"S": wm.value}
    if wm.last_success_at is not None:
        item["lastSuccessAt"] = {"S": wm.last_success_at}
    return item


def _from_item(item: dict[str, Any]) -> Watermark:
    return Watermark(
        value=item.get("value", {}).get("S"),
        boundary=(boundary := [entry["S"] for entry in item.get("boundary", {}).get("L", [])]),
        boundary_count=len(boundary),
        overflow=bool(item.get("overflow", {}).get("BOOL", False)),
        version=int(item.get("version", {}).get("N", "0")),
        last_success_at=item.get("lastSuccessAt", {}).get("S"),
    )

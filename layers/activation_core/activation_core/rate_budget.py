"""Shared rate budgets in DynamoDB: a vendor's quota respected across all concurrent invocations.

- `RateBudget.acquire(n)`: at most `limit` calls in ANY sliding `window` (not only in fixed windows,
  which would allow 2x at a boundary). Calls are counted in buckets of `granularity` seconds and a
  bucket counts while any part of it is inside the window, so the bound is strict (it errs on the
  safe side by at most one bucket). One item per budget, updated with optimistic concurrency.
- `RateBudget.block_until(t)`: the vendor said "nothing more until t" (429 / remaining 0): every
  invocation waits or defers until then.
- `ConcurrencySlots`: at most N calls in flight across invocations (leases, so a crashed holder
  frees its slot when the lease ends).

No library does this across Lambda invocations (in-process limiters see one container only).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from activation_core import aws, deadline
from activation_core.errors import RetryableError, ThrottledError

_MAX_CONFLICTS = 50


def _conflict(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


@dataclass(frozen=True)
class Window:
    limit: int
    seconds: float
    granularity: float = 1.0


class RateBudget(aws.UsesDynamoDB):
    """Calls allowed per sliding window, shared through one DynamoDB item per `key`."""

    def __init__(
        self,
        table_name: str,
        key: str,
        window: Window,
        *,
        dynamodb: Any | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if window.limit < 1 or window.seconds <= 0 or window.granularity <= 0:
            raise ValueError("a window needs a positive limit, length and granularity")
        self._table = table_name
        self._key = {"pk": {"S": f"rate#{key}"}, "sk": {"S": "budget"}}
        self.window = window
        self._dynamodb = dynamodb
        self._clock = clock
        self._sleep = sleep
        self.waited = 0.0  # seconds spent waiting for budget (metrics, benchmarks)

    def acquire(self, calls: int = 1, *, max_wait: float = 5.0) -> None:
        """Take `calls` from the budget, waiting up to `max_wait` s; else ThrottledError with retry_after."""
        if calls > self.window.limit:
            raise ValueError(f"cannot take {calls} calls from a budget of {self.window.limit}")
        waited = 0.0
        for _ in range(_MAX_CONFLICTS):
            wait = self._try_take(calls)
            if wait is None:
                return
            if wait == 0.0:
                continue  # lost a race with another invocation: read again
            # Never wait past the invocation's deadline either: the record comes back after `wait`.
            if waited + wait > max_wait or wait >= deadline.remaining():
                raise ThrottledError(
                    "rate_budget_exhausted", "shared rate budget exhausted", retry_after=wait
                )
            self._sleep(wait)
            waited += wait
            self.waited += wait
        raise RetryableError("rate_budget_contended", "too many concurrent updates of the rate budget")

    def block_until(self, epoch_seconds: float) -> None:
        """Nobody calls before `epoch_seconds` (the vendor's reset time)."""
        if epoch_seconds <= self._clock():
            return
        try:
            # Bumping the version makes a concurrent acquire re-read, so it cannot erase the block.
            self._client.update_item(
                TableName=self._table,
                Key=self._key,
                UpdateExpression="SET blockedUntil = :t ADD version :one",
                ConditionExpression="attribute_not_exists(blockedUntil) OR blockedUntil < :t",
                ExpressionAttributeValues={":t": {"N": repr(float(epoch_seconds))}, ":one": {"N": "1"}},
            )
        except ClientError as exc:
            if not _conflict(exc):  # a conflict means a later block is already in place
                raise RetryableError(
                    "rate_budget_unavailable", exc.response.get("Error", {}).get("Code", "")
                ) from None

    def _bucket(self, now: float) -> int:
        return math.floor(now / self.window.granularity)

    def _try_take(self, calls: int) -> float | None:
        """None when taken; 0.0 after a lost race; else seconds until enough budget frees up."""
        now = self._clock()
        item = self._client.get_item(TableName=self._table, Key=self._key, ConsistentRead=True).get(
            "Item", {}
        )
        blocked_until = float(item.get("blockedUntil", {}).get("N", "0"))
        if blocked_until > now:
            return blocked_until - now
        version = int(item.get("version", {}).get("N", "0"))
        granularity = self.window.granularity
        # A bucket counts while any part of it overlaps (now - window, now].
        oldest = self._bucket(now - self.window.seconds)
        buckets = {int(k): int(v["N"]) for k, v in item.get("buckets", {}).get("M", {}).items()}
        live = {b: n for b, n in buckets.items() if b >= oldest}
        used = sum(live.values())
        if used + calls > self.window.limit:
            need = used + calls - self.window.limit
            freed = 0
            for bucket in sorted(live):
                freed += live[bucket]
                if freed >= need:
                    # The bucket leaves the window once its end is older than now - window.
                    return max((bucket + 1) * granularity + self.window.seconds - now, 0.001)
            return self.window.seconds
        current = self._bucket(now)
        live[current] = live.get(current, 0) + calls
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    **self._key,
                    "version": {"N": str(version + 1)},
                    "buckets": {"M": {str(b): {"N": str(n)} for b, n in live.items()}},
                    **({"blockedUntil": item["blockedUntil"]} if "blockedUntil" in item else {}),
                    "ttl": {"N": str(int(now + self.window.seconds * 2 + 3600))},
                },
                ConditionExpression="attribute_not_exists(pk) OR version = :v",
                ExpressionAttributeValues={":v": {"N": str(version)}},
            )
        except ClientError as exc:
            if _conflict(exc):
                return 0.0
            raise RetryableError(
                "rate_budget_unavailable", exc.response.get("Error", {}).get("Code", "")
            ) from None
        return None


class ConcurrencySlots(aws.UsesDynamoDB):
    """At most `limit` calls in flight for `key` across invocations; each slot is a lease."""

    def __init__(
        self,
        table_name: str,
        key: str,
        limit: int,
        *,
        lease_seconds: float = 30.0,
        dynamodb: Any | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        poll_interval: float = 0.05,
    ) -> None:
        self._table = table_name
        self._key = {"pk": {"S": f"slots#{key}"}, "sk": {"S": "slots"}}
        self.limit = limit
        self._lease = lease_seconds
        self._dynamodb = dynamodb
        self._clock = clock
        self._sleep = sleep
        self._poll = poll_interval

    @contextmanager
    def hold(self, *, max_wait: float = 10.0) -> Iterator[None]:
        holder = self._take(max_wait)
        try:
            yield
        finally:
            self._give_back(holder)

    def _take(self, max_wait: float) -> str:
        holder = uuid.uuid4().hex
        waited = 0.0
        while True:
            now = self._clock()
            item = self._client.get_item(TableName=self._table, Key=self._key, ConsistentRead=True).get(
                "Item", {}
            )
            version = int(item.get("version", {}).get("N", "0"))
            holders = {k: float(v["N"]) for k, v in item.get("holders", {}).get("M", {}).items()}
            live = {k: t for k, t in holders.items() if t > now}
            if len(live) < self.limit:
                live[holder] = now + self._lease
                if self._write(live, version, now):
                    return holder
                continue
            if waited >= max_wait or self._poll >= deadline.remaining():
                raise ThrottledError(
                    "concurrency_limit", f"{self.limit} calls already in flight", retry_after=1.0
                )
            self._sleep(self._poll)
            waited += self._poll

    def _give_back(self, holder: str) -> None:
        for _ in range(_MAX_CONFLICTS):
            now = self._clock()
            item = self._client.get_item(TableName=self._table, Key=self._key, ConsistentRead=True).get(
                "Item", {}
            )
            version = int(item.get("version", {}).get("N", "0"))
            holders = {k: float(v["N"]) for k, v in item.get("holders", {}).get("M", {}).items()}
            if holder not in holders:
                return
            live = {k: t for k, t in holders.items() if t > now and k != holder}
            if self._write(live, version, now):
                return
        # Not returned after many races: the lease frees the slot when it ends.

    def _write(self, holders: dict[str, float], version: int, now: float) -> bool:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    **self._key,
                    "version": {"N": str(version + 1)},
                    "holders": {"M": {k: {"N": repr(t)} for k, t in holders.items()}},
                    "ttl": {"N": str(int(now + self._lease + 3600))},
                },
                ConditionExpression="attribute_not_exists(pk) OR version = :v",
                ExpressionAttributeValues={":v": {"N": str(version)}},
            )
        except ClientError as exc:
            if _conflict(exc):
                return False
            raise RetryableError(
                "concurrency_slots_unavailable", exc.response.get("Error", {}).get("Code", "")
            ) from None
        return True

"""Which vendor list holds which audience: one state-table item per (vendor account, list key).

Creating a list is rarely idempotent at a vendor, so a list is found or created once for every
invocation: the invocation holding a lease (`LeaseLock`, a conditional put with an expiry) looks the
list up by name and creates it only when absent, then records its id with a conditional put
(`attribute_not_exists`); concurrent invocations wait for that record instead of creating their own.
Warm containers keep what they learnt in memory. A destination names its items (`namespace`), its
leases (`lease_prefix`) and its retry reasons (`reason_prefix`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from activation_core import aws
from activation_core.errors import RetryableError, StillRunningError
from activation_core.locks import Lease, LeaseLock
from activation_core.observability import logger

_CONDITION_FAILED = "ConditionalCheckFailedException"


@dataclass(frozen=True, slots=True)
class RecordedList:
    list_id: str
    owner: str  # the destination instance (dataflow) that activated the audience name first


# Module level: a warm container reuses what it resolved; keyed by (namespace, list key).
_memory: dict[tuple[str, str], RecordedList] = {}
_memory_lock = threading.Lock()


def clear_memory_cache() -> None:
    """Forget every list id learnt in this process (tests: simulates a new container)."""
    with _memory_lock:
        _memory.clear()


def _code(exc: BotoCoreError | ClientError) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__


class ListRegistry(aws.UsesDynamoDB):
    """List ids of one vendor account (`namespace`: the item partition key), by list key."""

    def __init__(
        self,
        table_name: str,
        namespace: str,
        *,
        lease_prefix: str,
        reason_prefix: str,
        lock: LeaseLock,
        dynamodb: Any | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        lease_seconds: float = 60.0,
        wait_timeout: float = 15.0,
        poll_interval: float = 0.25,
    ) -> None:
        self._table = table_name
        self.namespace = namespace
        self._lease_prefix = lease_prefix
        self._reasons = reason_prefix
        self._lock = lock
        self._dynamodb = dynamodb
        self._sleep = sleep
        self._clock = clock
        self._lease_seconds = lease_seconds
        self._wait_timeout = wait_timeout
        self._poll_interval = max(poll_interval, 0.001)

    def _item_key(self, key: str) -> dict[str, dict[str, str]]:
        return {"pk": {"S": self.namespace}, "sk": {"S": key}}

    # -- public API ---------------------------------------------------------------------------------

    def lookup(self, key: str) -> RecordedList | None:
        """The recorded list for `key`: memory first, then the table."""
        cached = _memory.get((self.namespace, key))
        if cached is not None:
            return cached
        return self._read(key)

    def resolve(self, key: str, find_or_create: Callable[[], str | None], owner: str) -> RecordedList | None:
        """The recorded list, else `find_or_create()` run by one invocation at a time and recorded.

        `find_or_create` returns None when there is nothing to record (no list, and none wanted).
        """
        found = self.lookup(key)
        if found is not None:
            return found
        lease = self._lock.try_acquire(self._lease_key(key), self._lease_seconds)
        if lease is not None:
            return self._resolve_holding(lease, key, find_or_create, owner)
        logger.info("waiting for another invocation to resolve a list", extra={"list_key": key})
        waited = 0.0
        # Bounded by the time asked to sleep, not the clock: an injected clock may stand still.
        while waited < self._wait_timeout:
            pause = min(self._poll_interval, self._wait_timeout - waited)
            self._sleep(pause)
            waited += pause
            found = self._read(key)
            if found is not None:
                return found
            # The holder may have finished without a record (or crashed): take over.
            lease = self._lock.try_acquire(self._lease_key(key), self._lease_seconds)
            if lease is not None:
                return self._resolve_holding(lease, key, find_or_create, owner)
        raise RetryableError(
            f"{self._reasons}_pending", "another invocation is still resolving this audience's list"
        )

    def claim(self, key: str, entry: RecordedList, owner: str) -> RecordedList:
        """Record `owner` as the dataflow of a list whose previous owner no longer activates it."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._item_key(key),
                UpdateExpression="SET #owner = :owner",
                ConditionExpression="listId = :id",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": {"S": owner}, ":id": {"S": entry.list_id}},
            )
        except (BotoCoreError, ClientError) as exc:
            if _code(exc) != _CONDITION_FAILED:
                raise RetryableError("list_registry_unavailable", _code(exc)) from None
            self._forget_memory(key)
            raise RetryableError(f"{self._reasons}_changed", "the recorded list changed meanwhile") from None
        claimed = RecordedList(entry.list_id, owner)
        self._remember(key, claimed)
        return claimed

    def forget(self, key: str, list_id: str) -> None:
        """The list is gone at the vendor: drop the record (only if it still names that list)."""
        self._forget_memory(key)
        try:
            self._client.delete_item(
                TableName=self._table,
                Key=self._item_key(key),
                ConditionExpression="listId = :id",
                ExpressionAttributeValues={":id": {"S": list_id}},
            )
        except (BotoCoreError, ClientError) as exc:
            if _code(exc) != _CONDITION_FAILED:  # already replaced: nothing to do
                raise RetryableError("list_registry_unavailable", _code(exc)) from None
        logger.warning("a recorded list no longer exists; it will be found or created again")

    # -- internals ----------------------------------------------------------------------------------

    def _lease_key(self, key: str) -> str:
        return f"{self._lease_prefix}#{key}"

    def _remember(self, key: str, entry: RecordedList) -> None:
        with _memory_lock:
            _memory[(self.namespace, key)] = entry

    def _forget_memory(self, key: str) -> None:
        with _memory_lock:
            _memory.pop((self.namespace, key), None)

    def _read(self, key: str) -> RecordedList | None:
        try:
            item = self._client.get_item(
                TableName=self._table, Key=self._item_key(key), ConsistentRead=True
            ).get("Item")
        except (BotoCoreError, ClientError) as exc:
            raise RetryableError("list_registry_unavailable", _code(exc)) from None
        if not item or "listId" not in item:
            return None
        entry = RecordedList(item["listId"]["S"], item.get("owner", {}).get("S", ""))
        self._remember(key, entry)
        return entry

    def _resolve_holding(
        self, lease: Lease, key: str, find_or_create: Callable[[], str | None], owner: str
    ) -> RecordedList | None:
        still_running = False
        try:
            # Double check: the previous holder may have recorded the list between our read and our lease.
            found = self._read(key)
            if found is not None:
                return found
            list_id = find_or_create()
            if list_id is None:
                return None
            return self._record(key, RecordedList(list_id, owner))
        except StillRunningError:
            # A create cut off mid-flight may still make the list: the lease runs out by itself
            # (`lease_seconds`); until then the others wait, then retry, rather than create another.
            still_running = True
            raise
        finally:
            if not still_running:
                self._lock.release(lease)

    def _record(self, key: str, entry: RecordedList) -> RecordedList:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    **self._item_key(key),
                    "listId": {"S": entry.list_id},
                    "owner": {"S": entry.owner},
                    "recordedAt": {"N": f"{self._clock():.3f}"},
                },
                # Never overwrite a recorded list: a lease that outlived its holder must not undo a record.
                ConditionExpression="attribute_not_exists(pk)",
            )
        except (BotoCoreError, ClientError) as exc:
            if _code(exc) != _CONDITION_FAILED:
                raise RetryableError("list_registry_unavailable", _code(exc)) from None
            existing = self._read(key)
            if existing is None:
                raise RetryableError(
                    f"{self._reasons}_changed", "the list record changed meanwhile"
                ) from None
            if existing.list_id != entry.list_id:
                logger.warning("another invocation recorded a different list for this audience")
            return existing
        self._remember(key, entry)
        return entry

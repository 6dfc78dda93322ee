"""Test doubles for running many invocations in one process: simulated time and an in-memory DynamoDB.

- `SimulatedClock`: time stands still while any worker thread works, and jumps to the next wake-up
  when every worker sleeps. A call then takes no simulated time, so whether a rate budget holds
  does not depend on how fast this machine is, and waiting a 20-s window costs no real time.
- `MemoryDynamoDB`: the slice of the DynamoDB client the layer's leases, rate budgets and slots use
  (get/put/update/delete with the condition shapes they send), thread-safe and atomic per call as
  DynamoDB is. moto serves the same calls ~100x slower under 20 threads (one lock, the GIL), which
  would make the machine, not the budget, the limiting factor. `test_memory_dynamodb_agrees_with_moto`
  checks it against moto.
"""

from __future__ import annotations

import copy
import re
import threading
from collections import Counter
from typing import Any

from botocore.exceptions import ClientError


class SimulatedClock:
    def __init__(self, start: float, workers: int) -> None:
        self._now = start
        self._workers = workers
        self._sleepers: dict[int, float] = {}  # thread id -> wake-up time
        self._cond = threading.Condition()

    def now(self) -> float:
        with self._cond:
            return self._now

    def sleep(self, seconds: float) -> None:
        me = threading.get_ident()
        with self._cond:
            wake = self._now + max(0.0, seconds)
            self._sleepers[me] = wake
            self._advance()
            while self._now < wake:
                self._cond.wait()
            del self._sleepers[me]

    def leave(self) -> None:
        """A worker is done for good: time no longer waits for it."""
        with self._cond:
            self._workers -= 1
            self._advance()

    def _advance(self) -> None:
        blocked = [wake for wake in self._sleepers.values() if wake > self._now]
        if blocked and len(blocked) >= self._workers:
            self._now = min(blocked)
            self._cond.notify_all()


_ATOM = re.compile(
    r"^\s*(?:attribute_not_exists\((?P<missing>[#\w]+)\)|(?P<name>[#\w]+)\s*(?P<op>=|<|>)\s*(?P<value>:\w+))\s*$"
)


def _scalar(value: dict[str, Any]) -> Any:
    if "N" in value:
        return float(value["N"])
    return value.get("S")


class MemoryDynamoDB:
    def __init__(self) -> None:
        self._items: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()

    @staticmethod
    def _key(table: str, key: dict[str, Any]) -> tuple[str, str, str]:
        return table, key["pk"]["S"], key["sk"]["S"]

    @staticmethod
    def _conflict(operation: str) -> ClientError:
        error = {
            "Error": {"Code": "ConditionalCheckFailedException", "Message": "The conditional request failed"}
        }
        return ClientError(error, operation)

    @staticmethod
    def _holds(
        condition: str | None, item: dict[str, Any] | None, values: dict[str, Any], names: dict[str, str]
    ) -> bool:
        if not condition:
            return True
        for atom in condition.split(" OR "):
            match = _ATOM.match(atom)
            if match is None:
                raise NotImplementedError(f"condition not supported by the double: {atom!r}")
            if match["missing"]:
                if item is None or names.get(match["missing"], match["missing"]) not in item:
                    return True
                continue
            attribute = (item or {}).get(names.get(match["name"], match["name"]))
            if attribute is None:
                continue
            left, right = _scalar(attribute), _scalar(values[match["value"]])
            if {"=": left == right, "<": left < right, ">": left > right}[match["op"]]:
                return True
        return False

    def get_item(self, *, TableName: str, Key: dict[str, Any], **_: Any) -> dict[str, Any]:
        with self._lock:
            self.calls["GetItem"] += 1
            item = self._items.get(self._key(TableName, Key))
            return {"Item": copy.deepcopy(item)} if item is not None else {}

    def put_item(
        self,
        *,
        TableName: str,
        Item: dict[str, Any],
        ConditionExpression: str | None = None,
        ExpressionAttributeValues: dict[str, Any] | None = None,
        ExpressionAttributeNames: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        key = self._key(TableName, Item)
        with self._lock:
            self.calls["PutItem"] += 1
            existing = self._items.get(key)
            if not self._holds(
                ConditionExpression, existing, ExpressionAttributeValues or {}, ExpressionAttributeNames or {}
            ):
                raise self._conflict("PutItem")
            self._items[key] = copy.deepcopy(Item)
        return {}

    def update_item(
        self,
        *,
        TableName: str,
        Key: dict[str, Any],
        UpdateExpression: str,
        ConditionExpression: str | None = None,
        ExpressionAttributeValues: dict[str, Any] | None = None,
        ExpressionAttributeNames: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        values, names = ExpressionAttributeValues or {}, ExpressionAttributeNames or {}
        key = self._key(TableName, Key)
        with self._lock:
            self.calls["UpdateItem"] += 1
            existing = self._items.get(key)
            if not self._holds(ConditionExpression, existing, values, names):
                raise self._conflict("UpdateItem")
            item = copy.deepcopy(existing) if existing is not None else copy.deepcopy(Key)
            for verb, body in re.findall(r"(SET|ADD)\s+(.+?)(?=\s+(?:SET|ADD)\s+|$)", UpdateExpression):
                for clause in body.split(","):
                    if verb == "SET":
                        name, value = (part.strip() for part in clause.split("="))
                        item[names.get(name, name)] = copy.deepcopy(values[value])
                    else:
                        name, value = clause.split()
                        attribute = names.get(name, name)
                        total = float(item.get(attribute, {"N": "0"})["N"]) + float(values[value]["N"])
                        item[attribute] = {"N": repr(int(total)) if total.is_integer() else repr(total)}
            self._items[key] = item
        return {}

    def delete_item(
        self,
        *,
        TableName: str,
        Key: dict[str, Any],
        ConditionExpression: str | None = None,
        ExpressionAttributeValues: dict[str, Any] | None = None,
        ExpressionAttributeNames: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        key = self._key(TableName, Key)
        with self._lock:
            self.calls["DeleteItem"] += 1
            existing = self._items.get(key)
            if not self._holds(
                ConditionExpression, existing, ExpressionAttributeValues or {}, ExpressionAttributeNames or {}
            ):
                raise self._conflict("DeleteItem")
            self._items.pop(key, None)
        return {}

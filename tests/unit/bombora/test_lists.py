"""The list registry (BOM-06): a list is found or created once across invocations, and recorded with a
conditional write. In-process moto; threads stand in for concurrent invocations."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from activation_core.errors import RetryableError
from activation_core.locks import Lease, LeaseLock
from bombora import lists
from bombora.lists import ListRegistry, RecordedList
from tests.unit.bombora.conftest import STATE_TABLE

KEY = "abm tier 1"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class GrantingLock(LeaseLock):
    """A lock that never refuses: what the registry would be without its lease (negative control)."""

    def try_acquire(self, key: str, lease_seconds: float, owner: str | None = None) -> Lease | None:
        return Lease(key, "anyone", 0.0)

    def release(self, lease: Lease) -> None:
        return None


def registry(
    dynamodb: Any,
    *,
    lock: LeaseLock | None = None,
    sleep: Callable[[float], None] = lambda _: None,
    clock: Clock | None = None,
    wait_timeout: float = 1.0,
) -> ListRegistry:
    clock = clock or Clock()
    return ListRegistry(
        STATE_TABLE,
        "account-1",
        lock=lock or LeaseLock(STATE_TABLE, dynamodb=dynamodb, clock=clock),
        dynamodb=dynamodb,
        sleep=sleep,
        clock=clock,
        wait_timeout=wait_timeout,
        poll_interval=0.25,
    )


def item(dynamodb: Any) -> dict[str, Any]:
    key = {"pk": {"S": "bombora#lists#account-1"}, "sk": {"S": KEY}}
    return dict(dynamodb.get_item(TableName=STATE_TABLE, Key=key, ConsistentRead=True).get("Item", {}))


def race(dynamodb: Any, lock_factory: Callable[[], LeaseLock]) -> list[str]:
    """Two invocations resolve a new list at once; returns the list ids each `find_or_create` made.

    The first parks inside its create; the second asks while it is parked (and, when it has to wait,
    lets the first finish).
    """
    created: list[str] = []
    parked = threading.Event()
    release = threading.Event()
    first_done = threading.Event()

    def create_first() -> str:
        parked.set()
        release.wait(5)
        created.append("list-first")
        return "list-first"

    def create_second() -> str:
        created.append("list-second")
        return "list-second"

    def first() -> None:
        registry(dynamodb, lock=lock_factory()).resolve(KEY, create_first, "dataflow-a")
        first_done.set()

    def wait_for_first(_: float) -> None:
        release.set()
        first_done.wait(5)

    thread = threading.Thread(target=first)
    thread.start()
    assert parked.wait(5)
    lists.clear_memory_cache()  # another container
    second = registry(dynamodb, lock=lock_factory(), sleep=wait_for_first)
    second_entry = second.resolve(KEY, create_second, "dataflow-a")
    release.set()
    thread.join(5)
    assert second_entry is not None
    return created


def test_bom_06_two_concurrent_invocations_create_one_list(dynamodb: Any) -> None:
    created = race(dynamodb, lambda: LeaseLock(STATE_TABLE, dynamodb=dynamodb))
    assert created == ["list-first"]
    assert item(dynamodb)["listId"]["S"] == "list-first"


def test_bom_06_without_the_lease_the_same_race_creates_two_lists(dynamodb: Any) -> None:
    """The race above is real: the registry minus its lease lets both invocations create a list."""
    created = race(dynamodb, lambda: GrantingLock(STATE_TABLE, dynamodb=dynamodb))
    assert sorted(created) == ["list-first", "list-second"]
    # ... and the conditional write still keeps one record: the later creator adopts the first id.
    assert item(dynamodb)["listId"]["S"] == "list-second"


def record_call(calls: list[int], list_id: str) -> str:
    calls.append(1)
    return list_id


def test_bom_06_a_recorded_list_is_served_from_the_table_then_memory(dynamodb: Any) -> None:
    calls: list[int] = []
    entry = registry(dynamodb).resolve(KEY, lambda: record_call(calls, "list-1"), "dataflow-a")
    assert entry == RecordedList("list-1", "dataflow-a")
    assert item(dynamodb)["owner"]["S"] == "dataflow-a"
    lists.clear_memory_cache()
    assert registry(dynamodb).resolve(KEY, lambda: record_call(calls, "other"), "dataflow-a") == entry
    dynamodb.delete_item(
        TableName=STATE_TABLE, Key={"pk": {"S": "bombora#lists#account-1"}, "sk": {"S": KEY}}
    )
    assert registry(dynamodb).lookup(KEY) == entry  # warm container: memory, no table read needed
    assert calls == [1]


def test_bom_06_a_record_is_never_overwritten_by_a_holder_that_outlived_its_lease(dynamodb: Any) -> None:
    clock = Clock()
    slow = registry(dynamodb, clock=clock)
    fast = registry(dynamodb, clock=clock)

    def slow_create() -> str:
        clock.now += 120  # longer than the lease: another invocation takes over meanwhile
        lists.clear_memory_cache()
        assert fast.resolve(KEY, lambda: "list-fast", "dataflow-a") == RecordedList("list-fast", "dataflow-a")
        return "list-slow"

    assert slow.resolve(KEY, slow_create, "dataflow-a") == RecordedList("list-fast", "dataflow-a")
    assert item(dynamodb)["listId"]["S"] == "list-fast"


def test_bom_06_nothing_is_recorded_when_there_is_no_list_to_record(dynamodb: Any) -> None:
    assert registry(dynamodb).resolve(KEY, lambda: None, "dataflow-a") is None
    assert item(dynamodb) == {}


def test_a_waiter_gives_up_with_a_retry_when_the_holder_takes_too_long(dynamodb: Any) -> None:
    clock = Clock()
    lock = LeaseLock(STATE_TABLE, dynamodb=dynamodb, clock=clock)
    held = lock.try_acquire(f"bombora-list#account-1#{KEY}", 60)
    assert held is not None
    slept: list[float] = []
    waiter = registry(dynamodb, lock=lock, sleep=slept.append, clock=clock, wait_timeout=1.0)
    with pytest.raises(RetryableError) as err:
        waiter.resolve(KEY, lambda: "never", "dataflow-a")
    assert err.value.reason == "bombora_list_pending"
    assert sum(slept) == pytest.approx(1.0)


def test_a_waiter_takes_over_when_the_holder_left_without_a_record(dynamodb: Any) -> None:
    lock = LeaseLock(STATE_TABLE, dynamodb=dynamodb)
    held = lock.try_acquire(f"bombora-list#account-1#{KEY}", 60)
    assert held is not None
    waiter = registry(dynamodb, lock=lock, sleep=lambda _: lock.release(held))
    assert waiter.resolve(KEY, lambda: "list-1", "dataflow-a") == RecordedList("list-1", "dataflow-a")


def test_forget_drops_only_the_list_it_names(dynamodb: Any) -> None:
    reg = registry(dynamodb)
    reg.resolve(KEY, lambda: "list-1", "dataflow-a")
    reg.forget(KEY, "list-other")
    assert item(dynamodb)["listId"]["S"] == "list-1"
    reg.forget(KEY, "list-1")
    assert item(dynamodb) == {}
    assert reg.lookup(KEY) is None


def test_claim_moves_a_list_to_a_new_dataflow_only_if_it_is_unchanged(dynamodb: Any) -> None:
    reg = registry(dynamodb)
    entry = reg.resolve(KEY, lambda: "list-1", "dataflow-a")
    assert entry is not None
    assert reg.claim(KEY, entry, "dataflow-b") == RecordedList("list-1", "dataflow-b")
    assert item(dynamodb)["owner"]["S"] == "dataflow-b"
    with pytest.raises(RetryableError) as err:
        reg.claim(KEY, RecordedList("list-stale", "dataflow-a"), "dataflow-c")
    assert err.value.reason == "bombora_list_changed"
    assert item(dynamodb)["owner"]["S"] == "dataflow-b"

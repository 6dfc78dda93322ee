"""Shared rate budgets: strict sliding windows and in-flight limits across invocations."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from activation_core.errors import ThrottledError
from activation_core.rate_budget import ConcurrencySlots, RateBudget, Window


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def budget(
    dynamodb: Any, state_table: str, clock: Clock, limit: int = 100, seconds: float = 20.0
) -> RateBudget:
    return RateBudget(
        state_table, "vendor-a", Window(limit, seconds), dynamodb=dynamodb, clock=clock, sleep=clock.sleep
    )


def test_no_sliding_window_ever_holds_more_than_the_limit(dynamodb: Any, state_table: str) -> None:
    clock = Clock()
    rate = budget(dynamodb, state_table, clock)
    calls: list[float] = []
    for _ in range(350):
        rate.acquire(1, max_wait=60)
        calls.append(clock.now)
        clock.now += 0.05  # a fast caller: 20 calls per second wanted
    for start in calls:
        in_window = [t for t in calls if start <= t < start + 20.0]
        assert len(in_window) <= 100
    # ...and the budget is used, not starved: 350 calls need at least 3 full windows.
    assert calls[-1] - calls[0] < 4 * 21


def test_over_budget_with_no_time_to_wait_defers_with_retry_after(dynamodb: Any, state_table: str) -> None:
    clock = Clock()
    rate = budget(dynamodb, state_table, clock, limit=10)
    rate.acquire(10)
    with pytest.raises(ThrottledError) as err:
        rate.acquire(1, max_wait=1.0)
    assert err.value.retry_after is not None and 19 <= err.value.retry_after <= 21.5


def test_block_until_stops_everyone_until_the_reset(dynamodb: Any, state_table: str) -> None:
    clock = Clock()
    first, second = budget(dynamodb, state_table, clock), budget(dynamodb, state_table, clock)
    first.block_until(clock.now + 300)
    with pytest.raises(ThrottledError) as err:
        second.acquire(1, max_wait=10)
    assert err.value.retry_after == pytest.approx(300)
    clock.now += 301
    second.acquire(1)


def test_concurrent_invocations_share_one_budget(dynamodb: Any, state_table: str) -> None:
    rate_limit = 30
    taken: list[int] = []
    errors: list[Exception] = []

    def worker() -> None:
        rate = RateBudget(state_table, "shared", Window(rate_limit, 3600), dynamodb=dynamodb)
        for _ in range(10):
            try:
                rate.acquire(1, max_wait=0)
                taken.append(1)
            except ThrottledError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == rate_limit
    assert len(errors) == 60 - rate_limit


def test_concurrency_slots_bound_calls_in_flight(dynamodb: Any, state_table: str) -> None:
    limit = 3
    in_flight = 0
    peak = 0
    guard = threading.Lock()
    release = threading.Event()

    done = 0

    def call() -> None:
        nonlocal in_flight, peak, done
        slots = ConcurrencySlots(state_table, "vendor-a", limit, dynamodb=dynamodb, poll_interval=0.01)
        with slots.hold(max_wait=30):
            with guard:
                in_flight += 1
                peak = max(peak, in_flight)
            release.wait(0.05)
            with guard:
                in_flight -= 1
                done += 1

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # A bound, asserted as a bound: under load the threads may never overlap that much (issue 14).
    assert 1 <= peak <= limit
    assert done == 8
    # ... and that the bound is the slots' doing: with `limit` held, one more is refused at once.
    full = ConcurrencySlots(state_table, "vendor-b", limit, dynamodb=dynamodb)
    for _ in range(limit):
        full._take(max_wait=0)
    with pytest.raises(ThrottledError):
        full._take(max_wait=0)


def test_an_expired_slot_lease_frees_the_slot(dynamodb: Any, state_table: str) -> None:
    clock = Clock()
    slots = ConcurrencySlots(
        state_table, "k", 1, lease_seconds=5, dynamodb=dynamodb, clock=clock, sleep=clock.sleep
    )
    slots._take(max_wait=0)  # a holder that crashed and never gave the slot back
    with pytest.raises(ThrottledError):
        slots._take(max_wait=0)
    clock.now += 6
    slots._take(max_wait=0)


class _Context:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_a_budget_wait_never_outlasts_the_invocation_s_deadline(dynamodb: Any, state_table: str) -> None:
    from activation_core import deadline

    clock = Clock()
    budget = RateBudget(state_table, "k", Window(1, 20.0), dynamodb=dynamodb, clock=clock, sleep=clock.sleep)
    budget.acquire()
    deadline.begin(_Context(int((deadline.RESERVE_SECONDS + 5.0) * 1000)))  # 5 s left, the wait is ~20 s
    try:
        with pytest.raises(ThrottledError) as err:
            budget.acquire(max_wait=60.0)
    finally:
        deadline.end()
    assert err.value.retry_after is not None and err.value.retry_after > 5.0

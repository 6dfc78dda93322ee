"""The Outreach rate gate over the layer's shared budget (OUT-05): chunks, re-sync from the vendor's
X-RateLimit headers, the 429 reset time - with a recording budget and an injected clock."""

from __future__ import annotations

from typing import Any

import pytest

from activation_core.errors import ThrottledError
from activation_core.rate_budget import Window
from outreach.client import RateGate, _retry_at_in_message

NOW = 1_795_860_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class RecordingBudget:
    """Stands in for RateBudget: grants up to `free` calls, records acquires and blocks."""

    def __init__(self, limit: int = 10_000, free: int = 10_000) -> None:
        self.window = Window(limit, 3600.0)
        self.free = free
        self.acquired: list[int] = []
        self.blocks: list[float] = []

    def acquire(self, calls: int = 1, *, max_wait: float = 5.0) -> None:
        if calls > self.free:
            raise ThrottledError("rate_budget_exhausted", "spent", retry_after=1200.0)
        self.free -= calls
        self.acquired.append(calls)

    def block_until(self, epoch_seconds: float) -> None:
        self.blocks.append(epoch_seconds)


def gate(budget: RecordingBudget, clock: Clock, reserve: int = 50, chunk: int = 8) -> RateGate:
    return RateGate(budget, reserve=reserve, chunk=chunk, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]


def test_out_05_calls_are_taken_from_the_shared_budget_in_chunks_sized_to_the_batch() -> None:
    budget = RecordingBudget()
    rate = gate(budget, Clock())
    rate.plan(20)
    for _ in range(20):
        rate.take()
    assert budget.acquired == [8, 8, 4]  # 3 DynamoDB round trips for 20 calls, none taken in excess
    rate.take()  # an unplanned call (a retry) takes exactly one more
    assert budget.acquired[-1] == 1


def test_out_05_a_nearly_spent_budget_still_grants_single_calls() -> None:
    budget = RecordingBudget(free=3)
    rate = gate(budget, Clock())
    rate.plan(10)
    for _ in range(3):
        rate.take()
    with pytest.raises(ThrottledError) as err:
        rate.take()
    assert budget.acquired == [1, 1, 1]
    assert err.value.retry_after == 1200.0


def test_out_05_a_chunk_never_exceeds_the_budget_window() -> None:
    budget = RecordingBudget(limit=5, free=5)
    rate = gate(budget, Clock(), chunk=16)
    rate.plan(16)
    for _ in range(5):
        rate.take()
    assert budget.acquired == [5]


def test_out_05_remaining_down_to_the_reserve_blocks_every_invocation_until_the_reset() -> None:
    budget, clock = RecordingBudget(), Clock()
    rate = gate(budget, clock, reserve=50)
    rate.plan(5)
    rate.observe({"X-RateLimit-Remaining": "51", "X-RateLimit-Reset": str(int(NOW + 900))}, NOW)
    assert budget.blocks == []
    rate.observe({"X-RateLimit-Remaining": "50", "X-RateLimit-Reset": str(int(NOW + 900))}, NOW)
    assert budget.blocks == [NOW + 900]  # shared: the other invocations stop too
    with pytest.raises(ThrottledError) as err:
        rate.take()
    assert err.value.retry_after == pytest.approx(900)
    rate.observe({"X-RateLimit-Remaining": "10", "X-RateLimit-Reset": str(int(NOW + 900))}, NOW)
    assert len(budget.blocks) == 1  # a block already known is not written again
    clock.now = NOW + 901
    rate.take()  # after the reset the calls resume


def test_out_05_a_short_block_is_waited_out_in_the_invocation_rather_than_requeued() -> None:
    budget, clock = RecordingBudget(), Clock()
    rate = gate(budget, clock)
    rate.plan(1)
    rate.block_until(NOW + 2)  # a brief throttle: Retry-After 2
    rate.take()
    assert clock.slept == [pytest.approx(2)]
    assert budget.acquired == [1]


def test_out_05_headers_without_a_reset_block_for_a_minute_and_garbage_is_ignored() -> None:
    budget = RecordingBudget()
    rate = gate(budget, Clock())
    rate.observe({"X-RateLimit-Remaining": "not-a-number"}, NOW)
    rate.observe({}, NOW)
    assert budget.blocks == []
    rate.observe({"X-RateLimit-Remaining": "0"}, NOW)
    assert budget.blocks == [NOW + 60]


@pytest.mark.parametrize(
    ("detail", "expected"),
    [
        (
            "You have exceeded your permitted rate limit of 10,000; please try again at 2026-11-28T10:30:00.",
            1800.0,
        ),
        ("... please try again at 2026-11-28T10:00:30Z.", 30.0),
        ("please try again later.", None),
    ],
)
def test_out_05_the_429_message_says_when_to_try_again(detail: str, expected: Any) -> None:
    now = 1_795_860_000.0  # 2026-11-28T10:00:00Z
    assert _retry_at_in_message(detail, now) == expected

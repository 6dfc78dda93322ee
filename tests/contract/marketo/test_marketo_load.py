"""Load: 20 concurrent invocations push 10,000 profiles; Marketo (the fake) never sees more than 100
calls in any 20-s window nor more than 10 in flight (MKT limits, apis.md 1.8).

Each thread is a warm Lambda container with its own pipeline and connector; they share what Lambdas
share: the rate budget and slots in DynamoDB (an in-memory double, see simulation.py) and the
connection secret (moto). Time is simulated: calls take no time, sleeps jump ahead, so the budget has
to hold every burst back whatever this machine's speed. A record an invocation hands back (retry) is
redelivered after its `retry_after`, as SQS would. The second test checks calls in flight in real
time, where calls from different invocations really overlap.
"""

from __future__ import annotations

import heapq
import itertools
import json
import threading
from typing import Any

import pytest

from activation_core.config_store import parse_destinations
from activation_core.outcomes import Kind, Outcome
from activation_core.pipeline import Pipeline
from activation_core.settings import FunctionSettings
from local.fakes.marketo import FakeMarketo
from marketo.service import MarketoDestination
from tests.contract.marketo.conftest import EXPO_LIST, marketo_instance, profile, settings_for
from tests.contract.marketo.simulation import MemoryDynamoDB, SimulatedClock
from tests.support import sqs_record

PROFILES = 10_000
INVOCATIONS = 20
# Small batches (the trickle case: the batching window closed before 300 gathered) need ~400 calls,
# four times what one 20-s window allows: the shared budget has to hold invocations back.
BATCH = 50
START = 1_795_860_000.0


def test_mkt_limits_20_invocations_push_10000_profiles_within_marketo_limits(
    fake: FakeMarketo, connection: Any, function_settings: FunctionSettings
) -> None:
    clock = SimulatedClock(START, workers=INVOCATIONS)
    dynamodb = MemoryDynamoDB()
    fake.clock = clock.now
    fake.latency = 0.002  # real seconds in flight per call, so calls from different threads overlap
    config = parse_destinations(
        {"destinations": [marketo_instance(**settings_for("audience_and_profile", "update_and_create"))]}
    )
    template = json.dumps(profile("load.template@example.com"))
    records = [
        sqs_record(
            template.replace("load.template@", f"load.{i:05d}@"),
            f"m-{i}",
        )
        for i in range(PROFILES)
    ]
    ready: list[tuple[float, int, list[dict[str, Any]]]] = []  # the queue: (visible at, seq, batch)
    sequence = itertools.count()
    for start in range(0, PROFILES, BATCH):
        heapq.heappush(ready, (START, next(sequence), records[start : start + BATCH]))
    final: dict[str, Outcome] = {}
    busy = [0]
    guard = threading.Lock()
    failures: list[BaseException] = []
    redelivered = [0]

    def container() -> None:
        plug = MarketoDestination(
            clock=clock.now, sleep=clock.sleep, emit_metric=lambda name, value: None, dynamodb=dynamodb
        )
        pipeline = Pipeline(plug, function_settings, lambda: config)
        try:
            while True:
                with guard:
                    if not ready and not busy[0]:
                        return
                    batch = heapq.heappop(ready)[2] if ready and ready[0][0] <= clock.now() else None
                    busy[0] += batch is not None
                if batch is None:
                    clock.sleep(0.5)  # the ESM poll: nothing visible yet
                    continue
                try:
                    results = {k: r.outcome for k, r in pipeline.process(batch).items()}
                except BaseException as exc:  # surfaced by the test
                    failures.append(exc)
                    results = {}
                with guard:
                    busy[0] -= 1
                    retry = [r for r in batch if results[r["messageId"]].kind is Kind.RETRY]
                    final.update((k, o) for k, o in results.items() if o.kind is not Kind.RETRY)
                    if retry:
                        redelivered[0] += len(retry)
                        wait = max(results[r["messageId"]].retry_after or 1.0 for r in retry)
                        heapq.heappush(ready, (clock.now() + wait, next(sequence), retry))
        finally:
            clock.leave()

    threads = [threading.Thread(target=container, name=f"container-{n}") for n in range(INVOCATIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert not failures, failures
    assert not any(t.is_alive() for t in threads)

    # Nothing lost: every profile delivered, each lead created once and listed.
    assert len(final) == PROFILES
    assert {o.kind for o in final.values()} == {Kind.DELIVERED}
    assert len(fake.leads) == PROFILES and fake.duplicate_entities() == []
    assert len(fake.members(EXPO_LIST)) == PROFILES
    # Marketo's limits held, measured where Marketo measures them.
    calls = len(fake.arrivals)
    assert calls >= 4 * fake.rate_limit  # the load needed several windows...
    assert clock.now() - START >= (calls // fake.rate_limit - 1) * fake.rate_window  # ...and was held back
    assert fake.max_calls_in_any_window(20.0) <= 100
    assert fake.peak_in_flight <= 10
    assert fake.refusals["606"] == fake.refusals["615"] == 0


@pytest.mark.parametrize("backend", ["moto", "memory"])
def test_memory_dynamodb_agrees_with_moto(aws_backend: Any, backend: str) -> None:
    """The double answers the layer's budget, slot and lease calls as moto (DynamoDB) does."""
    from activation_core import aws
    from activation_core.errors import ThrottledError
    from activation_core.locks import LeaseLock
    from activation_core.rate_budget import ConcurrencySlots, RateBudget, Window
    from tests.contract.conftest import STATE_TABLE

    dynamodb = aws.client("dynamodb") if backend == "moto" else MemoryDynamoDB()
    now = [START]
    clock, sleep = (lambda: now[0]), (lambda s: now.__setitem__(0, now[0] + s))
    budget = RateBudget(STATE_TABLE, "k", Window(3, 20.0), dynamodb=dynamodb, clock=clock, sleep=sleep)
    taken = []
    for _ in range(5):
        budget.acquire(1, max_wait=30)
        taken.append(now[0] - START)
    budget.block_until(now[0] + 100)
    with pytest.raises(ThrottledError):
        budget.acquire(1, max_wait=5)
    slots = ConcurrencySlots(
        STATE_TABLE, "k", 1, dynamodb=dynamodb, clock=clock, sleep=sleep, poll_interval=1
    )
    with slots.hold(max_wait=0), pytest.raises(ThrottledError):
        slots._take(max_wait=0)
    slots._take(max_wait=0)  # given back on exit
    lock = LeaseLock(STATE_TABLE, dynamodb=dynamodb, clock=clock)
    lease = lock.try_acquire("t", 10)
    assert lease is not None and lock.try_acquire("t", 10) is None
    lock.release(lease)
    assert lock.try_acquire("t", 10) is not None
    # Three calls, then the window (plus the bucket still in it) before the fourth and fifth.
    assert taken[:3] == [0.0, 0.0, 0.0] and 20.0 <= taken[3] <= 21.0 and taken[4] == taken[3]


def test_mkt_limits_no_more_than_10_calls_in_flight_across_20_invocations(
    fake: FakeMarketo, connection: Any, function_settings: FunctionSettings
) -> None:
    """Real time, slow calls: 20 invocations start together; the shared slots let 10 talk at once."""
    fake.latency = 0.15  # each call stays in flight long enough for the others to pile up
    dynamodb = MemoryDynamoDB()
    config = parse_destinations(
        {"destinations": [marketo_instance(**settings_for("profile_only", "update_and_create"))]}
    )
    start = threading.Barrier(INVOCATIONS)
    outcomes: dict[str, Outcome] = {}
    guard = threading.Lock()

    def invocation(n: int) -> None:
        plug = MarketoDestination(emit_metric=lambda name, value: None, dynamodb=dynamodb)
        pipeline = Pipeline(plug, function_settings, lambda: config)
        batch = [sqs_record(profile(f"p{n}.{i}@example.com"), f"m-{n}-{i}") for i in range(10)]
        start.wait()
        results = pipeline.process(batch)
        with guard:
            outcomes.update((k, r.outcome) for k, r in results.items())

    threads = [threading.Thread(target=invocation, args=(n,)) for n in range(INVOCATIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert {o.kind for o in outcomes.values()} == {Kind.DELIVERED} and len(outcomes) == 200
    assert fake.refusals["615"] == 0
    assert 5 <= fake.peak_in_flight <= 10  # calls really overlapped, and never more than 10

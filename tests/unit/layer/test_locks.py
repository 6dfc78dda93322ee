from __future__ import annotations

import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError

from activation_core.errors import RetryableError
from activation_core.locks import Lease, LeaseLock


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _item(dynamodb: Any, table: str, key: str) -> dict[str, Any] | None:
    response = dynamodb.get_item(TableName=table, Key={"pk": {"S": f"lock#{key}"}, "sk": {"S": "lock"}})
    item: dict[str, Any] | None = response.get("Item")
    return item


def test_acquire_writes_the_lease(dynamodb: Any, state_table: str) -> None:
    clock = Clock()
    lock = LeaseLock(state_table, dynamodb=dynamodb, clock=clock)
    lease = lock.try_acquire("token#conn", 30)
    assert lease is not None
    assert lease.key == "token#conn"
    assert lease.expires_at == clock.now + 30
    item = _item(dynamodb, state_table, "token#conn")
    assert item is not None
    assert item["owner"]["S"] == lease.owner
    assert float(item["expiresAt"]["N"]) == pytest.approx(clock.now + 30)
    assert int(item["ttl"]["N"]) >= clock.now + 30


def test_second_acquire_fails_while_held(dynamodb: Any, state_table: str) -> None:
    clock = Clock()
    lock = LeaseLock(state_table, dynamodb=dynamodb, clock=clock)
    assert lock.try_acquire("k", 30) is not None
    clock.now += 29
    assert lock.try_acquire("k", 30) is None
    # Other keys are independent.
    assert lock.try_acquire("other", 30) is not None


def test_acquire_succeeds_after_expiry_even_before_ttl_deletes(dynamodb: Any, state_table: str) -> None:
    clock = Clock()
    lock = LeaseLock(state_table, dynamodb=dynamodb, clock=clock)
    first = lock.try_acquire("k", 30)
    assert first is not None
    clock.now += 30.5
    second = lock.try_acquire("k", 30)
    assert second is not None
    assert second.owner != first.owner
    item = _item(dynamodb, state_table, "k")
    assert item is not None and item["owner"]["S"] == second.owner


def test_release_frees_the_key(dynamodb: Any, state_table: str) -> None:
    lock = LeaseLock(state_table, dynamodb=dynamodb, clock=Clock())
    lease = lock.try_acquire("k", 30)
    assert lease is not None
    lock.release(lease)
    assert _item(dynamodb, state_table, "k") is None
    assert lock.try_acquire("k", 30) is not None


def test_release_by_non_owner_does_nothing(dynamodb: Any, state_table: str) -> None:
    clock = Clock()
    lock = LeaseLock(state_table, dynamodb=dynamodb, clock=clock)
    stale = lock.try_acquire("k", 30)
    assert stale is not None
    clock.now += 31
    current = lock.try_acquire("k", 30)
    assert current is not None
    lock.release(stale)  # the expired holder must not delete the new holder's lease
    item = _item(dynamodb, state_table, "k")
    assert item is not None and item["owner"]["S"] == current.owner
    assert lock.try_acquire("k", 30) is None
    lock.release(Lease(key="never-held", owner="nobody", expires_at=0.0))  # no item: ignored


def test_two_threads_racing_exactly_one_wins(dynamodb: Any, state_table: str) -> None:
    lock = LeaseLock(state_table, dynamodb=dynamodb)
    for round_number in range(5):
        key = f"race-{round_number}"
        contenders = 8
        barrier = threading.Barrier(contenders)
        results: list[Lease | None] = []
        results_lock = threading.Lock()

        def contend(
            key: str = key,
            barrier: threading.Barrier = barrier,
            results: list[Lease | None] = results,
            results_lock: threading.Lock = results_lock,
        ) -> None:
            barrier.wait()
            lease = lock.try_acquire(key, 30)
            with results_lock:
                results.append(lease)

        threads = [threading.Thread(target=contend) for _ in range(contenders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        winners = [lease for lease in results if lease is not None]
        assert len(results) == contenders
        assert len(winners) == 1


def test_dynamodb_failure_is_retryable(mocked_aws: None) -> None:
    import boto3

    client = boto3.client("dynamodb", region_name="us-east-1")  # no table created
    lock = LeaseLock("missing-table", dynamodb=client)
    with pytest.raises(RetryableError) as caught:
        lock.try_acquire("k", 30)
    assert caught.value.reason == "lock_unavailable"
    assert isinstance(caught.value.__cause__, ClientError)
    lock.release(Lease(key="k", owner="o", expires_at=0.0))  # best effort: logged, not raised


def test_lease_must_be_positive(dynamodb: Any, state_table: str) -> None:
    lock = LeaseLock(state_table, dynamodb=dynamodb)
    with pytest.raises(ValueError, match="lease_seconds"):
        lock.try_acquire("k", 0)


def test_default_client_comes_from_the_layer(dynamodb: Any, state_table: str) -> None:
    lock = LeaseLock(state_table)
    assert lock.try_acquire("k", 30) is not None


def test_a_lease_is_renewed_only_by_its_holder(dynamodb: Any, state_table: str) -> None:
    clock = [1000.0]
    lock = LeaseLock(state_table, dynamodb=dynamodb, clock=lambda: clock[0])
    lease = lock.try_acquire("k", 30)
    assert lease is not None
    clock[0] += 25
    renewed = lock.renew(lease, 30)
    assert renewed is not None and renewed.expires_at == 1055.0
    clock[0] += 10  # past the first expiry, within the renewed one: still held
    assert lock.try_acquire("k", 30) is None
    clock[0] += 30  # expired: another holder takes it, and the first one is fenced off
    other = lock.try_acquire("k", 30)
    assert other is not None
    assert lock.renew(lease, 30) is None


def test_a_named_owner_takes_its_own_lease_again_and_nobody_else_does(
    dynamodb: Any, state_table: str
) -> None:
    """A workflow run retrying a step holds its lease again; another run waits; holder() names it."""
    clock = Clock()
    lock = LeaseLock(state_table, dynamodb=dynamodb, clock=clock)
    assert lock.try_acquire("k", 30, owner="run-1") is not None
    clock.now += 10
    again = lock.try_acquire("k", 30, owner="run-1")
    assert again is not None and again.expires_at == clock.now + 30
    assert lock.try_acquire("k", 30, owner="run-2") is None
    assert lock.holder("k") == again
    clock.now += 31
    assert lock.holder("k") is None  # expired: nobody holds it
    assert lock.try_acquire("k", 30, owner="run-2") is not None

"""The merge-diff and the partitioning it relies on, on plain rows."""

from __future__ import annotations

import hashlib
import random

from snapshots.diff import ChangeKind, DiffCounts, diff
from snapshots.partitions import Row, bits_for, partition_of


def row(n: int, version: str = "v1") -> Row:
    return Row(hashlib.sha256(str(n).encode()).hexdigest(), version, f'{{"n":{n}}}')


def test_diff_finds_exactly_the_added_removed_and_changed_members() -> None:
    previous = sorted((row(n) for n in range(1000)), key=lambda r: r.key)
    current = [row(n) for n in range(100, 1100)]  # 0-99 left, 1000-1099 joined
    current[500] = row(600, "v2")  # member 600 changed
    current.sort(key=lambda r: r.key)
    counts = DiffCounts()
    changes = list(diff(current, previous, counts))
    by_kind = {k: {c.row.line for c in changes if c.kind is k} for k in ChangeKind}
    assert by_kind[ChangeKind.REMOVED] == {f'{{"n":{n}}}' for n in range(100)}
    assert by_kind[ChangeKind.ADDED] == {f'{{"n":{n}}}' for n in range(1000, 1100)}
    assert by_kind[ChangeKind.CHANGED] == {'{"n":600}'}
    assert (counts.added, counts.removed, counts.changed, counts.unchanged) == (100, 100, 1, 899)


def test_a_member_twice_in_one_snapshot_counts_as_a_duplicate_once() -> None:
    rows = sorted([row(1), row(1), row(2)], key=lambda r: r.key)
    counts = DiffCounts()
    assert len(list(diff(rows, [], counts))) == 2
    assert counts.duplicates == 1


def test_partitions_are_contiguous_key_ranges_at_every_split() -> None:
    keys = sorted(hashlib.sha256(str(random.random()).encode()).hexdigest() for _ in range(2000))
    for bits in (0, 1, 3, 6):
        indexes = [partition_of(k, bits) for k in keys]
        assert indexes == sorted(indexes)
        assert max(indexes) < 1 << bits


def test_partition_count_grows_with_the_snapshot_in_powers_of_two() -> None:
    assert bits_for(0) == 0
    assert bits_for(50_000) == 0
    assert bits_for(50_001) == 1
    assert bits_for(1_000_000) == 5
    assert bits_for(10_000_000) == 8

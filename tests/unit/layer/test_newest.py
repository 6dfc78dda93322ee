"""The newest change per key in a batch: one entry kept per key, every other one superseded (nothing
lost: kept + superseded = the batch)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from activation_core.newest import newest_per_key, superseded
from activation_core.outcomes import Kind

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@dataclass
class Record:
    occurred_at: datetime


@dataclass(eq=False)
class Change:
    email: str
    value: str
    record: Record

    @classmethod
    def at(cls, email: str, value: str, seconds: int) -> Change:
        return cls(email, value, Record(T0 + timedelta(seconds=seconds)))


def test_the_newest_change_of_each_key_is_kept_and_the_rest_superseded() -> None:
    batch = [
        Change.at("a@example.com", "old", 10),
        Change.at("b@example.com", "only", 5),
        Change.at("a@example.com", "new", 20),
        Change.at("a@example.com", "late-arriving-older", 15),
    ]

    newest = newest_per_key(batch, key=lambda c: c.email)

    assert {k: c.value for k, c in newest.by_key.items()} == {"a@example.com": "new", "b@example.com": "only"}
    assert [c.value for c in newest.superseded] == ["old", "late-arriving-older"]  # in batch order
    assert len(newest.by_key) + len(newest.superseded) == len(batch)


def test_keys_keep_the_order_of_their_first_appearance() -> None:
    batch = [Change.at("b", "1", 0), Change.at("a", "2", 0), Change.at("b", "3", 9)]

    assert list(newest_per_key(batch, key=lambda c: c.email).by_key) == ["b", "a"]


def test_of_changes_at_the_same_instant_the_later_in_the_batch_wins() -> None:
    batch = [Change.at("a", "first", 0), Change.at("a", "second", 0)]

    newest = newest_per_key(batch, key=lambda c: c.email)

    assert newest.by_key["a"].value == "second"
    assert [c.value for c in newest.superseded] == ["first"]


def test_any_order_and_any_entry_type() -> None:
    pairs = [("x", 3), ("x", 1), ("y", 2)]

    newest = newest_per_key(pairs, key=lambda p: p[0], at=lambda p: p[1])

    assert newest.by_key == {"x": ("x", 3), "y": ("y", 2)}
    assert newest.superseded == [("x", 1)]


def test_equal_entries_are_told_apart_by_identity() -> None:
    @dataclass
    class Entry:
        key: str
        at: int

    batch = [Entry("k", 1), Entry("k", 1)]  # equal, not the same object

    newest = newest_per_key(batch, key=lambda e: e.key, at=lambda e: e.at)

    assert newest.by_key["k"] is batch[1]
    assert len(newest.superseded) == 1 and newest.superseded[0] is batch[0]


def test_a_superseded_change_is_skipped_with_its_reason() -> None:
    outcome = superseded("a newer event for this lead in the batch")

    assert (outcome.kind, outcome.reason) == (Kind.SKIPPED, "superseded")
    assert outcome.detail == "a newer event for this lead in the batch"

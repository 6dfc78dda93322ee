"""Merge-diff of one sorted new partition against the previous membership's rows in the same key range.

Memory: the new partition (bounded by the partition target) plus one previous row at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from snapshots.members import BAD_LINE_SAMPLES
from snapshots.partitions import Row

DUPLICATE_LINES = BAD_LINE_SAMPLES  # as many as the read report names of the lines Prepare refused


class ChangeKind(StrEnum):
    ADDED = "added"  # in this snapshot, not in the previous one: realized
    CHANGED = "changed"  # in both, its line changed: realized (an update)
    UNCHANGED = "unchanged"  # in both, identical: sent only to instances being backfilled or resynced
    REMOVED = "removed"  # in the previous snapshot only: exited


@dataclass(frozen=True, slots=True)
class Change:
    kind: ChangeKind
    row: Row


@dataclass(slots=True)
class DiffCounts:
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    duplicates: int = (
        0  # the same member twice in one snapshot: the first line wins, the others are bad lines
    )
    duplicate_lines: list[int] = field(default_factory=list)  # their line numbers, the first DUPLICATE_LINES

    def add(self, kind: ChangeKind) -> None:
        setattr(self, kind.value, getattr(self, kind.value) + 1)

    @property
    def members(self) -> int:
        return self.added + self.changed + self.unchanged


def diff(new_sorted: Sequence[Row], previous: Iterable[Row], counts: DiffCounts) -> Iterator[Change]:
    """Every member of `new_sorted` (sorted by key) and every previous row missing from it, in key order."""
    prev_iter = iter(previous)
    prev = next(prev_iter, None)
    last_key: str | None = None
    for row in new_sorted:
        if row.key == last_key:
            counts.duplicates += 1
            if row.number and len(counts.duplicate_lines) < DUPLICATE_LINES:
                counts.duplicate_lines.append(row.number)
            continue
        last_key = row.key
        while prev is not None and prev.key < row.key:
            counts.add(ChangeKind.REMOVED)
            yield Change(ChangeKind.REMOVED, prev)
            prev = next(prev_iter, None)
        if prev is not None and prev.key == row.key:
            kind = ChangeKind.UNCHANGED if prev.digest == row.digest else ChangeKind.CHANGED
            prev = next(prev_iter, None)
        else:
            kind = ChangeKind.ADDED
        counts.add(kind)
        yield Change(kind, row)
    while prev is not None:
        counts.add(ChangeKind.REMOVED)
        yield Change(ChangeKind.REMOVED, prev)
        prev = next(prev_iter, None)


def unique(rows: Sequence[Row]) -> Iterator[Row]:
    """The sorted rows without repeated keys (what becomes the next previous membership)."""
    last: str | None = None
    for row in rows:
        if row.key != last:
            last = row.key
            yield row


UNSETTLED = "unsettled"  # the digest of a member whose state at the vendors is not known


def unsettle(previous: Iterable[Row], sent: Iterable[Row]) -> Iterator[Row]:
    """`previous` (sorted), with every member a run that was not applied may have changed at the vendors
    marked unknown: those it had and `previous` has not (it added them), those `previous` has and it had
    not (it removed them), those with another line (it changed them). `sent`: that run's rows, sorted,
    unique. Diffed against this, a marked member this snapshot has is sent again (`changed`), and one it
    has not is removed again: what the vendors hold ends as this snapshot says, whatever the run sent."""
    prev_iter, sent_iter = iter(previous), iter(sent)
    prev, other = next(prev_iter, None), next(sent_iter, None)
    while prev is not None or other is not None:
        if prev is not None and (other is None or prev.key < other.key):
            yield Row(prev.key, UNSETTLED, prev.line)
            prev = next(prev_iter, None)
        elif other is not None and (prev is None or other.key < prev.key):
            yield Row(other.key, UNSETTLED, other.line)
            other = next(sent_iter, None)
        elif prev is not None and other is not None:  # the same member
            yield prev if prev.digest == other.digest else Row(prev.key, UNSETTLED, prev.line)
            prev, other = next(prev_iter, None), next(sent_iter, None)


def mark(previous: Iterable[Row], unknown: Iterable[Row]) -> Iterator[Row]:
    """`previous` (sorted) with the members of `unknown` (sorted, unique: the audience's folded set,
    snapshots/recheck.py) marked unknown; a member only in `unknown` (a run not applied added it) comes
    with its line, so its exit can name it. Both streamed: memory does not grow with either."""
    prev_iter, unknown_iter = iter(previous), iter(unknown)
    prev, other = next(prev_iter, None), next(unknown_iter, None)
    while prev is not None or other is not None:
        if prev is not None and (other is None or prev.key < other.key):
            yield prev
            prev = next(prev_iter, None)
        elif other is not None and (prev is None or other.key < prev.key):
            yield Row(other.key, UNSETTLED, other.line)
            other = next(unknown_iter, None)
        elif prev is not None and other is not None:  # the same member
            yield Row(prev.key, UNSETTLED, prev.line)
            prev, other = next(prev_iter, None), next(unknown_iter, None)

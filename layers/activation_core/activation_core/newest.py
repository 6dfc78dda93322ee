"""The newest change per key in a batch: one call per person, account or list entry, the newest data.

A batch often holds several changes to one vendor record (a profile updated twice, an account that
joined and left). Sending each would race at the vendor (an upsert that creates duplicates) or apply
them out of order; a destination collapses them by its vendor's key and sends the newest, and the
others are `superseded` (skipped, with a reason: nothing lost, nothing to replay).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from activation_core.outcomes import Outcome

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

SUPERSEDED = "superseded"


def occurred_at(entry: Any) -> Any:
    """The default order: when the change happened upstream (a `WorkItem`'s `record.occurred_at`)."""
    return entry.record.occurred_at


@dataclass(frozen=True, slots=True)
class Newest(Generic[K, T]):
    """The newest entry of each key (keys in order of first appearance), and every other entry."""

    by_key: dict[K, T] = field(default_factory=dict)
    superseded: list[T] = field(default_factory=list)  # in batch order


def newest_per_key(
    entries: Sequence[T], key: Callable[[T], K], *, at: Callable[[T], Any] = occurred_at
) -> Newest[K, T]:
    """The entry with the greatest `at` for each `key`; of equal `at`, the later in the batch (the queue's
    order is the best evidence left of which came last)."""
    newest: dict[K, T] = {}
    for entry in entries:
        entry_key = key(entry)
        current = newest.get(entry_key)
        if current is None or at(entry) >= at(current):
            newest[entry_key] = entry
    kept = {id(entry) for entry in newest.values()}
    return Newest(newest, [entry for entry in entries if id(entry) not in kept])


def superseded(detail: str = "a newer change in the batch") -> Outcome:
    """The outcome of a change that a newer one in the batch replaces (skipped: the newer one is sent)."""
    return Outcome.skipped(SUPERSEDED, detail)

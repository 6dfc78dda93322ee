"""Vendor calls of many records: chunks within the vendor's limit, and a refused chunk split in halves
to isolate the records it is about.

Bulk APIs refuse a whole call for one bad record (a 400 that names none), or for its size (413, 414).
Splitting such a call in halves, and each refused half again, finds the offending records in about
2 log2(n) extra calls for one bad record in n, and delivers every other one. Only the errors the
destination names are split (`split_on`): a 5xx or a throttle for the whole call is never split, it
would multiply calls during an outage. `max_extra_calls` bounds the splitting of one chunk; what is
still refused then fails as a whole.

    for part in send_in_chunks(domains, 100, lambda chunk: client.add(list_id, chunk),
                               split_on=lambda e: e.reason in ("http_400", "http_422")):
        if isinstance(part, Failed): ... Outcome.from_error(part.error) for each of part.entries
        else: ... part.result for each of part.entries
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from activation_core.errors import ActivationError

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Answered(Generic[T, R]):
    """A call the vendor answered: its entries and what `send` returned for them."""

    entries: Sequence[T]
    result: R


@dataclass(frozen=True, slots=True)
class Failed(Generic[T]):
    """Entries whose call failed (not split, or split as far as allowed) and the error for all of them."""

    entries: Sequence[T]
    error: ActivationError


Sent = Answered[T, R] | Failed[T]


def never(error: ActivationError) -> bool:
    """Split nothing (the default): a refused chunk fails as a whole."""
    return False


def chunked(entries: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """`entries` in order, `size` at a time (the last chunk may be shorter)."""
    if size < 1:
        raise ValueError("a chunk holds at least one entry")
    for start in range(0, len(entries), size):
        yield entries[start : start + size]


def packed(entries: Sequence[T], sizes: Sequence[int], *, max_count: int, max_bytes: int) -> list[list[T]]:
    """`entries` in order, in calls within both of an AWS batch API's limits (entries per call, bytes per
    call; `sizes[i]` is entry i's size as that API counts it). An entry too large to share a call gets
    one of its own: the API's per-entry limit then decides."""
    calls: list[list[T]] = []
    current: list[T] = []
    total = 0
    for entry, size in zip(entries, sizes, strict=True):
        if current and (len(current) >= max_count or total + size > max_bytes):
            calls.append(current)
            current, total = [], 0
        current.append(entry)
        total += size
    if current:
        calls.append(current)
    return calls


def isolate(
    chunk: Sequence[T],
    send: Callable[[Sequence[T]], R],
    *,
    split_on: Callable[[ActivationError], bool] = never,
    max_extra_calls: int | None = None,
    raise_on: tuple[type[ActivationError], ...] = (),
) -> list[Sent[T, R]]:
    """One `send(chunk)`; when it raises an ActivationError that `split_on` accepts, each half is sent
    on its own, depth first, until the refused entries stand alone or `max_extra_calls` is spent.

    Errors of the `raise_on` types end the whole chunk at once (e.g. the list being written to is gone):
    they propagate, and nothing of this chunk is reported. Any other exception propagates too.
    """
    results: list[Sent[T, R]] = []
    remaining = max_extra_calls
    pending: list[Sequence[T]] = [chunk]
    while pending:
        part = pending.pop()
        try:
            result = send(part)
        except raise_on:
            raise
        except ActivationError as exc:
            if len(part) > 1 and split_on(exc) and (remaining is None or remaining >= 2):
                if remaining is not None:
                    remaining -= 2
                middle = len(part) // 2
                pending += [part[middle:], part[:middle]]  # the first half is sent first
                continue
            results.append(Failed(part, exc))
            continue
        results.append(Answered(part, result))
    return results


def send_in_chunks(
    entries: Sequence[T],
    size: int,
    send: Callable[[Sequence[T]], R],
    *,
    split_on: Callable[[ActivationError], bool] = never,
    max_extra_calls: int | None = None,
    raise_on: tuple[type[ActivationError], ...] = (),
) -> list[Sent[T, R]]:
    """Every entry sent in chunks of `size`, in order, each chunk through `isolate` (its own
    `max_extra_calls`). An error of a `raise_on` type propagates and stops the chunks after it."""
    return [
        sent
        for chunk in chunked(entries, size)
        for sent in isolate(
            chunk, send, split_on=split_on, max_extra_calls=max_extra_calls, raise_on=raise_on
        )
    ]

"""Chunked vendor calls: every entry ends in exactly one answered or failed part; a refused chunk is
split in halves (only on the errors named) to isolate the bad record, within a bound of extra calls."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from activation_core.chunking import Answered, Failed, Sent, chunked, isolate, send_in_chunks
from activation_core.errors import ActivationError, PermanentError, RetryableError


def refused_400(error: ActivationError) -> bool:
    return error.reason == "http_400"


class Vendor:
    """A bulk endpoint that refuses a whole call (400) when it holds a bad entry, and records calls."""

    def __init__(self, bad: set[int] | None = None, error: ActivationError | None = None) -> None:
        self.bad = bad or set()
        self.error = error
        self.calls: list[list[int]] = []

    def __call__(self, chunk: Sequence[int]) -> str:
        self.calls.append(list(chunk))
        if self.error is not None:
            raise self.error
        if self.bad & set(chunk):
            raise PermanentError("http_400", "one of these is invalid")
        return f"accepted {len(chunk)}"


def entries_of(parts: Sequence[Sent[int, str]]) -> list[int]:
    return sorted(e for part in parts for e in part.entries)


def failed(parts: Sequence[Sent[int, str]]) -> list[int]:
    return sorted(e for part in parts if isinstance(part, Failed) for e in part.entries)


def test_chunks_keep_order_and_respect_the_size() -> None:
    assert [list(c) for c in chunked(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunked([], 3)) == []
    with pytest.raises(ValueError):
        list(chunked([1], 0))


def test_a_chunk_the_vendor_accepts_is_one_call() -> None:
    vendor = Vendor()

    parts = send_in_chunks(list(range(250)), 100, vendor)

    assert [len(call) for call in vendor.calls] == [100, 100, 50]
    assert all(isinstance(p, Answered) and p.result == f"accepted {len(p.entries)}" for p in parts)
    assert entries_of(parts) == list(range(250))


def test_one_bad_record_is_isolated_in_about_2_log2_n_extra_calls_and_the_rest_delivered() -> None:
    vendor = Vendor(bad={37})

    parts = isolate(list(range(100)), vendor, split_on=refused_400)

    assert failed(parts) == [37]
    assert entries_of(parts) == list(range(100))  # nothing lost, nothing twice
    assert len(vendor.calls) - 1 <= 2 * math.ceil(math.log2(100))
    (bad,) = [p for p in parts if isinstance(p, Failed)]
    assert bad.error.reason == "http_400"


def test_halves_are_sent_depth_first_the_first_half_first() -> None:
    vendor = Vendor(bad={0})

    isolate([0, 1, 2, 3], vendor, split_on=refused_400)

    assert vendor.calls == [[0, 1, 2, 3], [0, 1], [0], [1], [2, 3]]


def test_an_error_not_named_for_splitting_fails_the_whole_chunk_in_one_call() -> None:
    vendor = Vendor(error=RetryableError("http_503", "unavailable"))

    parts = send_in_chunks(list(range(10)), 5, vendor, split_on=refused_400)

    assert len(vendor.calls) == 2  # a 5xx is not split: it would multiply calls during an outage
    assert failed(parts) == list(range(10))


def test_without_split_on_nothing_is_split() -> None:
    vendor = Vendor(bad={3})

    parts = isolate(list(range(8)), vendor)

    assert len(vendor.calls) == 1 and failed(parts) == list(range(8))


def test_max_extra_calls_bounds_the_search_and_fails_what_remains() -> None:
    vendor = Vendor(bad={1, 6})

    parts = isolate(list(range(8)), vendor, split_on=refused_400, max_extra_calls=2)

    assert len(vendor.calls) == 3  # the chunk, then its two halves; no budget left to split them
    assert failed(parts) == list(range(8))
    assert entries_of(parts) == list(range(8))


def test_each_chunk_has_its_own_budget() -> None:
    vendor = Vendor(bad={0, 4})

    parts = send_in_chunks(list(range(8)), 4, vendor, split_on=refused_400, max_extra_calls=4)

    assert failed(parts) == [0, 4]


def test_an_error_of_a_raise_on_type_stops_the_chunk() -> None:
    class ListGone(RetryableError):
        pass

    vendor = Vendor(error=ListGone("list_not_found", "deleted"))

    with pytest.raises(ListGone):
        send_in_chunks(list(range(10)), 5, vendor, split_on=refused_400, raise_on=(ListGone,))
    assert len(vendor.calls) == 1

"""Membership kept compactly in S3: members hash-partitioned by the top bits of their key.

A partition is a gzip text object of sorted rows `key<TAB>digest<TAB>canonical member JSON` (a run's
new partitions, unsorted, also hold the line number before the JSON). Because a
partition holds one contiguous range of the key space, partitions in order are one sorted sequence:
a snapshot split into 2^b partitions can be diffed against a previous one split into 2^c (any b, c)
by streaming the overlapping ranges. A partition holds about `target` members, so every task's memory
is bounded by `target`, not by the snapshot's size.
"""

from __future__ import annotations

import gzip
import io
import math
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from snapshots.members import Member
from snapshots.store import NotFound, ObjectStore

DEFAULT_TARGET = 50_000  # members per partition: ~25 MB of sorted rows in a task's memory at 500 B/member
MAX_BITS = 12  # 4,096 partitions: 200 million members at the default target


def bits_for(member_count: int, target: int = DEFAULT_TARGET) -> int:
    parts = max(1, math.ceil(member_count / max(1, target)))
    return min(MAX_BITS, max(0, math.ceil(math.log2(parts))))


def partition_of(key: str, bits: int) -> int:
    return int(key[:8], 16) >> (32 - bits) if bits else 0


def partition_name(index: int) -> str:
    return f"part-{index:04d}.tsv.gz"


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    digest: str
    line: str
    number: int = 0  # the line number in the members file, in a run's new partitions only

    @classmethod
    def parse(cls, raw: str) -> Row:
        # A member's line is canonical JSON: no raw tab in it (JSON escapes control characters).
        parts = raw.rstrip("\n").split("\t", 3)
        if len(parts) == 4:
            return cls(parts[0], parts[1], parts[3], int(parts[2]))
        key, digest, line = parts
        return cls(key, digest, line)

    @classmethod
    def of(cls, member: Member) -> Row:
        return cls(member.key, member.digest, member.line, member.number)

    def text(self) -> str:
        """As a membership keeps it (`state/`): the line number means nothing to the next snapshot."""
        return f"{self.key}\t{self.digest}\t{self.line}\n"

    def numbered_text(self) -> str:
        """As a run's new partitions keep it: duplicates are reported by line number."""
        return f"{self.key}\t{self.digest}\t{self.number}\t{self.line}\n"


class PartitionWriter:
    """Spreads members over 2^bits local gzip files (unsorted), then uploads them."""

    def __init__(self, bits: int, workdir: Path | None = None) -> None:
        self.bits = bits
        self._dir = tempfile.TemporaryDirectory(dir=workdir)
        self._files: dict[int, IO[str]] = {}
        self.counts: dict[int, int] = {}

    def _file(self, index: int) -> IO[str]:
        handle = self._files.get(index)
        if handle is None:
            # Held open across add() calls, closed in upload()/close(): no `with` can span that.
            path = Path(self._dir.name) / partition_name(index)
            handle = gzip.open(path, "wt", compresslevel=1, encoding="utf-8")  # noqa: SIM115
            self._files[index] = handle
            self.counts[index] = 0
        return handle

    def add(self, member: Member) -> None:
        index = partition_of(member.key, self.bits)
        self._file(index).write(Row.of(member).numbered_text())
        self.counts[index] += 1

    def upload(self, store: ObjectStore, prefix: str) -> list[int]:
        """Every partition (empty ones too, so a diff always finds its file); returns their indexes."""
        indexes = list(range(1 << self.bits))
        for index in indexes:
            self._file(index).close()
            store.upload(f"{prefix}{partition_name(index)}", Path(self._dir.name) / partition_name(index))
        return indexes

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._dir.cleanup()


def read_rows(store: ObjectStore, key: str) -> Iterator[Row]:
    with store.open(key) as raw, gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
        for line in io.TextIOWrapper(unzipped, encoding="utf-8"):
            if line.strip():
                yield Row.parse(line)


def load_sorted(store: ObjectStore, key: str) -> list[Row]:
    """One new partition, sorted by key (bounded by the partition target)."""
    rows = list(read_rows(store, key))
    rows.sort(key=lambda r: (r.key, r.number))  # a member's first line first
    return rows


def previous_rows(
    store: ObjectStore, prefix: str | None, prev_bits: int, index: int, bits: int
) -> Iterator[Row]:
    """The previous membership's rows in the key range of new partition `index` (of 2^bits), sorted."""
    if prefix is None:
        return
    if prev_bits <= bits:
        sources = [index >> (bits - prev_bits)]
    else:
        shift = prev_bits - bits
        sources = list(range(index << shift, (index + 1) << shift))
    for source in sources:
        try:
            for row in read_rows(store, f"{prefix}{partition_name(source)}"):
                if partition_of(row.key, bits) == index:
                    yield row
        except NotFound:
            continue


def write_sorted(store: ObjectStore, key: str, rows: Iterable[Row]) -> None:
    with tempfile.NamedTemporaryFile(suffix=".gz") as tmp:
        with gzip.open(tmp.name, "wt", compresslevel=1, encoding="utf-8") as out:
            for row in rows:
                out.write(row.text())
        store.upload(key, Path(tmp.name))

"""The runs of an audience that were not applied, folded into ONE set of members to re-check.

A run lists itself on the audience's pointer before it sends anything (it may change members at the
vendors until it is applied). The next run's Prepare folds every listed run but itself into the
audience's set: the members that run may have changed against the applied membership (it had them and
the applied one not, or the reverse, or another line), added to the set folded before. The diff tasks
read that one set (`diff.mark`), whatever the number of runs that failed in a row: a diff task's memory,
the pointer item and the plan do not grow with them.

Cost: one streaming pass over the applied membership, the set and the folded run's partitions (one of
the run's partitions in memory at a time, sorted: bounded by the partition target), once per failed run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence

from snapshots.diff import UNSETTLED, unique, unsettle
from snapshots.partitions import Row, partition_name, previous_rows, write_sorted
from snapshots.plan import Recheck, Unsettled
from snapshots.store import ObjectStore

# Left to Prepare after the fold (its plan, the pointer item: a few calls of ms each), with a wide margin.
FOLD_RESERVE_SECONDS = 30.0


def union(first: Iterable[Row], second: Iterable[Row]) -> Iterator[Row]:
    """Two sorted, unique row streams as one (a key in both: the first stream's row)."""
    a_iter, b_iter = iter(first), iter(second)
    a, b = next(a_iter, None), next(b_iter, None)
    while a is not None or b is not None:
        if a is not None and (b is None or a.key <= b.key):
            if b is not None and a.key == b.key:
                b = next(b_iter, None)
            yield a
            a = next(a_iter, None)
        elif b is not None:
            yield b
            b = next(b_iter, None)


def touched(applied: Iterable[Row], sent: Iterable[Row]) -> Iterator[Row]:
    """The members a run with rows `sent` (sorted, unique) may have changed against `applied` (sorted)."""
    return (row for row in unsettle(applied, sent) if row.digest == UNSETTLED)


def available(store: ObjectStore, recheck: Recheck | None, runs: Sequence[Unsettled]) -> bool:
    """Whether the set and every run's partitions are still there (runs/ ends with
    SnapshotRunRetentionDays): if not, what was sent is unknown and the next run is a resync."""
    prefixes = [u.prefix for u in runs] + ([recheck.prefix] if recheck else [])
    return all(store.exists(f"{prefix}{partition_name(0)}") for prefix in prefixes)


def resync_owed(recheck: Recheck | None, runs: Sequence[Unsettled]) -> bool:
    """Whether one of `runs`, or a run folded into `recheck`, was a resync and was not applied: what the
    forgotten run sent is still unknown, so the next run is a resync too (however many fail in a row)."""
    return any(u.resync for u in runs) or (recheck is not None and recheck.resync)


def fold(
    store: ObjectStore,
    applied: tuple[str, int] | None,
    recheck: Recheck | None,
    runs: Sequence[Unsettled],
    prefix: str,
    *,
    time_left: Callable[[], float] | None = None,
) -> tuple[Recheck | None, tuple[str, ...]]:
    """`recheck` with each of `runs` folded in, written under `prefix` (one sub-prefix per run folded),
    and the runs dropped for want of time (their keys); `applied`: the applied membership's (prefix, bits), None when there is
    none. A set or a run whose partitions ended is left out (the caller makes the run a resync).

    `time_left`: seconds left to the invocation (None: unbounded). Before each partition it writes, the
    fold checks that the slowest partition so far still fits with FOLD_RESERVE_SECONDS to spare; if not,
    it stops: the runs folded whole are kept, the others dropped (the caller makes the run a resync). A Prepare killed by its timeout would never list itself, and every later run would repeat
    the same fold."""
    if recheck is not None and not available(store, recheck, ()):
        recheck = None
    slowest = 0.0
    for position, run in enumerate(runs):
        if not available(store, None, (run,)):
            continue
        bits = max(run.bits, recheck.bits if recheck else 0, applied[1] if applied else 0)
        out = f"{prefix}{run.run_key}/"
        for index in range(1 << bits):
            if time_left is not None and time_left() < FOLD_RESERVE_SECONDS + slowest:
                return recheck, tuple(
                    r.run_key for r in runs[position:]
                )  # what it wrote of this run under `out` ends with runs/
            started = time.monotonic()
            sent = sorted(
                previous_rows(store, run.prefix, run.bits, index, bits), key=lambda r: (r.key, r.number)
            )
            applied_rows = previous_rows(store, applied[0], applied[1], index, bits) if applied else iter(())
            before = previous_rows(store, recheck.prefix, recheck.bits, index, bits) if recheck else iter(())
            write_sorted(
                store, f"{out}{partition_name(index)}", union(before, touched(applied_rows, unique(sent)))
            )
            slowest = max(slowest, time.monotonic() - started)
        recheck = Recheck(
            prefix=out,
            bits=bits,
            runs=(recheck.runs if recheck else 0) + 1,
            last_run=run.run_key
            if not recheck or run.snapshot_at >= recheck.snapshot_at
            else recheck.last_run,
            snapshot_at=max(run.snapshot_at, recheck.snapshot_at) if recheck else run.snapshot_at,
            instances=tuple(sorted({*run.instances, *(recheck.instances if recheck else ())})),
            resync=run.resync or (recheck.resync if recheck else False),
        )
    return recheck, ()

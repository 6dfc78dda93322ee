"""The three steps of a snapshot run, independent of Lambda and Step Functions (tasks/ wraps them).

1. `prepare`: check the manifest, the audience, the order; stream the members file once (checksum,
   count, bad lines) into hash partitions under the run's prefix. A refused snapshot changes nothing:
   it only ever wrote under its own run prefix.
2. `diff_partition` (one per partition, in parallel): merge-diff against the previous membership,
   publish the changes, write the partition of the new membership; a done marker makes it idempotent.
3. `commit`: sum the partitions, move the audience's pointer (conditionally: never backwards),
   record the run, drop the superseded membership.

Every step can be run again with the same input and gives the same result: that is how an
interrupted run resumes without losing or duplicating a member.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from activation_core.models.config import DestinationsConfig
from activation_core.models.snapshots import MANIFEST_SUFFIX, SnapshotManifest
from activation_core.observability import logger
from activation_core.settings import FunctionSettings
from snapshots import erasure as snapshot_erasure
from snapshots.diff import DUPLICATE_LINES, DiffCounts, diff, mark, unique
from snapshots.events import entries
from snapshots.members import ReadReport, read_members
from snapshots.partitions import (
    DEFAULT_TARGET,
    PartitionWriter,
    Row,
    bits_for,
    load_sorted,
    partition_name,
    previous_rows,
    write_sorted,
)
from snapshots.plan import BackfillRequest, Recheck, RunPlan, Targets, Unsettled, run_prefix, state_prefix
from snapshots.recheck import available, fold, resync_owed
from snapshots.state import Pending, Pointer, SnapshotState
from snapshots.store import NotFound, ObjectStore

PLAN = "plan.json"  # under the run prefix: Prepare's plan, kept for a resumed Commit
PUBLISH_CHUNK = 500  # entries held before a PutEvents round: memory stays flat in the partition size
Publish = Callable[[Sequence[dict[str, Any]]], int]


@dataclass(frozen=True, slots=True)
class Refusal:
    """A snapshot that is not applied, and why (the run record and the failed execution say it)."""

    reason: str
    detail: str
    audience_id: str | None = None
    snapshot_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": "REFUSED",
            "reason": self.reason,
            "detail": self.detail,
            "audienceId": self.audience_id,
            "snapshotId": self.snapshot_id,
        }


def _validation(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
        for e in exc.errors(include_input=False, include_url=False)[:3]
    )


def members_key_of(manifest_key: str, manifest: SnapshotManifest) -> str:
    if manifest.members_key:
        return manifest.members_key
    return manifest_key.removesuffix(MANIFEST_SUFFIX)


def targets_for(
    config: DestinationsConfig,
    audience_id: str,
    previous: Pointer | None,
    full: bool,
    sent_to: Iterable[str] = (),
) -> Targets:
    """`sent_to`: where runs not applied sent changes (their exits go there too, a first snapshot's too).
    Only the applied snapshot's instances hold it: one that only a failed run sent to (a backfill cut
    short) gets every member again, or it would keep the few partitions that run reached."""
    activating = [d for d in config.destinations if d.enabled and d.audience(audience_id) is not None]
    current = tuple(sorted(d.id for d in activating))
    applied = set(previous.instances) if previous else set()
    return Targets(
        current=current,
        full=current if full else tuple(i for i in current if i not in applied),
        removal=tuple(i for i in current if i in applied | set(sent_to)),
        types={d.id: d.type for d in activating},
    )


def _other_entity(
    config: DestinationsConfig, audience_id: str, entity: str, entities: Mapping[str, str]
) -> Refusal | None:
    """Changes of one entity reach only destinations of that entity (the bus rules match the detail
    type): an instance activating the audience that takes the other would never receive them."""
    other = sorted(
        d.id
        for d in config.destinations
        if d.enabled and d.audience(audience_id) is not None and entities.get(d.type, entity) != entity
    )
    if not other:
        return None
    return Refusal(
        "entity_mismatch",
        f"the snapshot's members are of entity '{entity}'; instance(s) {', '.join(other)} activating "
        f"audience '{audience_id}' take the other entity",
    )


def _read_manifest(store: ObjectStore, manifest_key: str) -> SnapshotManifest | Refusal:
    try:
        return SnapshotManifest.model_validate(store.get_json(manifest_key))
    except NotFound:
        return Refusal("manifest_not_found", f"no object '{manifest_key}'")
    except ValidationError as exc:
        return Refusal("invalid_manifest", _validation(exc))
    except ValueError:
        return Refusal("invalid_manifest", "the manifest is not JSON")


# The destinations reject a change stamped further ahead than this (FunctionSettings, CLOCK_SKEW_SECONDS).
CLOCK_SKEW = timedelta(seconds=FunctionSettings.model_fields["clock_skew_seconds"].default)


def _check_order(
    manifest: SnapshotManifest, previous: Pointer | None, now: datetime | None = None
) -> Refusal | None:
    if manifest.snapshot_at > (now or datetime.now(UTC)) + CLOCK_SKEW:
        # Every change would be rejected at the destinations, and the pointer, once there, would refuse
        # every real snapshot of the audience until that date.
        return Refusal(
            "snapshot_at_in_the_future",
            f"snapshotAt {manifest.snapshot_at.isoformat()} is more than "
            f"{CLOCK_SKEW.total_seconds():g} s ahead of now",
        )
    if previous is None:
        return None
    if previous.snapshot_id == manifest.snapshot_id:
        return Refusal("already_applied", f"snapshot '{manifest.snapshot_id}' is the one applied")
    if previous.snapshot_at >= manifest.snapshot_at:
        return Refusal(
            "older_than_applied",
            f"snapshotAt {manifest.snapshot_at.isoformat()} is not later than the applied snapshot "
            f"'{previous.snapshot_id}' ({previous.snapshot_at.isoformat()})",
        )
    return None


def _partition(
    store: ObjectStore, members_key: str, manifest: SnapshotManifest, writer: PartitionWriter
) -> ReadReport | Refusal:
    """One pass over the members file into local partitions; the file's checksum and count decide."""
    report = ReadReport()
    try:
        with store.open(members_key) as stream:
            for member in read_members(stream, manifest, members_key.endswith(".gz"), report):
                writer.add(member)
    except NotFound:
        return Refusal("members_not_found", f"no object '{members_key}'")
    if report.sha256 != manifest.checksum:
        return Refusal(
            "checksum_mismatch",
            f"the members file's SHA-256 is {report.sha256}, the manifest says {manifest.checksum}",
        )
    if report.lines != manifest.member_count:
        return Refusal(
            "count_mismatch",
            f"the members file has {report.lines} lines, the manifest says {manifest.member_count}",
        )
    return report


def prepare(
    store: ObjectStore,
    bucket: str,
    manifest_key: str,
    config: DestinationsConfig,
    state: SnapshotState,
    *,
    target: int = DEFAULT_TARGET,
    workdir: Path | None = None,
    entities: Mapping[str, str] | None = None,
    owner: str | None = None,
    time_left: Callable[[], float] | None = None,
) -> RunPlan | Refusal:
    """`entities`: destination type -> the entity it takes (`profile`, `account`; the manifest's).
    `owner`: who holds the audience's lease for the run: the execution (the Prepare task passes
    `$$.Execution.Id`: a second execution of the same manifest waits); None, the run itself (tests).
    `time_left`: seconds left to the invocation (the task's Lambda context); out of time for folding
    the failed runs, the run is a resync instead (`recheck.fold`)."""
    manifest = _read_manifest(store, manifest_key)
    if isinstance(manifest, Refusal):
        return manifest
    refused = _other_entity(config, manifest.audience_id, manifest.entity, entities or {})
    if refused is not None:
        return replace(refused, audience_id=manifest.audience_id, snapshot_id=manifest.snapshot_id)
    if _is_applied(manifest, state):  # the applied snapshot again: refused without waiting for the audience
        return Refusal(
            "already_applied",
            f"snapshot '{manifest.snapshot_id}' is the one applied",
            audience_id=manifest.audience_id,
            snapshot_id=manifest.snapshot_id,
        )
    # One run of an audience at a time, from here to its Commit (AudienceBusy: the state machine waits).
    result = _under_lease(
        state,
        manifest.audience_id,
        owner or manifest.snapshot_id,
        lambda: _prepare(store, bucket, manifest_key, manifest, config, state, target, workdir, time_left),
    )
    if isinstance(result, Refusal):
        return replace(result, audience_id=manifest.audience_id, snapshot_id=manifest.snapshot_id)
    return result


def _under_lease(
    state: SnapshotState, audience_id: str, owner: str, work: Callable[[], RunPlan | Refusal]
) -> RunPlan | Refusal:
    """`work` with the audience's lease taken by `owner`; a refusal or an exception gives it back, only
    if this call took it (a retried Prepare of an execution that holds it leaves it held)."""
    taken = state.hold(audience_id, owner)
    try:
        result = work()
    except BaseException:
        if taken:  # a failed Prepare holds nobody back for the lease's hour (a retry takes it again)
            state.release(audience_id, owner)
        raise
    if isinstance(result, Refusal) and taken:
        state.release(audience_id, owner)
    return result


def _is_applied(manifest: SnapshotManifest, state: SnapshotState) -> bool:
    """The pointer names this snapshot and its run is recorded APPLIED (a commit that died between the
    two is finished by running again: not this case)."""
    previous = state.pointer(manifest.audience_id)
    if previous is None or previous.snapshot_id != manifest.snapshot_id:
        return False
    record = state.run(manifest.audience_id, manifest.snapshot_id)
    return record is not None and record.get("status") == "APPLIED"


def _prepare(  # noqa: PLR0917 - the public prepare()'s arguments, passed on
    store: ObjectStore,
    bucket: str,
    manifest_key: str,
    manifest: SnapshotManifest,
    config: DestinationsConfig,
    state: SnapshotState,
    target: int,
    workdir: Path | None,
    time_left: Callable[[], float] | None,
) -> RunPlan | Refusal:
    previous, pending = state.audience(manifest.audience_id)
    if previous is not None and previous.snapshot_id == manifest.snapshot_id:
        unfinished = _unfinished_commit(store, state, manifest)
        if unfinished is not None:
            return _same_file(manifest, unfinished) or unfinished
    if not targets_for(config, manifest.audience_id, None, manifest.full).current:
        return Refusal(
            "unknown_audience",
            f"audience '{manifest.audience_id}' is activated on no enabled destination instance",
        )
    others = tuple(u for u in pending.open if u.run_key != manifest.snapshot_id)  # this run: resumed
    prefix = run_prefix(manifest.audience_id, manifest.snapshot_id)
    earlier = _stored_plan(store, prefix)
    refused = (
        _check_order(manifest, previous)
        or _after_unsettled(manifest, pending.recheck, others)
        or _same_file(manifest, earlier)
    )
    if refused is not None:
        return refused
    bits = bits_for(manifest.member_count, target)
    writer = PartitionWriter(bits, workdir)
    try:
        report = _partition(store, members_key_of(manifest_key, manifest), manifest, writer)
        if isinstance(report, Refusal):
            return report  # nothing was written anywhere
        indexes = writer.upload(store, f"{prefix}new/")
    finally:
        writer.close()
    store.put_json(f"{prefix}partitions.json", [{"partition": i} for i in indexes])
    store.put_json(f"{prefix}read-report.json", report.as_dict())
    # What runs not applied sent and can no longer be known (their partitions ended): a resync; and
    # again while the resync is not applied (this run's own listing counts: a resumed resync stays one).
    forgotten = not available(store, pending.recheck, others) or resync_owed(pending.recheck, pending.open)
    # Every run not applied but this one, folded into the audience's one set (memory, item, plan: flat);
    # out of time for it, the runs not folded are dropped and this run is a resync.
    fold_started = time.time()  # an erasure during the fold: its marker is applied to the new copy below
    recheck, dropped = (
        fold(store, (previous.prefix, previous.bits) if previous else None, pending.recheck, others,
             f"{prefix}unsettled/", time_left=time_left)
        if others
        else (pending.recheck, ())
    )  # fmt: skip
    if dropped:  # what they added and no snapshot has since may stay extra at the vendor (docs/snapshots.md)
        logger.warning(
            "snapshot fold out of time: runs dropped, this run is a resync",
            extra={"audience": manifest.audience_id, "snapshot": manifest.snapshot_id,
                   "droppedRuns": list(dropped), "folded": len(others) - len(dropped)},
        )  # fmt: skip
    forgotten = forgotten or bool(dropped)
    plan = RunPlan(
        bucket=bucket,
        audience_id=manifest.audience_id,
        audience_name=manifest.audience_name,
        origin=manifest.origin,
        entity=manifest.entity,
        snapshot_id=manifest.snapshot_id,
        snapshot_at=manifest.snapshot_at,
        bits=bits,
        run_prefix=prefix,
        state_prefix=state_prefix(manifest.audience_id, manifest.snapshot_id),
        previous_snapshot_id=previous.snapshot_id if previous else None,
        previous_prefix=previous.prefix if previous else None,
        previous_bits=previous.bits if previous else 0,
        targets=earlier.targets
        if earlier
        else targets_for(
            config,
            manifest.audience_id,
            previous,
            manifest.full or forgotten,
            sent_to=recheck.instances if recheck else (),
        ),
        members=report.members,
        lines=report.lines,
        bad_lines=report.bad,
        recheck=recheck,
        checksum=manifest.checksum,
        dropped_runs=dropped or (earlier.dropped_runs if earlier else ()),  # a resumed run keeps them
    )
    store.put_json(f"{prefix}{PLAN}", plan.model_dump(mode="json"))  # what a resumed Commit needs
    # Before anything is sent: until this run is applied, the next one re-checks what it may send (also
    # after a first snapshot: what it adds is removed again if it fails).
    this = Unsettled(run_key=plan.run_key, snapshot_at=plan.snapshot_at, prefix=plan.new_prefix,
                     bits=plan.bits, instances=plan.targets.current, resync=forgotten)  # fmt: skip
    state.set_pending(plan.audience_id, previous, Pending(open=(this,), recheck=recheck))
    if recheck is not None and recheck.prefix.startswith(f"{prefix}unsettled/"):  # a copy this run wrote
        # (now, or in an attempt whose Prepare failed after listing it), which an erasure may have missed
        snapshot_erasure.reapply_to_folded(store, state, recheck, fold_started)
    return plan


def _same_file(manifest: SnapshotManifest, earlier: RunPlan | None) -> Refusal | None:
    """A snapshotId names one members file. Another file under the id of a run that got as far as its
    plan would meet that run's done markers (its partitions not diffed again) and leave what that run
    sent unchecked; under a new id, it re-checks that run (docs/snapshots.md, "Runs of one audience")."""
    if earlier is None or not earlier.checksum or earlier.checksum == manifest.checksum:
        return None
    return Refusal(
        "snapshot_id_reused",
        f"snapshot '{manifest.snapshot_id}' was run with another members file ({earlier.checksum[:19]}...): "
        "give this one a new snapshotId",
    )


def _after_unsettled(
    manifest: SnapshotManifest, recheck: Recheck | None, others: Sequence[Unsettled]
) -> Refusal | None:
    """A run not applied sent changes stamped with its snapshot's time; this snapshot's, older, would
    lose to them at the destinations' order guard: refused as older than the applied one is."""
    runs = [(u.run_key, u.snapshot_at) for u in others]
    runs += [(recheck.last_run, recheck.snapshot_at)] if recheck else []
    later = [(key, at) for key, at in runs if at >= manifest.snapshot_at]
    if not later:
        return None
    key, at = later[0]
    return Refusal(
        "older_than_sent",
        f"snapshotAt {manifest.snapshot_at.isoformat()} is not later than snapshot '{key}' "
        f"({at.isoformat()}), whose run sent changes and was not applied: resume that "
        "one or send a newer snapshot",
    )


def _unfinished_commit(
    store: ObjectStore, state: SnapshotState, manifest: SnapshotManifest
) -> RunPlan | None:
    """The plan of a run whose Commit moved the pointer but died before recording the run (and deleting
    the superseded membership): run again, its partitions are done (nothing is sent) and Commit ends
    its work. None when the run is recorded (the same manifest again is `already_applied`)."""
    record = state.run(manifest.audience_id, manifest.snapshot_id)
    if record is not None and record.get("status") == "APPLIED":
        return None
    return _stored_plan(store, run_prefix(manifest.audience_id, manifest.snapshot_id))


def _stored_plan(store: ObjectStore, prefix: str) -> RunPlan | None:
    """The plan an earlier attempt of this run stored, None if there is none (a first attempt, or the
    run's prefix ended with its retention).

    A resumed run keeps its first attempt's targets: partitions diffed then were sent to those, so an
    instance that started activating the audience meanwhile gets the snapshot by a backfill run, whole,
    not from the partitions left."""
    try:
        return RunPlan.model_validate(store.get_json(f"{prefix}{PLAN}"))
    except NotFound:
        return None


def prepare_backfill(
    store: ObjectStore,
    request: BackfillRequest,
    config: DestinationsConfig,
    state: SnapshotState,
    entities: Mapping[str, str] | None = None,
    *,
    owner: str | None = None,
) -> RunPlan | Refusal:
    """A run that sends the audience's applied membership, as it is stored (nothing is read again from
    the members file), to the instances that activate the audience and did not receive that snapshot.
    `owner`: as for `prepare`."""
    return _under_lease(
        state,
        request.audience_id,
        owner or request.run_id,
        lambda: _prepare_backfill(store, request, config, state, entities),
    )


def _prepare_backfill(
    store: ObjectStore,
    request: BackfillRequest,
    config: DestinationsConfig,
    state: SnapshotState,
    entities: Mapping[str, str] | None,
) -> RunPlan | Refusal:
    audience = request.audience_id
    previous = state.pointer(audience)
    if previous is None:
        return Refusal("no_applied_snapshot", f"audience '{audience}' has no applied snapshot to backfill from",
                       audience)  # fmt: skip
    if previous.snapshot_id != request.snapshot_id:
        return Refusal("older_than_applied", f"snapshot '{previous.snapshot_id}' was applied since the "
                       f"backfill of '{request.snapshot_id}' was asked for: it backfills by itself", audience,
                       request.snapshot_id)  # fmt: skip
    applied = state.run(audience, previous.snapshot_id) or {}
    refused = _other_entity(config, audience, str(applied.get("entity") or "profile"), entities or {})
    if refused is not None:
        return replace(refused, audience_id=audience, snapshot_id=previous.snapshot_id)
    targets = targets_for(config, audience, previous, full=False)
    if not targets.current:
        return Refusal("unknown_audience", f"audience '{audience}' is activated on no enabled destination instance",
                       audience, previous.snapshot_id)  # fmt: skip
    if not targets.full:
        return Refusal("nothing_to_backfill", f"every instance activating '{audience}' received snapshot "
                       f"'{previous.snapshot_id}'", audience, previous.snapshot_id)  # fmt: skip
    activated = next(d.audience(audience) for d in config.destinations if d.id == targets.current[0])
    prefix = run_prefix(audience, request.run_id)
    store.put_json(f"{prefix}partitions.json", [{"partition": i} for i in range(1 << previous.bits)])
    return RunPlan(
        bucket=request.bucket,
        audience_id=audience,
        audience_name=str(applied.get("audienceName") or (activated.name if activated else audience)),
        origin=str(applied.get("origin") or (activated.origin if activated else "segmentation")),
        entity=str(applied.get("entity") or "profile"),
        snapshot_id=previous.snapshot_id,
        snapshot_at=previous.snapshot_at,
        bits=previous.bits,
        run_prefix=prefix,
        state_prefix=previous.prefix,
        previous_snapshot_id=previous.snapshot_id,
        previous_prefix=previous.prefix,
        previous_bits=previous.bits,
        targets=targets,
        members=int(applied.get("members", 0)),  # the stored membership holds no duplicate
        lines=int(applied.get("lines", 0)),
        bad_lines=int(applied.get("badLines", 0)),
        backfill=True,
        run_id=request.run_id,
    )


@dataclass(slots=True)
class PartitionResult:
    partition: int
    counts: DiffCounts = field(default_factory=DiffCounts)
    sent: dict[str, int] = field(default_factory=dict)  # events per instance
    published: int = 0
    resumed: bool = False

    def as_dict(self) -> dict[str, Any]:
        c = self.counts
        return {
            "partition": self.partition,
            "added": c.added,
            "changed": c.changed,
            "unchanged": c.unchanged,
            "removed": c.removed,
            "duplicates": c.duplicates,
            "duplicateLines": c.duplicate_lines,
            "sent": self.sent,
            "published": self.published,
        }


def diff_partition(
    store: ObjectStore, plan: RunPlan, index: int, publish: Publish, bus_name: str
) -> dict[str, Any]:
    done_key = f"{plan.run_prefix}done/{index:04d}.json"
    if store.exists(done_key):  # this partition finished in an earlier attempt: publish nothing again
        result: dict[str, Any] = store.get_json(done_key)
        return result | {"resumed": True}
    rows = load_sorted(store, f"{plan.new_prefix}{partition_name(index)}")
    outcome = PartitionResult(index)
    previous: Iterable[Row] = previous_rows(store, plan.previous_prefix, plan.previous_bits, index, plan.bits)
    if plan.recheck is not None:  # what runs not applied may have sent: this snapshot's state goes again
        previous = mark(
            previous, previous_rows(store, plan.recheck.prefix, plan.recheck.bits, index, plan.bits)
        )
    chunk: list[dict[str, Any]] = []
    for item in entries(plan, diff(rows, previous, outcome.counts), bus_name, outcome.sent):
        chunk.append(item)
        if len(chunk) >= PUBLISH_CHUNK:
            outcome.published += publish(chunk)
            chunk = []
    if chunk:
        outcome.published += publish(chunk)
    if not plan.backfill:  # a backfill reads the applied membership: nothing new to keep
        write_sorted(store, f"{plan.state_prefix}{partition_name(index)}", unique(rows))
    record = outcome.as_dict()
    store.put_json(done_key, record)
    return record


def totals(store: ObjectStore, plan: RunPlan) -> dict[str, Any]:
    """The run's counts, summed from the partitions' done markers (missing ones are listed)."""
    sums = dict.fromkeys(("added", "changed", "unchanged", "removed", "duplicates", "published"), 0)
    sent: dict[str, int] = {}
    missing: list[int] = []
    duplicate_lines: list[int] = []
    for index in range(1 << plan.bits):
        try:
            done = store.get_json(f"{plan.run_prefix}done/{index:04d}.json")
        except NotFound:
            missing.append(index)
            continue
        duplicate_lines += done.get("duplicateLines", [])
        for key in sums:
            sums[key] += int(done.get(key, 0))
        for instance, count in done.get("sent", {}).items():
            sent[instance] = sent.get(instance, 0) + int(count)
    return sums | {
        "sent": sent,
        "missingPartitions": missing,
        "duplicateLines": sorted(duplicate_lines)[:DUPLICATE_LINES],
    }


def _other_memberships(store: ObjectStore, plan: RunPlan) -> list[str]:
    """Every membership of the audience under state/ but the one `plan` applied."""
    prefixes = {key.rsplit("/", 1)[0] + "/" for key in store.keys(f"state/{plan.audience_id}/")}
    return sorted(prefixes - {plan.state_prefix})


def commit(
    store: ObjectStore,
    plan: RunPlan,
    state: SnapshotState,
    now: datetime | None = None,
    owner: str | None = None,
) -> dict[str, Any]:
    """`owner`: the lease's, as Prepare took it (None: the run itself)."""
    owner = plan.lease_owner(owner)
    summed = totals(store, plan)
    record: dict[str, Any] = {
        "audienceId": plan.audience_id,
        "audienceName": plan.audience_name,
        "origin": plan.origin,
        "entity": plan.entity,
        "snapshotId": plan.snapshot_id,
        "runId": plan.run_key,
        "backfill": plan.backfill,
        "snapshotAt": plan.snapshot_at.isoformat(),
        "previousSnapshotId": plan.previous_snapshot_id,
        "finishedAt": (now or datetime.now(UTC)).isoformat(),
        "lines": plan.lines,
        "members": plan.members - summed["duplicates"],
        "badLines": plan.bad_lines + summed["duplicates"],
        "targets": plan.targets.model_dump(),
        **plan.run_fields(),
        **{k: v for k, v in summed.items() if k != "missingPartitions"},
    }
    if summed["missingPartitions"]:
        record |= {
            "status": "FAILED",
            "reason": "partitions_not_done",
            "detail": str(summed["missingPartitions"][:20]),
        }
        state.put_run(plan.audience_id, plan.run_key, record)
        state.release(plan.audience_id, owner)
        return record
    state.renew(plan.audience_id, owner)  # LeaseLost: another run has the audience, this one stops
    # Applied, this run settles every run it re-checked (and a backfill, which sends the applied
    # membership, settles none: they stay pending).
    pending = state.audience(plan.audience_id)[1] if plan.backfill else Pending()
    state.advance(
        plan.audience_id,
        Pointer(
            plan.snapshot_id, plan.snapshot_at, plan.bits, plan.state_prefix, plan.targets.current, pending
        ),
    )
    # A snapshot taken before an erasure must not bring the person back (snapshots/erasure.py).
    if erased_again := snapshot_erasure.reapply(store, state, plan):
        record["erasedAgain"] = erased_again
    record["status"] = "APPLIED"
    state.put_run(plan.audience_id, plan.run_key, record)
    if not plan.backfill:
        # The superseded membership and what the runs it settled kept of theirs (a failed run wrote part
        # of its membership): personal data kept no longer. One listing, however many runs failed.
        for stale in _other_memberships(store, plan):
            store.delete_prefix(stale)
        if plan.recheck is not None:  # the folded set it settled: member lines, copied forward by each fold
            store.delete_prefix(plan.recheck.prefix)
    state.release(plan.audience_id, owner)  # the next run of the audience may start
    return record

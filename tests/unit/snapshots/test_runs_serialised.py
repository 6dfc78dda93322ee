"""Runs of one audience never overlap (a lease per audience), and a run that sent changes without being
applied is re-checked by the next one (docs/snapshots.md, "Runs of one audience")."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from activation_core.locks import LeaseLock
from snapshots import runner
from snapshots.diff import UNSETTLED, unsettle
from snapshots.files import write_members
from snapshots.partitions import Row, read_rows
from snapshots.plan import BackfillRequest, RunPlan, Unsettled
from snapshots.state import LEASE_SECONDS, AudienceBusy, LeaseLost, Pending, SnapshotState
from snapshots.store import DirStore, S3Store
from tests.unit.snapshots.conftest import AUDIENCE, SnapshotWriter, config, profile
from tests.unit.snapshots.test_runner import TWO_OF_A_TYPE, Bus, diff_every_partition_and_commit, run


def rows(*pairs: tuple[str, str]) -> list[Row]:
    return [Row(key, digest, f"line-{key}-{digest}") for key, digest in pairs]


def test_unsettle_marks_every_member_a_run_not_applied_may_have_changed() -> None:
    previous = rows(("a", "1"), ("b", "1"), ("c", "1"), ("e", "1"))
    sent = rows(("a", "1"), ("b", "2"), ("d", "1"), ("e", "1"))  # b changed, c removed, d added
    marked = list(unsettle(previous, sent))
    assert [(r.key, r.digest) for r in marked] == [
        ("a", "1"),
        ("b", UNSETTLED),
        ("c", UNSETTLED),
        ("d", UNSETTLED),
        ("e", "1"),
    ]
    assert marked[3].line == "line-d-1"  # an added member's line comes from the run: its exit needs it


def prepared(store: DirStore, state: SnapshotState, key: str) -> RunPlan:
    plan = runner.prepare(store, "bucket", key, TWO_OF_A_TYPE, state, target=64)
    assert isinstance(plan, RunPlan), plan
    return plan


def test_a_second_run_of_the_audience_waits_while_the_first_holds_it(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    run(store, state, put_snapshot("s1", [profile(n) for n in range(10)]), Bus())
    first = prepared(store, state, put_snapshot("s2", [profile(n) for n in range(8)], hours=1))
    with pytest.raises(AudienceBusy, match=f"audience '{AUDIENCE}' is held by run 's2' until "):
        runner.prepare(store, "bucket", put_snapshot("s3", [profile(n) for n in range(10)], hours=2),
                       TWO_OF_A_TYPE, state, target=64)  # fmt: skip
    assert (
        prepared(store, state, put_snapshot("s2", [profile(n) for n in range(8)], hours=1)) == first
    )  # resumed
    diff_every_partition_and_commit(store, state, first, Bus())  # releases the audience
    bus = Bus()
    record = run(store, state, put_snapshot("s3", [profile(n) for n in range(10)], hours=2), bus)
    assert (record["status"], record["previousSnapshotId"]) == ("APPLIED", "s2")
    assert bus.by_status("realized") == {"person8@example.com", "person9@example.com"}  # against s2: back


def test_a_refused_snapshot_and_a_backfill_give_the_audience_back(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    run(store, state, put_snapshot("s1", [profile(n) for n in range(10)]), Bus())
    refused = runner.prepare(
        store, "bucket", put_snapshot("s0", [profile(1)], hours=-1), TWO_OF_A_TYPE, state
    )
    assert isinstance(refused, runner.Refusal) and refused.reason == "older_than_applied"
    request = BackfillRequest(bucket="bucket", audience_id=AUDIENCE, snapshot_id="s1", run_id="s1.backfill-1")
    nothing = runner.prepare_backfill(store, request, TWO_OF_A_TYPE, state)
    assert isinstance(nothing, runner.Refusal) and nothing.reason == "nothing_to_backfill"
    prepared(store, state, put_snapshot("s2", [profile(n) for n in range(10)], hours=1))  # not busy


def test_a_stopped_runs_lease_expires_and_it_may_not_go_on(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    now = [1_000_000.0]
    clocked = SnapshotState(state.table, state.dynamodb, clock=lambda: now[0])
    run(store, clocked, put_snapshot("s1", [profile(n) for n in range(10)]), Bus())
    stopped = prepared(store, clocked, put_snapshot("s2", [profile(n) for n in range(8)], hours=1))
    now[0] += LEASE_SECONDS - 1
    with pytest.raises(AudienceBusy):
        clocked.hold(AUDIENCE, "s3")
    now[0] += 2  # the lease ran out: the audience is free
    clocked.hold(AUDIENCE, "s3")
    with pytest.raises(LeaseLost):
        diff_every_partition_and_commit(store, clocked, stopped, Bus())  # s2 may not apply over s3's run
    assert clocked.pointer(AUDIENCE).snapshot_id == "s1"  # type: ignore[union-attr]


def test_a_run_older_than_one_that_sent_changes_is_refused(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    """Its changes would lose to the failed run's, newer, at the destinations' order guard."""
    run(store, state, put_snapshot("s1", [profile(n) for n in range(10)]), Bus())
    failed = prepared(store, state, put_snapshot("s3", [profile(n) for n in range(8)], hours=3))
    runner.diff_partition(store, failed, 0, Bus(), "bus")
    state.release(AUDIENCE, "s3")  # what RecordFailure does
    refused = runner.prepare(store, "bucket", put_snapshot("s2", [profile(1)], hours=2), TWO_OF_A_TYPE, state)
    assert isinstance(refused, runner.Refusal)
    assert refused.reason == "older_than_sent" and "'s3'" in refused.detail


def test_a_run_after_a_failed_one_whose_partitions_ended_is_a_resync(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    run(store, state, put_snapshot("s1", [profile(n) for n in range(10)]), Bus())
    failed = prepared(store, state, put_snapshot("s2", [profile(n) for n in range(8)], hours=1))
    state.release(AUDIENCE, "s2")
    store.delete_prefix(failed.run_prefix)  # SnapshotRunRetentionDays later
    plan = prepared(store, state, put_snapshot("s3", [profile(n) for n in range(10)], hours=2))
    assert plan.targets.full == plan.targets.current  # every member again: what s2 sent is unknown
    record = diff_every_partition_and_commit(store, state, plan, Bus())
    assert record["sent"] == {"marketo-a": 10, "rf": 10}


def test_a_backfill_keeps_the_runs_still_to_re_check(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    run(store, state, put_snapshot("s1", [profile(n) for n in range(10)]), Bus())
    prepared(store, state, put_snapshot("s2", [profile(n) for n in range(8)], hours=1))
    state.release(AUDIENCE, "s2")  # failed
    more = config(("marketo-a", "marketo", True), ("marketo-b", "marketo", True), ("rf", "rainfocus", True))
    request = BackfillRequest(bucket="bucket", audience_id=AUDIENCE, snapshot_id="s1", run_id="s1.backfill-1")
    backfill = runner.prepare_backfill(store, request, more, state)
    assert isinstance(backfill, RunPlan)
    diff_every_partition_and_commit(store, state, backfill, Bus())
    pointer = state.pointer(AUDIENCE)
    assert pointer is not None and [u.run_key for u in pointer.pending.open] == ["s2"]


def test_another_file_under_the_snapshot_id_of_a_run_that_sent_changes_is_refused(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    """Resumed with another file, the first file's done markers would stand for partitions it diffed (the
    new file's changes there never sent) and its sent exits would not be re-checked. A snapshotId names
    one file: the other one is refused, and under a new id it re-checks what the first file sent."""
    run(store, state, put_snapshot("s1", [profile(n) for n in range(100)]), Bus())
    first = prepared(store, state, put_snapshot("s2", [profile(n) for n in range(90)], hours=1))
    assert first.bits >= 1
    runner.diff_partition(store, first, 0, Bus(), "bus")  # then it failed
    state.release(AUDIENCE, "s2")
    everyone = [profile(n) for n in range(100)]
    refused = runner.prepare(store, "bucket", put_snapshot("s2", everyone, hours=1), TWO_OF_A_TYPE, state)
    assert isinstance(refused, runner.Refusal) and refused.reason == "snapshot_id_reused"
    bus = Bus()
    record = run(store, state, put_snapshot("s3", everyone, hours=2), bus)
    exited_by_s2 = {f"person{n}@example.com" for n in range(90, 100)}
    assert record["status"] == "APPLIED"
    assert bus.by_status("existing") == exited_by_s2  # sent again: whatever s2 sent, they are members


def test_the_same_members_file_written_again_keeps_its_checksum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A snapshot id is refused with another file (`snapshot_id_reused`), so the same members written
    again a second later must be the same bytes (gzip's header would hold the time)."""
    path = tmp_path / "s1.jsonl.gz"
    write_members(path, [profile(n) for n in range(3)])
    first = path.read_bytes()
    monkeypatch.setattr(time, "time", lambda: 2_000_000_000.0)  # a later second
    write_members(path, [profile(n) for n in range(3)])
    assert path.read_bytes() == first


def test_two_executions_of_one_run_do_not_both_hold_the_audience(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    """S3 and EventBridge deliver at least once: two executions of one manifest. The lease is the
    execution's, so the second waits (AudienceBusy) instead of running beside the first; once the first
    applied the run, it is `already_applied` (the state machine ends it succeeded, a no-op)."""
    run(store, state, put_snapshot("s1", [profile(n) for n in range(10)]), Bus())
    key = put_snapshot("s2", [profile(n) for n in range(8)], hours=1)
    first = runner.prepare(store, "bucket", key, TWO_OF_A_TYPE, state, target=64, owner="execution-1")
    assert isinstance(first, RunPlan)
    with pytest.raises(AudienceBusy, match="held by run 'execution-1'"):
        runner.prepare(store, "bucket", key, TWO_OF_A_TYPE, state, target=64, owner="execution-2")
    again = runner.prepare(store, "bucket", key, TWO_OF_A_TYPE, state, target=64, owner="execution-1")
    assert again == first  # the same execution again (a retried Prepare, a redrive): re-entrant
    for index in range(1 << first.bits):
        runner.diff_partition(store, first, index, Bus(), "bus")
    assert runner.commit(store, first, state, owner="execution-1")["status"] == "APPLIED"
    second = runner.prepare(store, "bucket", key, TWO_OF_A_TYPE, state, target=64, owner="execution-2")
    assert isinstance(second, runner.Refusal) and second.reason == "already_applied"


def test_a_failure_path_finding_the_run_applied_by_another_execution_ends_as_already_applied(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An execution whose lease ran out (stopped an hour) while another execution of the same run applied
    it: its RecordFailure keeps the APPLIED record and answers `already_applied`, which the state machine
    ends as succeeded (docs/snapshots.md: the same manifest again is not a failure)."""
    from snapshots.settings import snapshot_settings
    from snapshots.tasks import commit as commit_task

    now = [1_000_000.0]
    clocked = SnapshotState(state.table, state.dynamodb, clock=lambda: now[0])
    run(store, clocked, put_snapshot("s1", [profile(n) for n in range(10)]), Bus())
    key = put_snapshot("s2", [profile(n) for n in range(8)], hours=1)
    stopped = runner.prepare(store, "bucket", key, TWO_OF_A_TYPE, clocked, target=64, owner="execution-1")
    assert isinstance(stopped, RunPlan)
    now[0] += LEASE_SECONDS + 1
    applied = runner.prepare(store, "bucket", key, TWO_OF_A_TYPE, clocked, target=64, owner="execution-2")
    assert isinstance(applied, RunPlan)
    for index in range(1 << applied.bits):
        runner.diff_partition(store, applied, index, Bus(), "bus")
    runner.commit(store, applied, clocked, owner="execution-2")
    assert state.run(AUDIENCE, "s2")["status"] == "APPLIED"  # type: ignore[index]

    monkeypatch.setenv("STATE_TABLE_NAME", state.table)
    monkeypatch.setenv("EVENT_BUS_NAME", "bus")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "test")
    snapshot_settings.cache_clear()
    try:
        failed = {"Error": "SnapshotLeaseLost", "Cause": "execution-1 no longer holds the audience"}
        prepared_ = {"plan": stopped.model_dump(mode="json"), "owner": "execution-1"}
        summary = commit_task.lambda_handler({"prepared": prepared_, "error": failed}, None)
    finally:
        snapshot_settings.cache_clear()
    assert (summary["status"], summary["reason"]) == ("APPLIED", "already_applied")
    record = state.run(AUDIENCE, "s2")
    assert record is not None
    assert (record["status"], record.get("members")) == ("APPLIED", 8)


def test_the_applied_snapshot_again_is_refused_at_once_while_another_run_holds_the_audience(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    """A duplicate of the applied manifest waits for no one (it would wait 75 minutes, then fail busy)."""
    applied = put_snapshot("s1", [profile(n) for n in range(10)])
    run(store, state, applied, Bus())
    prepared(store, state, put_snapshot("s2", [profile(n) for n in range(8)], hours=1))  # holds the audience
    again = runner.prepare(store, "bucket", applied, TWO_OF_A_TYPE, state, target=64)
    assert isinstance(again, runner.Refusal) and again.reason == "already_applied"


def prepare_another(store: DirStore, state: SnapshotState, manifest: str) -> object:
    """Another snapshot of the audience asking for it (refused with AudienceBusy while it is held)."""
    return runner.prepare(store, "bucket", manifest, TWO_OF_A_TYPE, state, target=64)


def test_a_refused_second_copy_of_a_running_run_leaves_the_audience_held(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    """Both copies of one manifest hold the lease under the run's name; the copy refused (here: its
    audience no longer activated) must not give it back while the first copy still runs."""
    run(store, state, put_snapshot("s1", [profile(n) for n in range(10)]), Bus())
    running = put_snapshot("s2", [profile(n) for n in range(8)], hours=1)
    prepared(store, state, running)
    nobody = config(("marketo-a", "marketo", False), ("rf", "rainfocus", False))
    copy = runner.prepare(store, "bucket", running, nobody, state, target=64)
    assert isinstance(copy, runner.Refusal) and copy.reason == "unknown_audience"
    with pytest.raises(AudienceBusy, match="held by run 's2'"):
        prepare_another(store, state, put_snapshot("s3", [profile(n) for n in range(10)], hours=2))


def test_a_refused_second_copy_of_a_running_backfill_leaves_the_audience_held(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    run(store, state, put_snapshot("s1", [profile(n) for n in range(10)]), Bus())
    more = config(("marketo-a", "marketo", True), ("marketo-b", "marketo", True), ("rf", "rainfocus", True))
    request = BackfillRequest(bucket="bucket", audience_id=AUDIENCE, snapshot_id="s1", run_id="s1.backfill-1")
    assert isinstance(runner.prepare_backfill(store, request, more, state), RunPlan)
    copy = runner.prepare_backfill(store, request, TWO_OF_A_TYPE, state)  # nothing left to backfill: refused
    assert isinstance(copy, runner.Refusal)
    with pytest.raises(AudienceBusy, match=r"held by run 's1\.backfill-1'"):
        prepare_another(store, state, put_snapshot("s2", [profile(n) for n in range(10)], hours=1))


def test_a_prepare_that_fails_gives_the_audience_back(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    """An exception in Prepare (its retries take the lease again) holds no other run back for an hour."""
    run(store, state, put_snapshot("s1", [profile(n) for n in range(10)]), Bus())

    class Broken(RuntimeError):
        pass

    def fail(*_: object, **__: object) -> None:
        raise Broken

    failing = put_snapshot("s2", [profile(n) for n in range(8)], hours=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store, "put_json", fail)
        with pytest.raises(Broken):
            runner.prepare(store, "bucket", failing, TWO_OF_A_TYPE, state, target=64)
    prepared(store, state, put_snapshot("s3", [profile(n) for n in range(10)], hours=2))  # not busy


def fail_after_sending(store: DirStore, state: SnapshotState, key: str) -> RunPlan:
    """A run that sent every partition's changes and failed (RecordFailure gives the audience back)."""
    plan = prepared(store, state, key)
    for index in range(1 << plan.bits):
        runner.diff_partition(store, plan, index, Bus(), "bus")
    state.release(AUDIENCE, plan.run_key)
    return plan


def pointer_item_bytes(state: SnapshotState) -> int:
    """The pointer item's size as DynamoDB counts it (attribute names and values, UTF-8)."""
    item = state.dynamodb.get_item(
        TableName=state.table, Key={"pk": {"S": "snapshot"}, "sk": {"S": AUDIENCE}}
    )
    return sum(len(k) + len(next(iter(v.values()))) for k, v in item["Item"].items())


def test_twenty_five_failed_runs_in_a_row_keep_the_audience_state_the_plan_and_the_diff_flat(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The review's finding: each failed run was appended to the pointer's list, and every diff task
    loaded each listed run's partition: ~25 failures in a row exhausted the diff task's memory, and the
    pointer item (400 KB) and the plan (a Step Functions payload, 256 KB) grew without bound. Folded into
    one set per audience, they stay the size they had after the second failure, and the next run still
    leaves every member as its snapshot says (each failed run exited one member and added another)."""
    run(store, state, put_snapshot("s1", [profile(n) for n in range(40)]), Bus())
    items, plans = [], []
    for k in range(25):
        members = [profile(n) for n in range(40) if n != k] + [profile(100 + k)]
        plan = fail_after_sending(store, state, put_snapshot(f"f{k:02d}", members, hours=k + 1))
        items.append(pointer_item_bytes(state))
        plans.append(len(plan.model_dump_json()))
    assert max(items[1:]) <= items[1] + 8 and max(plans[1:]) <= plans[1] + 8  # flat, not one run more each

    final = prepared(store, state, put_snapshot("s2", [profile(n) for n in range(40)], hours=30))
    opened: set[str] = set()
    open_object = store.open

    def counting(key: str) -> object:
        opened.add(key.rsplit("/", 1)[0])
        return open_object(key)

    monkeypatch.setattr(store, "open", counting)
    bus = Bus()
    for index in range(1 << final.bits):
        runner.diff_partition(store, final, index, bus, "bus")
    # What a diff task reads: this run's partitions, the applied membership, the one folded set.
    assert len(opened) <= 3, sorted(opened)
    record = runner.commit(store, final, state)
    assert record["status"] == "APPLIED"
    assert bus.by_status("existing") == {f"person{n}@example.com" for n in range(25)}  # exited by f00-f24
    assert bus.by_status("exited") == {f"person{n}@example.com" for n in range(100, 125)}  # they added
    assert state.audience(AUDIENCE)[1] == Pending()  # settled


def test_a_commit_deletes_what_the_runs_it_settled_kept_of_their_membership(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    """A failed run wrote part of its membership under state/ (personal data): the Commit that settles
    it deletes it, with the superseded membership; only the applied one stays."""
    run(store, state, put_snapshot("s1", [profile(n) for n in range(40)]), Bus())
    for k in range(3):
        fail_after_sending(
            store, state, put_snapshot(f"f{k}", [profile(n) for n in range(30 + k)], hours=k + 1)
        )
    kept = {key.split("/")[2] for key in store.keys(f"state/{AUDIENCE}/")}
    assert kept == {"s1", "f0", "f1", "f2"}
    run(store, state, put_snapshot("s2", [profile(n) for n in range(40)], hours=5), Bus())
    assert {key.split("/")[2] for key in store.keys(f"state/{AUDIENCE}/")} == {"s2"}


def test_an_applied_run_deletes_the_folded_set_it_re_checked_a_backfill_keeps_it(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    """The review's finding (privacy): the folded set (member lines, e-mails) was said to end with the
    next applied run, but Commit deleted only under state/; and each fold copies it forward, so while
    runs kept failing an erased person's line outlived SnapshotRunRetentionDays. The run that settles
    the set deletes it; a backfill, which settles nothing, leaves it for the next run."""
    run(store, state, put_snapshot("s1", [profile(n) for n in range(40)]), Bus())
    for k in range(2):
        fail_after_sending(
            store, state, put_snapshot(f"f{k}", [profile(n) for n in range(30 + k)], hours=k + 1)
        )
    more = config(("marketo-a", "marketo", True), ("marketo-b", "marketo", True), ("rf", "rainfocus", True))
    request = BackfillRequest(bucket="bucket", audience_id=AUDIENCE, snapshot_id="s1", run_id="s1.backfill-1")
    backfill = runner.prepare_backfill(store, request, more, state)
    assert isinstance(backfill, RunPlan) and backfill.recheck is None
    diff_every_partition_and_commit(store, state, backfill, Bus())
    kept = state.audience(AUDIENCE)[1].recheck
    assert kept is not None and list(store.keys(kept.prefix))  # f0 folded by f1: still to re-check
    final = runner.prepare(store, "bucket", put_snapshot("s2", [profile(n) for n in range(40)], hours=5), more,
                           state, target=64)  # fmt: skip
    assert isinstance(final, RunPlan) and final.recheck is not None
    assert list(store.keys(final.recheck.prefix))
    assert diff_every_partition_and_commit(store, state, final, Bus())["status"] == "APPLIED"
    assert list(store.keys(final.recheck.prefix)) == []


def listed_one_by_one(store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter) -> list[RunPlan]:
    """s1 applied (40 members), then f0, f1, f2 failed, each exiting one member, listed on the pointer
    item one by one as a stack stored them before the fold (no `recheck`, no `instances`)."""
    run(store, state, put_snapshot("s1", [profile(n) for n in range(40)]), Bus())
    failed = [
        fail_after_sending(
            store, state, put_snapshot(f"f{k}", [profile(n) for n in range(40) if n != k], hours=k + 1)
        )
        for k in range(3)
    ]
    applied = state.pointer(AUDIENCE)
    assert applied is not None
    listed = tuple(
        Unsettled(run_key=p.run_key, snapshot_at=p.snapshot_at, prefix=p.new_prefix, bits=p.bits)
        for p in failed
    )
    state.dynamodb.put_item(TableName=state.table, Item=state.item(AUDIENCE, applied, Pending(open=listed)))
    return failed


def test_a_pointer_item_listing_several_runs_as_stored_before_the_fold_is_folded_by_the_next_run(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    """A stack upgraded with runs listed one by one (no `recheck`, no `instances`): the next Prepare folds
    them one after the other (one run's partition in memory at a time) and re-checks every one."""
    listed_one_by_one(store, state, put_snapshot)
    bus = Bus()
    record = run(store, state, put_snapshot("s2", [profile(n) for n in range(40)], hours=5), bus)
    assert record["status"] == "APPLIED"
    assert bus.by_status("existing") == {f"person{n}@example.com" for n in range(3)}  # each run's exit undone


def test_com_03_an_instance_only_a_failed_run_sent_to_still_gets_every_member_from_the_next_run(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    """The review's finding: the instances a failed run sent to counted as holding the applied snapshot.
    rf starts activating; s2, its backfill, sends one partition and fails; s3 sent rf nothing (0 of 200).
    Only an applied snapshot's instances have it: s3 sends rf every member, and exits where s2 sent."""
    marketo_only = config(("marketo-a", "marketo", True), ("rf", "rainfocus", False))
    both = config(("marketo-a", "marketo", True), ("rf", "rainfocus", True))
    members = [profile(n) for n in range(200)]
    run(store, state, put_snapshot("s1", members), Bus(), cfg=marketo_only)
    failed = runner.prepare(store, "bucket", put_snapshot("s2", members, hours=1), both, state, target=64)
    assert isinstance(failed, RunPlan) and failed.targets.full == ("rf",)
    assert failed.bits > 0  # several partitions: the failure leaves some unsent
    runner.diff_partition(store, failed, 0, Bus(), "bus")
    state.release(AUDIENCE, failed.run_key)  # RecordFailure
    plan = runner.prepare(store, "bucket", put_snapshot("s3", members, hours=2), both, state, target=64)
    assert isinstance(plan, RunPlan)
    assert plan.targets.full == ("rf",) and plan.targets.removal == ("marketo-a", "rf")
    bus = Bus()
    record = diff_every_partition_and_commit(store, state, plan, bus)
    assert record["status"] == "APPLIED" and record["sent"]["rf"] == 200
    to_rf = {d["profile"]["identities"]["email"] for d in bus.details() if "rf" in d["targetInstances"]}
    assert to_rf == {f"person{n}@example.com" for n in range(200)}


def test_the_need_for_a_resync_outlives_the_failure_of_the_resync_run_and_its_resumption(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    """The review's finding: once the partitions of a failed run ended, the next run is a resync; if it
    failed too, the one after was a plain diff, and a member the forgotten run exited was never sent
    again. The need is carried on the run's listing and the folded set until a run is applied."""
    marketo = config(("marketo-a", "marketo", True))
    everyone = [profile(n) for n in range(100)]
    run(store, state, put_snapshot("s1", everyone), Bus(), cfg=marketo)
    forgotten = runner.prepare(
        store, "bucket", put_snapshot("s2", everyone[1:], hours=1), marketo, state, target=64
    )
    assert isinstance(forgotten, RunPlan)
    for index in range(1 << forgotten.bits):  # person0 exited at the vendor
        runner.diff_partition(store, forgotten, index, Bus(), "bus")
    state.release(AUDIENCE, forgotten.run_key)
    store.delete_prefix(forgotten.run_prefix)  # SnapshotRunRetentionDays later
    s3 = put_snapshot("s3", everyone, hours=2)
    for attempt in range(2):  # s3 is a resync; it fails before sending, is run again and fails again
        resync = runner.prepare(store, "bucket", s3, marketo, state, target=64)
        assert isinstance(resync, RunPlan) and resync.targets.full == ("marketo-a",), attempt
        state.release(AUDIENCE, resync.run_key)
    bus = Bus()
    plan = runner.prepare(store, "bucket", put_snapshot("s4", everyone, hours=3), marketo, state, target=64)
    assert isinstance(plan, RunPlan) and plan.targets.full == ("marketo-a",)
    record = diff_every_partition_and_commit(store, state, plan, bus)
    assert record["status"] == "APPLIED"
    assert "person0@example.com" in bus.by_status("existing")
    assert record["sent"] == {"marketo-a": 100}
    after = runner.prepare(store, "bucket", put_snapshot("s5", everyone, hours=4), marketo, state, target=64)
    assert isinstance(after, RunPlan) and after.targets.full == ()  # applied: the need is settled


@pytest.fixture
def tasks_env(state: SnapshotState, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Store]:
    """The diff and Commit tasks' environment, their bucket and bus in the same moto as the state table."""
    from snapshots.settings import snapshot_settings

    boto3.client("s3").create_bucket(Bucket="bucket")
    boto3.client("events").create_event_bus(Name="bus")
    for name, value in {"STATE_TABLE_NAME": state.table, "EVENT_BUS_NAME": "bus",
                        "POWERTOOLS_METRICS_NAMESPACE": "test"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    snapshot_settings.cache_clear()
    yield S3Store("bucket")
    snapshot_settings.cache_clear()


def holder(state: SnapshotState) -> str | None:
    lease = LeaseLock(state.table, dynamodb=state.dynamodb).holder(f"snapshot#{AUDIENCE}")
    return lease.owner if lease else None


def started_before_the_deploy(
    s3: S3Store,
    store: DirStore,
    state: SnapshotState,
    put_snapshot: SnapshotWriter,
    snapshot_id: str,
    *,
    hours: int,
) -> dict[str, Any]:
    """What Prepare returned to an execution started before the execution owned the lease: the lease held
    under the run's key, and no `owner` in its output (the running execution keeps its old definition)."""
    key = put_snapshot(snapshot_id, [profile(n) for n in range(8)], hours=hours)
    for name in store.keys("incoming/"):
        with store.open(name) as body:
            s3.s3.put_object(Bucket="bucket", Key=name, Body=body.read())
    plan = runner.prepare(s3, "bucket", key, TWO_OF_A_TYPE, state, target=4)
    assert isinstance(plan, RunPlan) and plan.bits > 0
    assert holder(state) == plan.run_key
    return {"plan": plan.model_dump(mode="json"), "partitionsKey": f"{plan.run_prefix}partitions.json"}


def test_an_execution_started_before_the_deploy_finishes_its_run_and_its_failure_is_recorded(
    tasks_env: S3Store, store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    """The review's finding: its diff tasks and RecordFailure read an `owner` it never had (KeyError):
    the run failed with no FAILED record and the audience stayed held for the lease's hour. They fall
    back to the run's key, the name it holds the lease under."""
    from snapshots.tasks import commit as commit_task
    from snapshots.tasks import diff as diff_task

    prepared_ = started_before_the_deploy(tasks_env, store, state, put_snapshot, "s1", hours=0)
    for index in range(1 << prepared_["plan"]["bits"]):
        diff_task.lambda_handler({"partition": index, "plan": prepared_["plan"]}, None)
    summary = commit_task.lambda_handler({"prepared": prepared_}, None)
    assert (summary["status"], summary["members"]) == ("APPLIED", 8)
    assert holder(state) is None  # given back

    failing = started_before_the_deploy(tasks_env, store, state, put_snapshot, "s2", hours=1)
    summary = commit_task.lambda_handler({"prepared": failing, "error": {"Error": "States.TaskFailed"}}, None)
    assert state.run(AUDIENCE, "s2")["status"] == "FAILED"  # type: ignore[index]
    assert summary["status"] == "FAILED" and holder(state) is None  # given back at once, not in an hour


class Budget:
    """The seconds Prepare has left (its Lambda context's), as a countdown: `checks` answers of plenty,
    then none. No wall clock: the fold asks before each partition it writes."""

    def __init__(self, checks: int) -> None:
        self.checks = checks

    def __call__(self) -> float:
        self.checks -= 1
        return 900.0 if self.checks >= 0 else 0.0


def test_a_prepare_out_of_time_for_the_fold_falls_back_to_a_resync_and_the_audience_applies(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    """The 22-million-member cap after a failed run is extrapolated from one measurement; a Prepare that
    timed out folding would never list itself, and every later run would repeat the same fold (the
    audience stuck). Out of time, it keeps the runs it folded, drops the others and is a resync (every
    member sent again), which the next run remembers until one is applied."""
    run(store, state, put_snapshot("s1", [profile(n) for n in range(40)]), Bus())
    for k in range(3):  # f0, f1 and f2 each exit one member and fail (f2 folded f0 and f1)
        fail_after_sending(
            store, state, put_snapshot(f"f{k}", [profile(n) for n in range(40) if n != k], hours=k + 1)
        )
    folded_before = state.audience(AUDIENCE)[1].recheck
    assert folded_before is not None and folded_before.runs == 2
    key = put_snapshot("s2", [profile(n) for n in range(40)], hours=4)
    plan = runner.prepare(store, "bucket", key, TWO_OF_A_TYPE, state, target=64, time_left=Budget(0))
    assert isinstance(plan, RunPlan)
    assert plan.targets.full == plan.targets.current  # a resync: what f2 sent is not re-checked
    assert plan.recheck == folded_before  # what was folded before is kept
    listed = state.audience(AUDIENCE)[1].open
    assert [(u.run_key, u.resync) for u in listed] == [("s2", True)]
    bus = Bus()
    record = diff_every_partition_and_commit(store, state, plan, bus)
    assert record["status"] == "APPLIED" and record["sent"] == {"marketo-a": 40, "rf": 40}
    assert {f"person{n}@example.com" for n in range(3)} <= bus.by_status("existing")


def test_a_fold_out_of_time_names_the_runs_it_dropped_in_a_warning_the_plan_and_the_run_record(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter, caplog: pytest.LogCaptureFixture
) -> None:
    """The review's finding: a fold that ran out of time dropped runs silently (the run only became a
    resync), though a dropped run's additions may stay extra at the vendor. The Prepare logs a warning
    (ids and counts, no member) and the plan and the run record list the runs (`droppedRuns`), which
    `activation snapshot status` shows."""
    run(store, state, put_snapshot("s1", [profile(n) for n in range(40)]), Bus())
    for k in range(3):  # f2 folds f0 and f1
        fail_after_sending(
            store, state, put_snapshot(f"f{k}", [profile(n) for n in range(40) if n != k], hours=k + 1)
        )
    key = put_snapshot("s2", [profile(n) for n in range(40)], hours=4)
    with caplog.at_level(logging.INFO):
        plan = runner.prepare(store, "bucket", key, TWO_OF_A_TYPE, state, target=64, time_left=Budget(0))
    assert isinstance(plan, RunPlan) and plan.dropped_runs == ("f2",)
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert (warning.audience, warning.snapshot, warning.droppedRuns, warning.folded) == (  # type: ignore[attr-defined]
        AUDIENCE,
        "s2",
        ["f2"],
        0,
    )
    assert "@" not in caplog.text  # no member's value
    again = runner.prepare(store, "bucket", key, TWO_OF_A_TYPE, state, target=64)  # resumed: nothing to fold
    assert isinstance(again, RunPlan) and again.dropped_runs == ("f2",)
    record = diff_every_partition_and_commit(store, state, plan, Bus())
    assert record["status"] == "APPLIED" and record["droppedRuns"] == ["f2"]
    assert state.run(AUDIENCE, "s2")["droppedRuns"] == ["f2"]  # type: ignore[index]


def test_a_fold_out_of_time_half_way_keeps_the_runs_it_folded_whole_and_drops_the_rest(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    """The partial path: three listed runs (a pointer item as stored before the fold), time for two. The
    set holds what the first two may have changed (each exited one member), not the third's; the third is
    dropped and the run is a resync."""
    failed = listed_one_by_one(store, state, put_snapshot)
    assert all(p.bits == 0 for p in failed)  # one partition each: one check of the clock per run
    key = put_snapshot("s2", [profile(n) for n in range(40)], hours=5)
    plan = runner.prepare(store, "bucket", key, TWO_OF_A_TYPE, state, target=64, time_left=Budget(2))
    assert isinstance(plan, RunPlan) and plan.recheck is not None
    assert (plan.recheck.runs, plan.recheck.last_run, plan.dropped_runs) == (2, "f1", ("f2",))
    in_set = {
        json.loads(row.line)["identities"]["email"]
        for path in sorted((store.root / plan.recheck.prefix).glob("part-*.tsv.gz"))
        for row in read_rows(store, f"{plan.recheck.prefix}{path.name}")
    }
    assert in_set == {"person0@example.com", "person1@example.com"}
    assert plan.targets.full == plan.targets.current  # a resync
    assert [(u.run_key, u.resync) for u in state.audience(AUDIENCE)[1].open] == [("s2", True)]


class LambdaContext:
    """What the Prepare task reads of its Lambda context: the time left to the invocation."""

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_the_prepare_task_bounds_the_fold_by_its_lambda_contexts_time_left(
    tasks_env: S3Store,
    store: DirStore,
    state: SnapshotState,
    put_snapshot: SnapshotWriter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The handler's wiring: 20 s left to the invocation is less than the fold's 30 s reserve, so the
    Prepare task (moto S3, SSM and table, through its handler) drops the failed run and lists itself as a
    resync; without the context's clock (deadline.begin) the fold would run unbounded. A failure path
    after it (RecordFailure) records the dropped run too."""
    from snapshots.tasks import commit as commit_task
    from snapshots.tasks import prepare as prepare_task

    parameter = "/test/snapshot-prepare/destinations"
    boto3.client("ssm").put_parameter(
        Name=parameter, Type="String", Value=TWO_OF_A_TYPE.model_dump_json(by_alias=True, exclude_none=True)
    )
    monkeypatch.setenv("SNAPSHOT_BUCKET_NAME", "bucket")
    monkeypatch.setenv("CONFIG_PARAMETER_NAME", parameter)
    from snapshots.settings import snapshot_settings

    snapshot_settings.cache_clear()
    s3 = tasks_env

    def uploaded(snapshot_id: str, members: list[dict[str, Any]], hours: int) -> str:
        key = put_snapshot(snapshot_id, members, hours=hours)
        for name in store.keys("incoming/"):
            with store.open(name) as body:
                s3.s3.put_object(Bucket="bucket", Key=name, Body=body.read())
        return key

    first = runner.prepare(
        s3, "bucket", uploaded("s1", [profile(n) for n in range(8)], 0), TWO_OF_A_TYPE, state
    )
    assert isinstance(first, RunPlan)
    for index in range(1 << first.bits):
        runner.diff_partition(s3, first, index, Bus(), "bus")
    assert runner.commit(s3, first, state)["status"] == "APPLIED"
    failed = runner.prepare(
        s3, "bucket", uploaded("f1", [profile(n) for n in range(1, 8)], 1), TWO_OF_A_TYPE, state
    )
    assert isinstance(failed, RunPlan)
    for index in range(1 << failed.bits):
        runner.diff_partition(s3, failed, index, Bus(), "bus")
    state.release(AUDIENCE, failed.run_key)

    request = {"bucket": "bucket", "manifestKey": uploaded("s2", [profile(n) for n in range(8)], 2)}
    prepared_ = prepare_task.lambda_handler(
        {"request": request, "execution": "exec-s2"}, LambdaContext(20_000)
    )
    assert prepared_["status"] == "PREPARED"
    assert [(u.run_key, u.resync) for u in state.audience(AUDIENCE)[1].open] == [("s2", True)]
    assert prepared_["plan"]["dropped_runs"] == ["f1"]
    commit_task.lambda_handler({"prepared": prepared_, "error": {"Error": "States.TaskFailed"}}, None)
    assert state.run(AUDIENCE, "s2")["droppedRuns"] == ["f1"]  # type: ignore[index]
    snapshot_settings.cache_clear()

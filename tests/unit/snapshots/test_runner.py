"""prepare -> diff_partition (every partition) -> commit, on a directory bucket and a moto state table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from activation_cli import discovery
from activation_core.models.config import DestinationsConfig
from snapshots import erasure as snapshot_erasure
from snapshots import runner
from snapshots.plan import BackfillRequest, RunPlan
from snapshots.progress import run_progress
from snapshots.state import SnapshotState
from snapshots.store import DirStore
from tests.unit.snapshots.conftest import AUDIENCE, SnapshotWriter, config, profile

TWO_OF_A_TYPE = config(
    ("marketo-a", "marketo", True), ("marketo-b", "marketo", False), ("rf", "rainfocus", True)
)
TYPES = ("marketo", "rainfocus")  # whose ledgers progress reads (the CLI passes the stack's types)


class Bus:
    """Records PutEvents entries (the publisher's side of the contract); can fail after n entries."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.entries: list[dict[str, Any]] = []
        self.fail_after = fail_after

    def __call__(self, chunk: Sequence[dict[str, Any]]) -> int:
        if self.fail_after is not None and len(self.entries) + len(chunk) > self.fail_after:
            raise RuntimeError("interrupted")
        self.entries += chunk
        return len(chunk)

    def details(self) -> list[dict[str, Any]]:
        return [json.loads(e["Detail"]) for e in self.entries]

    def by_status(self, status: str) -> set[str]:
        return {
            d["profile"]["identities"]["email"]
            for d in self.details()
            if d["audiences"][0]["status"] == status
        }


def diff_every_partition_and_commit(store: DirStore, state: SnapshotState, plan: RunPlan, bus: Bus) -> Any:
    """What the workflow does once Prepare planned a run: every partition's diff, then the commit."""
    for index in range(1 << plan.bits):
        runner.diff_partition(store, plan, index, bus, "bus")
    return runner.commit(store, plan, state)


def run(
    store: DirStore,
    state: SnapshotState,
    key: str,
    bus: Bus,
    *,
    cfg: DestinationsConfig = TWO_OF_A_TYPE,
    target: int = 64,
) -> dict[str, Any]:
    plan = runner.prepare(store, "bucket", key, cfg, state, target=target)
    assert isinstance(plan, RunPlan), plan
    return diff_every_partition_and_commit(store, state, plan, bus)


def test_com_08_first_snapshot_is_a_backfill_for_the_activating_instances_only(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    bus = Bus()
    record = run(store, state, put_snapshot("s1", [profile(n) for n in range(300)]), bus)
    assert record["status"] == "APPLIED"
    assert bus.by_status("realized") == {f"person{n}@example.com" for n in range(300)}
    assert {tuple(d["targetInstances"]) for d in bus.details()} == {("marketo-a", "rf")}
    assert {tuple(d["targetTypes"]) for d in bus.details()} == {("marketo", "rainfocus")}
    assert all(d["changeOrigin"] == "snapshot" and d["snapshotId"] == "s1" for d in bus.details())
    assert record["sent"] == {"marketo-a": 300, "rf": 300}
    assert state.pointer(AUDIENCE).snapshot_id == "s1"  # type: ignore[union-attr]


def test_second_snapshot_with_10_percent_removed_and_added_sends_exactly_those(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    run(store, state, put_snapshot("s1", [profile(n) for n in range(1000)]), Bus())
    bus = Bus()
    second = [profile(n) for n in range(100, 1100)]
    # the second snapshot is split differently (target 128 -> 8 partitions vs 16): the diff still lines up
    record = run(store, state, put_snapshot("s2", second, hours=1), bus, target=128)
    assert bus.by_status("exited") == {f"person{n}@example.com" for n in range(100)}
    assert bus.by_status("realized") == {f"person{n}@example.com" for n in range(1000, 1100)}
    assert len(bus.entries) == 200
    assert (record["added"], record["removed"], record["unchanged"], record["changed"]) == (100, 100, 900, 0)


def test_a_changed_member_is_sent_again_as_an_existing_member(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    run(store, state, put_snapshot("s1", [profile(n) for n in range(50)]), Bus())
    bus = Bus()
    members = [profile(n) for n in range(50)]
    members[7] = profile(7, title="CTO")
    run(store, state, put_snapshot("s2", members, hours=1), bus)
    assert bus.by_status("existing") == {"person7@example.com"}
    assert len(bus.entries) == 1


def test_full_resync_sends_every_member_and_still_the_exits(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    run(store, state, put_snapshot("s1", [profile(n) for n in range(100)]), Bus())
    bus = Bus()
    run(store, state, put_snapshot("s2", [profile(n) for n in range(10, 100)], hours=1, full=True), bus)
    assert len(bus.by_status("existing")) == 90  # members since s1, sent again
    assert len(bus.by_status("exited")) == 10


def test_an_instance_that_starts_activating_gets_a_backfill_the_others_a_diff(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    only_a = config(("marketo-a", "marketo", True), ("marketo-b", "marketo", False))
    run(store, state, put_snapshot("s1", [profile(n) for n in range(100)]), Bus(), cfg=only_a)
    both = config(("marketo-a", "marketo", True), ("marketo-b", "marketo", True))
    bus = Bus()
    record = run(
        store, state, put_snapshot("s2", [profile(n) for n in range(1, 101)], hours=1), bus, cfg=both
    )
    assert record["sent"] == {"marketo-a": 2, "marketo-b": 100}  # a: person0 exited, person100 joined


def test_a_bad_line_is_counted_and_reported_never_silently_dropped(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    lines = [json.dumps(profile(n)) for n in range(20)]
    lines[3] = "{not json"
    lines[9] = json.dumps({"identities": {}})
    lines[11] = json.dumps({"identites": {"email": "typo@example.com"}})
    bus = Bus()
    record = run(store, state, put_snapshot("s1", lines, gz=False), bus)
    assert record["status"] == "APPLIED"
    assert (record["lines"], record["members"], record["badLines"]) == (20, 17, 3)
    report = store.get_json(f"runs/{AUDIENCE}/s1/read-report.json")
    assert report["badLineSamples"] == [
        {"line": 4, "reason": "not_json"},
        {"line": 10, "reason": "invalid:identities"},
        {"line": 12, "reason": "invalid:identities"},
    ]
    assert "typo@example.com" not in json.dumps(report)
    assert len(bus.entries) == 17


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda m: m.update(checksum="sha256:" + "0" * 64), "checksum_mismatch"),
        (lambda m: m.update(memberCount=m["memberCount"] + 1), "count_mismatch"),
        (lambda m: m.update(audienceId="aud-nobody-activates"), "unknown_audience"),
        (lambda m: m.update(snapshotAt="2026-11-30T10:00:00Z"), "older_than_applied"),
        (lambda m: m.update(snapshotId="s1"), "already_applied"),
        (lambda m: m.pop("checksum"), "invalid_manifest"),
        (lambda m: m.update(membersKey="incoming/never-written.jsonl.gz"), "members_not_found"),
        # A clock or a typo upstream: every change would be rejected at the destinations (occurredAt in
        # the future) and, applied, the audience would refuse every real snapshot until that date.
        (lambda m: m.update(snapshotAt="2099-01-01T00:00:00Z"), "snapshot_at_in_the_future"),
    ],
)
def test_an_invalid_snapshot_is_refused_with_a_reason_and_changes_nothing(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter, tamper: Any, reason: str
) -> None:
    run(store, state, put_snapshot("s1", [profile(n) for n in range(30)]), Bus())
    before = sorted(p.relative_to(store.root).as_posix() for p in (store.root / "state").rglob("*"))
    result = runner.prepare(
        store,
        "bucket",
        put_snapshot("s2", [profile(n) for n in range(5)], hours=1, tamper=tamper),
        TWO_OF_A_TYPE,
        state,
    )
    assert isinstance(result, runner.Refusal)
    assert result.reason == reason
    assert state.pointer(AUDIENCE).snapshot_id == "s1"  # type: ignore[union-attr]
    assert sorted(p.relative_to(store.root).as_posix() for p in (store.root / "state").rglob("*")) == before
    assert not (store.root / "runs" / AUDIENCE / "s2").exists()


def test_a_manifest_that_is_not_there_is_refused_and_changes_nothing(
    store: DirStore, state: SnapshotState
) -> None:
    result = runner.prepare(
        store, "bucket", "incoming/never-written.jsonl.manifest.json", TWO_OF_A_TYPE, state
    )
    assert isinstance(result, runner.Refusal) and result.reason == "manifest_not_found"
    assert state.pointer(AUDIENCE) is None and not (store.root / "runs").exists()


def test_an_interrupted_run_resumed_loses_nothing_and_resends_only_the_unfinished_partition(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "PUBLISH_CHUNK", 5)
    run(store, state, put_snapshot("s1", [profile(n) for n in range(600)]), Bus())
    key = put_snapshot("s2", [profile(n) for n in range(60, 660)], hours=1)
    plan = runner.prepare(store, "bucket", key, TWO_OF_A_TYPE, state, target=64)
    assert isinstance(plan, RunPlan) and plan.bits >= 3
    first = Bus(fail_after=72)  # dies part-way through a partition, after some of its chunks went out
    with pytest.raises(RuntimeError):
        for index in range(1 << plan.bits):
            runner.diff_partition(store, plan, index, first, "bus")
    finished = len(list((store.root / plan.run_prefix / "done").glob("*.json")))
    sent_by_finished = sum(
        store.get_json(f"{plan.run_prefix}done/{i:04d}.json")["published"] for i in range(finished)
    )
    assert 0 < sent_by_finished < len(first.entries)  # the crash left a partition half sent

    again = Bus()  # resumed from the start: a new execution with the same input
    plan = runner.prepare(store, "bucket", key, TWO_OF_A_TYPE, state, target=64)
    assert isinstance(plan, RunPlan)
    for index in range(1 << plan.bits):
        runner.diff_partition(store, plan, index, again, "bus")
    record = runner.commit(store, plan, state)

    ids = [json.loads(e["Detail"])["eventId"] for e in first.entries + again.entries]
    assert len(set(ids)) == 120 == record["published"]  # 60 exits + 60 joins: nothing lost
    resent = {i for i in ids if ids.count(i) > 1}
    half_sent = {json.loads(e["Detail"])["eventId"] for e in first.entries[sent_by_finished:]}
    assert resent == half_sent  # only the unfinished partition's events come again, with the same ids
    assert state.pointer(AUDIENCE).snapshot_id == "s2"  # type: ignore[union-attr]


def backfill(
    store: DirStore, state: SnapshotState, cfg: DestinationsConfig, snapshot_id: str, bus: Bus
) -> Any:
    request = BackfillRequest(
        bucket="bucket", audience_id=AUDIENCE, snapshot_id=snapshot_id, run_id=f"{snapshot_id}.bf"
    )
    plan = runner.prepare_backfill(store, request, cfg, state)
    if not isinstance(plan, RunPlan):
        return plan
    return diff_every_partition_and_commit(store, state, plan, bus)


def test_com_03_a_backfill_sends_the_applied_snapshot_to_the_newly_activating_instance_only(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    only_a = config(("marketo-a", "marketo", True), ("marketo-b", "marketo", False))
    first = run(
        store, state, put_snapshot("s1", [profile(n) for n in range(100)]), Bus(), cfg=only_a, target=16
    )
    both = config(("marketo-a", "marketo", True), ("marketo-b", "marketo", True))
    bus = Bus()
    record = backfill(store, state, both, "s1", bus)
    assert (record["status"], record["runId"], record["backfill"]) == ("APPLIED", "s1.bf", True)
    assert record["sent"] == {"marketo-b": 100} and record["members"] == 100
    details = bus.details()
    assert {tuple(d["targetInstances"]) for d in details} == {("marketo-b",)}
    assert {d["audiences"][0]["status"] for d in details} == {"existing"}
    assert {d["occurredAt"] for d in details} == {
        first["snapshotAt"].replace("+00:00", "Z")
    }  # the snapshot's time
    assert len(bus.by_status("existing")) == 100
    assert state.pointer(AUDIENCE).instances == ("marketo-a", "marketo-b")  # type: ignore[union-attr]
    assert state.run(AUDIENCE, "s1")["sent"] == {"marketo-a": 100}  # type: ignore[index]  # its own record
    assert backfill(store, state, both, "s1", Bus()).reason == "nothing_to_backfill"
    # the next snapshot diffs against the same membership: the backfill kept it in place
    later = run(
        store, state, put_snapshot("s2", [profile(n) for n in range(1, 101)], hours=1), Bus(), cfg=both
    )
    assert later["sent"] == {"marketo-a": 2, "marketo-b": 2}


def test_a_backfill_is_refused_without_an_applied_snapshot_or_once_a_later_one_applied(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    both = config(("marketo-a", "marketo", True), ("marketo-b", "marketo", True))
    assert backfill(store, state, both, "s1", Bus()).reason == "no_applied_snapshot"
    only_a = config(("marketo-a", "marketo", True), ("marketo-b", "marketo", False))
    run(store, state, put_snapshot("s1", [profile(n) for n in range(10)]), Bus(), cfg=only_a)
    run(store, state, put_snapshot("s2", [profile(n) for n in range(10)], hours=1), Bus(), cfg=only_a)
    bus = Bus()
    assert backfill(store, state, both, "s1", bus).reason == "older_than_applied"
    assert bus.entries == []


def test_com_08_progress_counts_partitions_done_and_changes_sent_while_a_run_goes(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    key = put_snapshot("s1", [profile(n) for n in range(100)])
    assert run_progress(store, state, AUDIENCE, "s1", destination_types=TYPES)["stage"] == "preparing"
    plan = runner.prepare(store, "bucket", key, TWO_OF_A_TYPE, state, target=16)
    assert isinstance(plan, RunPlan) and plan.bits >= 2
    half = (1 << plan.bits) // 2
    sent = 0
    for index in range(half):
        sent += runner.diff_partition(store, plan, index, Bus(), "bus")["sent"].get("rf", 0)
    progress = run_progress(store, state, AUDIENCE, "s1", destination_types=TYPES)
    assert (progress["stage"], progress["partitions"], progress["partitionsDone"]) == (
        "diffing",
        1 << plan.bits,
        half,
    )
    by_instance = {i["instance"]: i for i in progress["instances"]}
    assert by_instance["rf"]["sent"] == sent == by_instance["marketo-a"]["sent"]
    assert 0 < sent < 100 and by_instance["rf"]["pending"] == sent  # nothing delivered yet


def test_a_line_with_a_non_json_number_is_a_bad_line_never_sent_with_the_value_nulled(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    """NaN and Infinity are not JSON (Python's parser takes them; EventBridge and the vendors do not):
    such a line is bad, not a member whose score silently becomes null at the destination."""
    lines = [json.dumps(profile(n)) for n in range(4)]
    lines[1] = json.dumps(profile(1) | {"attributes": {"score": float("nan")}})  # writes NaN
    lines[2] = json.dumps(profile(2) | {"attributes": {"score": float("-inf")}})  # writes -Infinity
    bus = Bus()
    record = run(store, state, put_snapshot("s1", lines, gz=False), bus)
    assert (record["members"], record["badLines"]) == (2, 2)
    report = store.get_json(f"runs/{AUDIENCE}/s1/read-report.json")
    assert report["badLineSamples"] == [{"line": 2, "reason": "not_json"}, {"line": 3, "reason": "not_json"}]
    assert bus.by_status("realized") == {"person0@example.com", "person3@example.com"}


def shouted(n: int) -> dict[str, Any]:
    """profile(n) with its e-mail address as another system writes it: the same address."""
    member = profile(n)
    member["identities"]["email"] = f" Person{n}@EXAMPLE.com"
    return member


@pytest.mark.parametrize("namespace", [None, "email"])
def test_an_email_in_another_case_is_the_same_member_not_an_exit_and_a_join(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter, namespace: str | None
) -> None:
    """The order guard and the vendors take an address in any case as one person. Sent as an exit and a
    join with the same time, the pair would reach one entity in either order: the exit could win."""
    ns = {"identity_namespace": namespace}
    run(store, state, put_snapshot("s1", [profile(n) for n in range(20)], **ns), Bus())
    bus = Bus()
    members = [profile(n) for n in range(20)]
    members[7] = shouted(7)
    record = run(store, state, put_snapshot("s2", members, hours=1, **ns), bus)
    assert bus.by_status("exited") == set() and bus.by_status("realized") == set()
    assert [d["profile"]["identities"]["email"] for d in bus.details()] == [" Person7@EXAMPLE.com"]
    assert bus.details()[0]["audiences"][0]["status"] == "existing"  # its line changed: an update
    assert (record["removed"], record["added"], record["changed"]) == (0, 0, 1)


def test_the_same_email_twice_in_one_snapshot_in_two_cases_is_one_member_and_a_bad_line(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    bus = Bus()
    members = [profile(n) for n in range(10)] + [shouted(3)]
    record = run(store, state, put_snapshot("s1", members, identity_namespace="email"), bus)
    assert (record["members"], record["badLines"]) == (10, 1)
    assert len(bus.entries) == 10 * 1  # one event per member, each to both instances
    assert bus.by_status("realized") == {f"person{n}@example.com" for n in range(10)}  # the first line won


def test_duplicate_lines_are_named_by_their_line_numbers_in_the_run_record(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    """As the read report names the lines Prepare refused: the later lines of a member already seen, in
    any partition, up to 20 (numbers only, never values)."""
    members = [profile(n) for n in range(200)] + [shouted(3), profile(150), shouted(7)]  # lines 201-203
    members += [profile(n) for n in range(30)]  # lines 204-233: 30 more duplicates, 20 listed
    record = run(store, state, put_snapshot("s1", members, identity_namespace="email"), Bus())
    assert (record["members"], record["duplicates"], record["badLines"]) == (200, 33, 33)
    assert record["duplicateLines"] == list(range(201, 221))


def test_a_run_that_died_in_commit_after_the_pointer_moved_resumes_to_its_record(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commit moves the pointer, then records the run and deletes the superseded membership. A commit
    that dies in between, resumed as documented (the same manifest again), must finish that work, not
    answer `already_applied`: without its record the run is never reconciled, and the old membership
    (personal data) stays."""
    run(store, state, put_snapshot("s1", [profile(n) for n in range(40)]), Bus())
    key = put_snapshot("s2", [profile(n) for n in range(5, 45)], hours=1)
    plan = runner.prepare(store, "bucket", key, TWO_OF_A_TYPE, state, target=16)
    assert isinstance(plan, RunPlan)
    first = Bus()
    for index in range(1 << plan.bits):
        runner.diff_partition(store, plan, index, first, "bus")

    def dies(*args: Any) -> int:
        raise RuntimeError("the commit task died")

    with monkeypatch.context() as patched:
        patched.setattr(snapshot_erasure, "reapply", dies)
        with pytest.raises(RuntimeError):
            runner.commit(store, plan, state)
    assert state.pointer(AUDIENCE).snapshot_id == "s2"  # type: ignore[union-attr]
    assert state.run(AUDIENCE, "s2") is None
    assert list(store.keys(f"state/{AUDIENCE}/s1/"))  # the superseded membership is still there

    again = Bus()
    resumed = runner.prepare(store, "bucket", key, TWO_OF_A_TYPE, state, target=16)
    assert isinstance(resumed, RunPlan), resumed
    for index in range(1 << resumed.bits):
        runner.diff_partition(store, resumed, index, again, "bus")
    record = runner.commit(store, resumed, state)
    assert again.entries == []  # every partition was done: nothing sent twice
    assert (record["status"], record["added"], record["removed"]) == ("APPLIED", 5, 5)
    assert record["sent"] == {"marketo-a": 10, "rf": 10} and record["previousSnapshotId"] == "s1"
    assert state.run(AUDIENCE, "s2")["status"] == "APPLIED"  # type: ignore[index]
    assert list(store.keys(f"state/{AUDIENCE}/s1/")) == []  # the superseded membership is gone
    # once recorded, the same manifest again is the no-op it was
    assert runner.prepare(store, "bucket", key, TWO_OF_A_TYPE, state).reason == "already_applied"  # type: ignore[union-attr]


def test_an_empty_audience_applies_sends_nothing_and_its_next_snapshot_is_a_diff(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    """An empty members file (the audience has nobody yet) is a valid snapshot; emptying an audience later
    sends every member's exit."""
    bus = Bus()
    empty = run(store, state, put_snapshot("s0", []), bus)
    assert (empty["status"], empty["members"], empty["published"], empty["sent"]) == ("APPLIED", 0, 0, {})
    first = run(store, state, put_snapshot("s1", [profile(n) for n in range(5)], hours=1), bus)
    assert first["sent"] == {"marketo-a": 5, "rf": 5} and bus.by_status("realized") == {
        f"person{n}@example.com" for n in range(5)
    }
    gone = Bus()
    emptied = run(store, state, put_snapshot("s2", [], gz=False, hours=2), gone)
    assert (emptied["members"], emptied["removed"]) == (0, 5)
    assert gone.by_status("exited") == {f"person{n}@example.com" for n in range(5)}


def test_a_run_resumed_after_the_config_changed_keeps_its_targets_and_the_new_instance_gets_a_backfill(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    """An instance that starts activating the audience while a run is interrupted must not count as
    having received the snapshot when it got only the partitions diffed after the resume."""
    only_a = config(("marketo-a", "marketo", True), ("marketo-b", "marketo", False))
    both = config(("marketo-a", "marketo", True), ("marketo-b", "marketo", True))
    run(store, state, put_snapshot("s1", [profile(n) for n in range(100)]), Bus(), cfg=only_a, target=16)
    key = put_snapshot("s2", [profile(n) for n in range(100)], hours=1)
    plan = runner.prepare(store, "bucket", key, only_a, state, target=16)
    assert isinstance(plan, RunPlan) and plan.bits >= 2
    runner.diff_partition(store, plan, 0, Bus(), "bus")  # then it died; the config is pushed meanwhile
    resumed = runner.prepare(store, "bucket", key, both, state, target=16)
    assert isinstance(resumed, RunPlan)
    bus = Bus()
    for index in range(1 << resumed.bits):
        runner.diff_partition(store, resumed, index, bus, "bus")
    runner.commit(store, resumed, state)
    assert bus.entries == []  # nothing changed for marketo-a; marketo-b was not a target of this run
    assert state.pointer(AUDIENCE).instances == ("marketo-a",)  # type: ignore[union-attr]
    late = Bus()
    record = backfill(store, state, both, "s2", late)
    assert record["sent"] == {"marketo-b": 100}  # every member, from the applied membership


# What each destination type takes (the manifest's `entity`; the Prepare task reads it from its
# environment, DESTINATION_ENTITIES, which `make template` writes from the manifest).
ENTITIES = {d.type: d.entity for d in discovery.destinations().destinations}


@pytest.mark.parametrize("entity", ["profile", "account"])
def test_a_snapshot_of_another_entity_than_its_destinations_take_is_refused(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter, entity: str
) -> None:
    """Profile changes match no account destination's rule (nor the reverse): sent, they would never
    arrive, pending until the deadline. Refused at once instead, naming the instances."""
    accounts = config(("bombora-abm", "bombora", True))
    profiles = config(("marketo-a", "marketo", True))
    cfg = profiles if entity == "account" else accounts
    key = put_snapshot("s1", [profile(n) for n in range(3)] if entity == "profile" else
                       [{"identities": {"domain": f"d{n}.example"}} for n in range(3)], entity=entity)  # fmt: skip
    result = runner.prepare(store, "bucket", key, cfg, state, entities=ENTITIES)
    assert isinstance(result, runner.Refusal) and result.reason == "entity_mismatch", result
    assert cfg.destinations[0].id in result.detail
    assert state.pointer(AUDIENCE) is None and not (store.root / "runs").exists()
    matching = accounts if entity == "account" else profiles
    assert isinstance(runner.prepare(store, "bucket", key, matching, state, entities=ENTITIES), RunPlan)


def test_a_backfill_to_an_instance_of_the_other_entity_is_refused(
    store: DirStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    profiles = config(("marketo-a", "marketo", True))
    run(store, state, put_snapshot("s1", [profile(n) for n in range(3)]), Bus(), cfg=profiles)
    with_accounts = config(("marketo-a", "marketo", True), ("bombora-abm", "bombora", True))
    request = BackfillRequest(bucket="bucket", audience_id=AUDIENCE, snapshot_id="s1", run_id="s1.bf")
    refused = runner.prepare_backfill(store, request, with_accounts, state, ENTITIES)
    assert isinstance(refused, runner.Refusal) and refused.reason == "entity_mismatch"
    assert "bombora-abm" in refused.detail

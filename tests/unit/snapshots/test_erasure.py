"""The snapshot bucket forgets a person on request: `Profile Erasure Requested` removes them from every
audience's stored membership (state/), reading and rewriting only the partition their key falls in when
the audience is keyed by an identity the request names, and a snapshot taken before the erasure cannot
bring them back when it commits later. The answer is in the erasure ledger (`activation erasure status`)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import pytest

from activation_core import erasure as ledger
from activation_core.models.config import DestinationsConfig
from snapshots import erasure, runner
from snapshots.partitions import read_rows
from snapshots.plan import RunPlan
from snapshots.state import SnapshotState
from snapshots.store import DirStore
from tests.support import sqs_record
from tests.unit.snapshots.conftest import AUDIENCE, T0, SnapshotWriter, profile
from tests.unit.snapshots.test_runner import Bus, run

REQUEST = json.loads(
    (
        Path(__file__).resolve().parents[3] / "events" / "erasure" / "profile-erasure-requested.json"
    ).read_text()
)
BY_EMAIL = "aud-by-email"  # keyed by `identityNamespace: email`; AUDIENCE is keyed by all identities
TWO_AUDIENCES = DestinationsConfig.model_validate(
    {
        "destinations": [
            {
                "id": "marketo-a",
                "type": "marketo",
                "secret": "s/marketo-a",
                "audiences": [{"id": AUDIENCE, "name": "Expo"}, {"id": BY_EMAIL, "name": "By e-mail"}],
            }
        ]
    }
)
ERASED_AT = (T0 + timedelta(minutes=90)).timestamp()


class CountingStore(DirStore):
    """The local bucket, counting the partitions read and written."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.opened: list[str] = []
        self.uploaded: list[str] = []
        self.before_upload: Callable[[str], None] = lambda key: None

    def open(self, key: str) -> IO[bytes]:
        self.opened.append(key)
        return super().open(key)

    def upload(self, key: str, path: Path) -> None:
        self.before_upload(key)
        self.uploaded.append(key)
        super().upload(key, path)

    def reset(self) -> None:
        self.opened, self.uploaded = [], []


@pytest.fixture
def store(tmp_path: Path) -> CountingStore:
    return CountingStore(tmp_path / "bucket")


def emails(store: DirStore, state: SnapshotState, audience_id: str) -> set[str]:
    """The e-mail addresses of the audience's stored (current) membership."""
    pointer = state.pointer(audience_id)
    assert pointer is not None
    found: set[str] = set()
    for path in sorted((store.root / pointer.prefix).glob("part-*.tsv.gz")):
        for row in read_rows(store, f"{pointer.prefix}{path.name}"):
            found.add(json.loads(row.line)["identities"]["email"])
    return found


def applied(store: DirStore, state: SnapshotState, put: SnapshotWriter, n: int = 400) -> None:
    """Both audiences applied with person0..person{n-1}, in 8 partitions (target 64)."""
    people = [profile(i) for i in range(n)]
    run(store, state, put("all-1", people), Bus(), cfg=TWO_AUDIENCES)
    put_by_email = put("email-1", people, audience_id=BY_EMAIL, identity_namespace="email")
    run(store, state, put_by_email, Bus(), cfg=TWO_AUDIENCES)


def diffed(store: DirStore, state: SnapshotState, manifest_key: str) -> RunPlan:
    """A snapshot run prepared and diffed, not committed yet."""
    plan = runner.prepare(store, "bucket", manifest_key, TWO_AUDIENCES, state, target=64)
    assert isinstance(plan, RunPlan)
    for index in range(1 << plan.bits):
        runner.diff_partition(store, plan, index, Bus(), "bus")
    return plan


def two_failed_runs(store: DirStore, state: SnapshotState, put: SnapshotWriter) -> None:
    """f0 and f1 each exit person7 and person8 and fail (f1's Prepare folds f0): the folded set holds both."""
    for k, hours in ((0, 3), (1, 4)):
        plan = diffed(
            store, state, put(f"f{k}", [profile(i) for i in range(100) if i not in (7, 8)], hours=hours)
        )
        state.release(AUDIENCE, plan.run_key)


def folded_emails(store: DirStore, prefix: str) -> set[str]:
    """The e-mail addresses in a folded set (runs/<audience>/<run>/unsettled/<run>/)."""
    return {
        json.loads(row.line)["identities"]["email"]
        for path in sorted((store.root / prefix).glob("part-*.tsv.gz"))
        for row in read_rows(store, f"{prefix}{path.name}")
    }


def test_an_erasure_removes_the_person_from_every_audiences_membership_and_only_them(
    store: CountingStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    applied(store, state, put_snapshot)
    store.reset()
    # The request names the e-mail address in another case, and only it.
    erased = erasure.erase_everywhere(store, state, "dsr-1", {"email": "Person7@Example.com"}, now=ERASED_AT)
    assert erased == 2
    # The e-mail-keyed audience: its first row (which shows the keying) and the person's partition read.
    assert len({k for k in store.opened if BY_EMAIL in k}) <= 2
    everyone_else = {f"person{i}@example.com" for i in range(400)} - {"person7@example.com"}
    assert emails(store, state, AUDIENCE) == everyone_else
    assert emails(store, state, BY_EMAIL) == everyone_else
    # One partition rewritten per audience (of 8).
    assert len([k for k in store.uploaded if BY_EMAIL in k]) == 1
    assert len([k for k in store.uploaded if f"/{AUDIENCE}/" in k]) == 1


def test_an_erased_person_left_upstream_too_gets_no_exit_and_a_new_snapshot_still_diffs_the_others(
    store: CountingStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    applied(store, state, put_snapshot, n=50)
    erasure.erase_everywhere(store, state, "dsr-1", {"crmId": "CRM-7"}, now=ERASED_AT)
    bus = Bus()
    # The upstream dropped person7 (erased there first) and person8 left the audience.
    remaining = [profile(i) for i in range(50) if i not in {7, 8}]
    run(store, state, put_snapshot("all-2", remaining, hours=2), bus, cfg=TWO_AUDIENCES)
    assert bus.by_status("exited") == {"person8@example.com"}
    assert len(bus.entries) == 1


def test_a_snapshot_taken_before_the_erasure_does_not_bring_the_person_back_when_it_commits_after(
    store: CountingStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    applied(store, state, put_snapshot, n=100)
    # s2 was taken at T0+1h (before the erasure at T0+1h30); it is prepared when the erasure runs and
    # writes its membership after it (from its own partitions under runs/).
    plan = runner.prepare(
        store, "bucket", put_snapshot("all-2", [profile(i) for i in range(100)], hours=1), TWO_AUDIENCES, state,
        target=64,
    )  # fmt: skip
    assert isinstance(plan, RunPlan)
    erasure.erase_everywhere(store, state, "dsr-1", {"email": "person7@example.com"}, now=ERASED_AT)
    for index in range(1 << plan.bits):
        runner.diff_partition(store, plan, index, Bus(), "bus")
    record = runner.commit(store, plan, state)
    assert record["status"] == "APPLIED" and record["erasedAgain"] == 1
    assert "person7@example.com" not in emails(store, state, AUDIENCE)
    # A snapshot taken after the erasure that lists the person again: the upstream has them, they are back.
    run(
        store,
        state,
        put_snapshot("all-3", [profile(i) for i in range(100)], hours=2),
        Bus(),
        cfg=TWO_AUDIENCES,
    )
    assert "person7@example.com" in emails(store, state, AUDIENCE)


def test_an_erasure_racing_a_commit_erases_the_new_membership_and_leaves_no_copy_of_the_old(
    store: CountingStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    applied(store, state, put_snapshot, n=100)
    plan = diffed(store, state, put_snapshot("all-2", [profile(i) for i in range(100)], hours=3))
    old = state.pointer(AUDIENCE)
    assert old is not None
    committed: list[dict[str, Any]] = []

    def commit_first(key: str) -> None:
        # The erasure has read the old partition; s2 (taken after the erasure: nothing to apply again)
        # commits and deletes the old membership before the erasure writes the partition back.
        if key.startswith(old.prefix) and not committed:
            committed.append(runner.commit(store, plan, state))

    store.before_upload = commit_first
    erasure.erase_everywhere(store, state, "dsr-1", {"email": "person7@example.com"}, now=ERASED_AT)
    assert committed[0]["status"] == "APPLIED" and "erasedAgain" not in committed[0]
    assert "person7@example.com" not in emails(store, state, AUDIENCE)
    assert not list((store.root / old.prefix).glob("*"))  # the superseded membership is not written again


def test_a_run_not_committed_loses_the_person_too_and_a_superseded_membership_left_behind_is_deleted(
    store: CountingStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    applied(store, state, put_snapshot, n=100)
    first = state.pointer(AUDIENCE)
    assert first is not None
    # s2 is diffed but not committed (in flight, or failed and resumed later); taken after the erasure,
    # so its commit has nothing to apply again: the erasure itself must have reached its partitions.
    plan = diffed(store, state, put_snapshot("all-2", [profile(i) for i in range(100)], hours=3))
    erasure.erase_everywhere(store, state, "dsr-1", {"email": "person7@example.com"}, now=ERASED_AT)
    assert "erasedAgain" not in runner.commit(store, plan, state)
    assert emails(store, state, AUDIENCE) == {f"person{i}@example.com" for i in range(100)} - {
        "person7@example.com"
    }
    # A superseded membership a commit did not get to delete (applied once, no longer current).
    leftover = store.root / first.prefix / "part-0000.tsv.gz"
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes((store.root / plan.state_prefix / "part-0000.tsv.gz").read_bytes())
    erasure.erase_everywhere(store, state, "dsr-2", {"email": "person8@example.com"}, now=ERASED_AT)
    assert not leftover.exists()


def test_an_erasure_removes_the_person_from_the_folded_set_of_failed_runs_to_re_check(
    store: CountingStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    """The folded set (runs/<audience>/<run>/unsettled/) holds the lines of members failed runs may have
    changed; each fold copies it forward, so while runs keep failing it outlived the runs/ retention.
    The erasure rewrites it too (the partitions of a listed run not yet folded are left: docs/snapshots.md)."""
    applied(store, state, put_snapshot, n=100)
    two_failed_runs(store, state, put_snapshot)
    folded = state.audience(AUDIENCE)[1].recheck
    assert folded is not None

    assert folded_emails(store, folded.prefix) == {"person7@example.com", "person8@example.com"}
    erasure.erase_everywhere(store, state, "dsr-1", {"email": "person7@example.com"}, now=ERASED_AT)
    assert folded_emails(store, folded.prefix) == {"person8@example.com"}


def test_the_answer_is_listed_per_request_erased_not_found_and_kept_erased_on_redelivery(
    store: CountingStore, state: SnapshotState, put_snapshot: SnapshotWriter
) -> None:
    applied(store, state, put_snapshot, n=20)
    ada = copy.deepcopy(REQUEST)
    ada["detail"]["profile"]["identities"] = {"email": "person3@example.com"}
    nobody = copy.deepcopy(REQUEST)
    nobody["detail"]["requestId"] = "dsr-nobody"
    deps = erasure.SnapshotErasureDeps(store, state, retention_days=400, max_receive_count=3)
    for event in (ada, nobody, ada):  # the last one redelivered: nothing left, the answer stays erased
        erasure.handle(_sqs(event), deps)
    (answer,) = ledger.read(state.dynamodb, "state", "dsr-2026-0001", [ledger.STACK])
    assert (answer.instance_id, answer.outcome, answer.detail) == (
        "snapshot-memberships",
        "erased",
        "audience memberships forgotten: 2",
    )
    assert [a.outcome for a in ledger.read(state.dynamodb, "state", "dsr-nobody", [ledger.STACK])] == [
        "not_found"
    ]


def test_the_erasure_marker_holds_digests_and_keys_only_and_expires_with_the_membership_retention(
    store: CountingStore, state: SnapshotState
) -> None:
    erasure.erase_everywhere(
        state=state,
        store=store,
        request_id="dsr-1",
        identities={"email": "ada@example.com"},
        retention_days=30,
        now=ERASED_AT,
    )
    item = state.dynamodb.get_item(
        TableName="state", Key={"pk": {"S": erasure.MARKER}, "sk": {"S": "dsr-1"}}
    )["Item"]
    assert "ada@example.com" not in json.dumps(item).lower()
    assert int(item["ttl"]["N"]) == int(ERASED_AT + 30 * 86400)


def _sqs(event: dict[str, Any]) -> Any:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    return SQSRecord(sqs_record(event))


def test_an_erasure_during_a_prepares_fold_does_not_leave_the_person_in_the_new_folded_set(
    store: CountingStore, state: SnapshotState, put_snapshot: SnapshotWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The review's finding: the erasure reads the audience's folded set once, without the lease, while a
    Prepare copies that set forward under its own prefix (minutes for a large one). An erasure that read
    the set before the Prepare listed the new copy erased the old copy only, and the person stayed in the
    new one. The Prepare applies the erasures recorded since its fold started to the copy it wrote."""
    applied(store, state, put_snapshot, n=100)
    two_failed_runs(store, state, put_snapshot)
    set_pending = state.set_pending

    def erasure_in_the_fold(*args: Any, **kwargs: Any) -> None:
        # The fold has copied the set forward; the erasure (its marker at the real time: after the fold
        # started) reads the set the pointer still names and erases that copy only.
        erasure.erase_everywhere(store, state, "dsr-1", {"email": "person7@example.com"})
        set_pending(*args, **kwargs)

    monkeypatch.setattr(state, "set_pending", erasure_in_the_fold)
    plan = diffed(store, state, put_snapshot("s2", [profile(i) for i in range(100)], hours=5))
    folded = plan.recheck
    assert folded is not None and folded.runs == 2 and folded.prefix.startswith(plan.run_prefix)
    assert folded_emails(store, folded.prefix) == {"person8@example.com"}


def test_a_prepare_retried_after_it_listed_its_folded_set_still_applies_the_erasure_to_it(
    store: CountingStore, state: SnapshotState, put_snapshot: SnapshotWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same erasure during the fold, and the Prepare fails after listing its copy (before applying
    the markers): its retry folds nothing more (the listed run is its own) but still erases the copy."""
    applied(store, state, put_snapshot, n=100)
    two_failed_runs(store, state, put_snapshot)
    set_pending, reapply = state.set_pending, erasure.reapply_to_folded

    def erasure_in_the_fold(*args: Any, **kwargs: Any) -> None:
        erasure.erase_everywhere(store, state, "dsr-1", {"email": "person7@example.com"})
        set_pending(*args, **kwargs)
        monkeypatch.setattr(state, "set_pending", set_pending)

    def unavailable(*args: Any) -> int:
        monkeypatch.setattr(erasure, "reapply_to_folded", reapply)
        raise RuntimeError("state table unavailable")

    monkeypatch.setattr(state, "set_pending", erasure_in_the_fold)
    monkeypatch.setattr(erasure, "reapply_to_folded", unavailable)
    key = put_snapshot("s2", [profile(i) for i in range(100)], hours=5)
    with pytest.raises(RuntimeError):
        runner.prepare(store, "bucket", key, TWO_AUDIENCES, state, target=64)
    plan = diffed(store, state, key)  # the retry
    folded = plan.recheck
    assert folded is not None and folded.prefix.startswith(plan.run_prefix)
    assert folded_emails(store, folded.prefix) == {"person8@example.com"}

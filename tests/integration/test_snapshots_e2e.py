"""Audience snapshots end to end in the local stack: members file + manifest written to the snapshot
bucket (S3 -> EventBridge -> Step Functions), the real statemachine.asl.json with its Distributed Map in
moto's interpreter, its tasks in warm Lambda subprocesses, the changes on the bus, the destinations'
queues, functions and fake vendors.

The runs build on each other (module-scoped fixtures, in order): a backfill of `SNAPSHOT_MEMBERS`
members of the expo audience (activated on RainFocus, Marketo and Outreach; a second Marketo instance
does not activate it); then a snapshot with 10% removed and 10% added.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from local import sfn_fast_time
from local.harness import STACK_NAME, ActivationHarness
from snapshots.files import manifest_for, write_manifest, write_members
from snapshots.reconcile import outcomes_of
from snapshots.state import Pending, SnapshotState
from tests.support import calls_their_roles_refuse, cli_snapshot_push, example_config, instance_of
from tests.support import snapshot_member as member

pytestmark = pytest.mark.integration

AUDIENCE = "aud-expo-invitees"
SNAPSHOT_MEMBERS = int(os.environ.get("SNAPSHOT_MEMBERS", "200"))  # 10,000 in make soak
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
# Every instance of the example config that activates the audience (one per destination type).
TYPES = {
    d["id"]: d["type"]
    for d in example_config()["destinations"]
    if any(a["id"] == AUDIENCE for a in d["audiences"])
}
INSTANCES = tuple(TYPES)
# The module sends Outreach about 1.2 x SNAPSHOT_MEMBERS PATCHes (backfill, 10%/10% diff, s4, s5). Its user
# may make 10,000 an hour (the fake enforces it; the connector stops 50 short, `remainingReserve`): a
# bigger run waits for the hour's reset, so its drains must outlast it (an idle round is a 1-s poll).
OUTREACH_HOURLY_BUDGET = 10_000 - 50
DRAIN_ROUNDS = 200 if SNAPSHOT_MEMBERS * 1.25 < OUTREACH_HOURLY_BUDGET else 4_500


def config_with_a_second_marketo() -> dict[str, Any]:
    config = example_config()
    other = json.loads(json.dumps(instance_of(config, "marketo")))
    other.update(
        id="marketo-other",
        audiences=[
            {"id": "aud-other", "name": "Other", "extras": {"listId": 1002}},
            {"id": "aud-third", "name": "Third", "extras": {"listId": 1003}},
        ],
    )
    config["destinations"].append(other)
    return config


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ActivationHarness]:
    applied = sfn_fast_time.applied()
    sfn_fast_time.apply()
    config = config_with_a_second_marketo()
    with ActivationHarness(workdir=tmp_path_factory.mktemp("snapshots"), config=config) as harness:
        outreach = harness.fake("outreach")
        for n in range(SNAPSHOT_MEMBERS * 2):
            outreach.add_prospect(50_000 + n)
        yield harness
    if not applied:
        sfn_fast_time.restore()


def upload(harness: ActivationHarness, tmp: Path, snapshot_id: str, members: list[int], hours: int) -> str:
    """Members file, then its manifest (the manifest's arrival starts the run), under incoming/."""
    path = tmp / f"{snapshot_id}.jsonl.gz"
    write_members(path, (member(n) for n in members))
    manifest = manifest_for(
        path, audience_id=AUDIENCE, audience_name="Expo 2026 invitees", snapshot_id=snapshot_id,
        snapshot_at=T0 + timedelta(hours=hours), identity_namespace="email",
    )  # fmt: skip
    manifest_file = write_manifest(path, manifest)
    s3 = harness.stack.client("s3")
    bucket = harness.outputs["SnapshotBucketName"]
    s3.upload_file(str(path), bucket, f"incoming/{AUDIENCE}/{path.name}")
    s3.upload_file(str(manifest_file), bucket, f"incoming/{AUDIENCE}/{manifest_file.name}")
    return snapshot_id


def run_to_end(harness: ActivationHarness, started_before: int) -> dict[str, Any]:
    sfn = harness.stack.client("stepfunctions")
    executions = sfn.list_executions(stateMachineArn=harness.outputs["SnapshotStateMachineArn"])["executions"]
    assert len(executions) == started_before + 1, "the manifest's upload started exactly one execution"
    newest = max(executions, key=lambda e: e["startDate"])
    execution = harness.stack.wait_execution(newest["executionArn"], max_rounds=12_000)
    harness.drain(max_rounds=DRAIN_ROUNDS)
    return execution


def reconcile_now(harness: ActivationHarness) -> list[dict[str, Any]]:
    """What the 15-minute schedule does (moto does not fire schedules)."""
    response = harness.stack.client("lambda").invoke(
        FunctionName=harness.outputs["SnapshotReconcileFunctionName"], Payload=b"{}"
    )
    assert "FunctionError" not in response, response["Payload"].read()
    final: list[dict[str, Any]] = json.loads(response["Payload"].read())["final"]
    return final


def run_record(harness: ActivationHarness, snapshot_id: str) -> dict[str, Any]:
    state = SnapshotState(harness.outputs["StateTableName"], harness.stack.client("dynamodb"))
    (record,) = [
        r for r in state.runs(AUDIENCE) if r.get("snapshotId") == snapshot_id and r["status"] != "REFUSED"
    ]
    return record


def ledger_totals(harness: ActivationHarness) -> dict[str, dict[str, int]]:
    out = {}
    for instance in (*INSTANCES, "marketo-other"):
        kind = TYPES.get(instance, "marketo")
        out[instance] = harness.ledger(kind, f"{kind}#{instance}#{AUDIENCE}")
    return out


@pytest.fixture(scope="module")
def backfill(stack: ActivationHarness, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("files")
    before = ledger_totals(stack)
    upload(stack, tmp, "s1", list(range(SNAPSHOT_MEMBERS)), 0)
    execution = run_to_end(stack, 0)
    final = reconcile_now(stack)
    return {
        "execution": execution,
        "final": final,
        "record": run_record(stack, "s1"),
        "before": before,
        "after": ledger_totals(stack),
        "tmp": tmp,
    }


@pytest.fixture(scope="module")
def second(stack: ActivationHarness, backfill: dict[str, Any]) -> dict[str, Any]:
    tenth = SNAPSHOT_MEMBERS // 10
    members = list(range(tenth, SNAPSHOT_MEMBERS + tenth))
    before = ledger_totals(stack)
    upload(stack, backfill["tmp"], "s2", members, 1)
    execution = run_to_end(stack, 1)
    return {
        "execution": execution,
        "record": run_record(stack, "s2"),
        "before": before,
        "after": ledger_totals(stack),
    }


def settled(counts: dict[str, int]) -> int:
    return counts.get("delivered", 0) + counts.get("skipped", 0) + counts.get("rejected", 0)


def test_com_08_a_backfill_reaches_every_activating_instance_one_outcome_per_member(
    backfill: dict[str, Any],
) -> None:
    assert backfill["execution"]["status"] == "SUCCEEDED", backfill["execution"]
    record = backfill["record"]
    assert record["status"] == "APPLIED"
    assert record["members"] == SNAPSHOT_MEMBERS
    assert record["sent"] == dict.fromkeys(INSTANCES, SNAPSHOT_MEMBERS)
    for instance in INSTANCES:
        assert settled(backfill["after"][instance]) == SNAPSHOT_MEMBERS, (
            instance,
            backfill["after"][instance],
        )


def test_com_02_only_the_instance_that_activates_the_audience_receives_its_backfill(
    stack: ActivationHarness, backfill: dict[str, Any]
) -> None:
    assert backfill["after"]["marketo-other"] == {}
    assert record_instances(backfill["record"]) == set(INSTANCES)
    assert settled(backfill["after"]["marketo-expo2026"]) == SNAPSHOT_MEMBERS


def test_com_08_the_backfill_reconciles_members_against_what_reached_each_destination(
    backfill: dict[str, Any],
) -> None:
    assert [(f["snapshotId"], f["undeliveredShare"]) for f in backfill["final"]] == [("s1", 0.0)]
    reconciliation = backfill["record"]["reconciliation"]
    assert {i["instance"] for i in reconciliation["instances"]} == set(INSTANCES)
    for instance in reconciliation["instances"]:
        assert instance["members"] == instance["sent"] == SNAPSHOT_MEMBERS
        assert instance["delivered"] + instance["skipped"] + instance["rejected"] == SNAPSHOT_MEMBERS
        assert instance["pending"] == 0
    assert backfill["record"]["reconciledAt"]


def record_instances(record: dict[str, Any]) -> set[str]:
    return set(record["targets"]["current"])


def test_com_08_a_second_snapshot_sends_exactly_the_10_percent_exits_and_adds(second: dict[str, Any]) -> None:
    tenth = SNAPSHOT_MEMBERS // 10
    assert second["execution"]["status"] == "SUCCEEDED", second["execution"]
    record = second["record"]
    assert (record["added"], record["removed"], record["changed"]) == (tenth, tenth, 0)
    assert record["sent"] == dict.fromkeys(INSTANCES, 2 * tenth)
    for instance in INSTANCES:
        delta = settled(second["after"][instance]) - settled(second["before"][instance])
        assert delta == 2 * tenth, instance


def test_every_call_the_snapshot_functions_made_is_one_their_roles_allow(
    stack: ActivationHarness, second: dict[str, Any]
) -> None:
    """Prepare, diff, commit and reconcile (and the destinations the changes reached), each against its
    own role: the S3 prefixes and state keys a snapshot run uses are the ones AWS would allow."""
    functions = ("snapshot-prepare", "snapshot-diff", "snapshot-commit", "snapshot-reconcile")
    assert calls_their_roles_refuse(stack, *functions) == []


@pytest.fixture(scope="module")
def pushed_by_the_cli(
    stack: ActivationHarness, second: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """`activation snapshot push` of the same membership as s2: a snapshot that changes nothing."""
    from typer.testing import CliRunner

    from activation_cli.main import app

    tenth = SNAPSHOT_MEMBERS // 10
    path = tmp_path_factory.mktemp("cli") / "members.jsonl"
    write_members(path, (member(n) for n in range(tenth, SNAPSHOT_MEMBERS + tenth)))
    runner = CliRunner()
    pushed = cli_snapshot_push(path, AUDIENCE, "s3", STACK_NAME)
    status = runner.invoke(
        app, ["snapshot", "status", "--stack", STACK_NAME, "--json"], catch_exceptions=False
    )
    overall = runner.invoke(app, ["status", "--stack", STACK_NAME, "--json"], catch_exceptions=False)
    return {
        "push": (pushed.exit_code, json.loads(pushed.stdout)),
        "status": json.loads(status.stdout),
        "overall": json.loads(overall.stdout),
    }


def test_com_08_cli_push_of_an_unchanged_membership_sends_nothing(pushed_by_the_cli: dict[str, Any]) -> None:
    code, pushed = pushed_by_the_cli["push"]
    assert code == 0, pushed
    assert pushed["status"] == "SUCCEEDED"
    assert pushed["record"]["status"] == "APPLIED"
    assert (pushed["record"]["published"], pushed["record"]["unchanged"]) == (0, SNAPSHOT_MEMBERS)


def test_com_08_cli_status_shows_every_run_and_audience_size_next_to_deliveries(
    pushed_by_the_cli: dict[str, Any],
) -> None:
    runs = {(r["snapshotId"], r["status"]) for r in pushed_by_the_cli["status"]["runs"]}
    assert {("s1", "APPLIED"), ("s2", "APPLIED"), ("s3", "APPLIED")} <= runs
    marketo = next(d for d in pushed_by_the_cli["overall"]["destinations"] if d["type"] == "marketo")
    instance = next(i for i in marketo["instances"] if i["id"] == "marketo-expo2026")
    (audience,) = [a for a in instance["audiences"] if a["id"] == AUDIENCE]
    assert audience["members"] == SNAPSHOT_MEMBERS


def invoke(harness: ActivationHarness, output: str, payload: dict[str, Any]) -> dict[str, Any]:
    response = harness.stack.client("lambda").invoke(
        FunctionName=harness.outputs[output], Payload=json.dumps(payload).encode()
    )
    assert "FunctionError" not in response, response["Payload"].read()
    result: dict[str, Any] = json.loads(response["Payload"].read())
    return result


def prepare_directly(harness: ActivationHarness, bucket: str, key: str, execution: str) -> dict[str, Any]:
    """Prepare as the state machine invokes it, for an execution named `execution` (the lease's owner)."""
    request = {"request": {"bucket": bucket, "manifestKey": key}, "execution": execution}
    return invoke(harness, "SnapshotPrepareFunctionName", request)


def diff_directly(harness: ActivationHarness, prepared: dict[str, Any]) -> None:
    for index in range(1 << prepared["plan"]["bits"]):
        payload = {"partition": index, "plan": prepared["plan"], "owner": prepared["owner"]}
        invoke(harness, "SnapshotDiffFunctionName", payload)


def fail_directly(harness: ActivationHarness, prepared: dict[str, Any]) -> dict[str, Any]:
    """What the state machine's failure path (RecordFailure) does after a failed Map or Commit."""
    payload = {"prepared": prepared, "error": {"Error": "States.TaskFailed"}}
    return invoke(harness, "SnapshotCommitFunctionName", payload)


def stage_unannounced(
    harness: ActivationHarness, folder: Path, snapshot_id: str, members: list[int], minutes: int, *,
    audience: tuple[str, str] = (AUDIENCE, "Expo 2026 invitees"),
) -> tuple[str, str]:  # fmt: skip
    """Members file and manifest outside incoming/ (nothing starts until announced); (bucket, key)."""
    path = folder / f"{snapshot_id}.jsonl.gz"
    write_members(path, (member(n) for n in members))
    manifest = manifest_for(path, audience_id=audience[0], audience_name=audience[1], snapshot_id=snapshot_id,
                            snapshot_at=datetime.now(UTC) + timedelta(minutes=minutes), identity_namespace="email")  # fmt: skip
    manifest_file = write_manifest(path, manifest)
    s3, bucket = harness.stack.client("s3"), harness.outputs["SnapshotBucketName"]
    s3.upload_file(str(path), bucket, f"announced/{path.name}")
    s3.upload_file(str(manifest_file), bucket, f"announced/{manifest_file.name}")
    return bucket, f"announced/{manifest_file.name}"


def announce(harness: ActivationHarness, bucket: str, key: str) -> None:
    """The `Audience Snapshot Ready` event an upstream system publishes for a snapshot written elsewhere."""
    harness.publish([{"source": "segmentation.snapshots", "detail-type": "Audience Snapshot Ready",
                      "detail": {"bucket": bucket, "manifestKey": key}}])  # fmt: skip


@pytest.fixture(scope="module")
def interrupted(
    stack: ActivationHarness, pushed_by_the_cli: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """s4 (5 members out, 5 in) dies after its partitions were diffed and sent, before Commit; then the
    same manifest is announced by an `Audience Snapshot Ready` event and the workflow runs it again."""
    tenth = SNAPSHOT_MEMBERS // 10
    members = list(range(tenth + 5, SNAPSHOT_MEMBERS + tenth + 5))
    bucket, key = stage_unannounced(stack, tmp_path_factory.mktemp("s4"), "s4", members, minutes=1)
    # (later than s3, which `snapshot push` stamped with the current time)
    before = ledger_totals(stack)
    # The first attempt: Prepare and every partition's diff ran (changes sent), then it failed (its
    # Commit, after its retries: the failure path gives the audience back).
    prepared = prepare_directly(stack, bucket, key, "s4-first-attempt")
    diff_directly(stack, prepared)
    fail_directly(stack, prepared)
    stack.drain()
    after_first = ledger_totals(stack)
    # Resumed: the same manifest announced on the bus.
    announce(stack, bucket, key)
    execution = run_to_end(stack, 3)
    return {
        "execution": execution,
        "record": run_record(stack, "s4"),
        "before": before,
        "after_first": after_first,
        "after": ledger_totals(stack),
    }


def test_com_08_an_interrupted_run_resumed_sends_each_change_once_and_applies(
    interrupted: dict[str, Any],
) -> None:
    assert interrupted["execution"]["status"] == "SUCCEEDED"
    record = interrupted["record"]
    assert (record["status"], record["added"], record["removed"], record["published"]) == (
        "APPLIED",
        5,
        5,
        10,
    )
    for instance in INSTANCES:
        first = interrupted["after_first"][instance].get("received", 0) - interrupted["before"][instance].get(
            "received", 0
        )
        total = interrupted["after"][instance].get("received", 0) - interrupted["before"][instance].get(
            "received", 0
        )
        assert first == total == 10, instance  # the resumed run sent nothing again: no duplicate, no loss


@pytest.fixture(scope="module")
def crashed_mid_partition(
    stack: ActivationHarness, interrupted: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """s5 (7 members out, 7 in): its one partition's diff task dies after publishing part of its changes
    (the real diff code and publisher against the stack's bus, stopped half-way through its first
    PutEvents round); then the same manifest is announced and the workflow runs it again."""
    from activation_core.publishing import EventPublisher
    from snapshots import runner
    from snapshots.plan import RunPlan
    from snapshots.store import S3Store

    tenth = SNAPSHOT_MEMBERS // 10
    members = list(range(tenth + 12, SNAPSHOT_MEMBERS + tenth + 12))
    changed = [
        *range(tenth + 5, tenth + 12),
        *range(SNAPSHOT_MEMBERS + tenth + 5, SNAPSHOT_MEMBERS + tenth + 12),
    ]
    bucket, key = stage_unannounced(stack, tmp_path_factory.mktemp("s5"), "s5", members, minutes=2)
    s3 = stack.stack.client("s3")
    before = ledger_totals(stack)
    patches_before = {n: len(stack.fake("outreach").patches(50_000 + n)) for n in changed}
    prepared = prepare_directly(stack, bucket, key, "s5-first-attempt")
    plan = RunPlan.model_validate(prepared["plan"])
    assert plan.bits == 0, "one partition: the crash is inside it"
    publisher = EventPublisher(stack.outputs["EventBusName"], events=stack.stack.client("events"))
    published: list[int] = []

    def dies_half_way(chunk: Any) -> int:
        published.append(publisher.publish(chunk[: len(chunk) // 2]))
        raise RuntimeError("the diff task died")

    with pytest.raises(RuntimeError, match="died"):
        runner.diff_partition(S3Store(bucket, s3), plan, 0, dies_half_way, stack.outputs["EventBusName"])
    fail_directly(stack, prepared)  # its Map failed: the failure path gives the audience back
    stack.drain()
    after_crash = ledger_totals(stack)
    announce(stack, bucket, key)
    execution = run_to_end(stack, 4)
    return {
        "execution": execution,
        "record": run_record(stack, "s5"),
        "published_before_crash": published[0],
        "before": before,
        "after_crash": after_crash,
        "after": ledger_totals(stack),
        "patches": {n: len(stack.fake("outreach").patches(50_000 + n)) - patches_before[n] for n in changed},
        "outcomes": outcomes_of(  # as reconciliation reads them: the ledgers of the run's types
            SnapshotState(stack.outputs["StateTableName"], stack.stack.client("dynamodb")),
            run_record(stack, "s5"),
        ),
    }


def delta(run: dict[str, Any], instance: str, name: str, since: str = "before") -> int:
    return run["after"][instance].get(name, 0) - run[since][instance].get(name, 0)


def test_com_08_a_run_that_died_mid_partition_resumed_matches_an_uninterrupted_one(
    crashed_mid_partition: dict[str, Any],
) -> None:
    run = crashed_mid_partition
    assert run["execution"]["status"] == "SUCCEEDED", run["execution"]
    record = run["record"]
    # the same record an uninterrupted run writes: 7 exits, 7 joins, each published once by the resumed run
    assert (record["status"], record["added"], record["removed"], record["published"]) == (
        "APPLIED",
        7,
        7,
        14,
    )
    assert 0 < run["published_before_crash"] < 14
    half = run["published_before_crash"]
    for instance in INSTANCES:
        assert delta(run, instance, "received") == 14 + half, instance
        outcomes = run["outcomes"][instance]  # the snapshot's own ledger, as reconciliation reads it
        duplicates = outcomes.get("reason:skipped:duplicate", 0)
        assert duplicates == half, instance  # the resent half: skipped, not sent to the vendor again
        assert settled(outcomes) - duplicates == 14, instance  # each change its one outcome: nothing lost
    assert run["patches"] == dict.fromkeys(run["patches"], 1)  # one PATCH per changed prospect at Outreach


# Runs of one audience never overlap. A second audience (activated on marketo-other only, its own list),
# so these runs are independent of the expo audience's above.
OTHER = ("aud-other", "Other")
OTHER_LIST = 1002


def announced_run(harness: ActivationHarness, bucket: str, key: str) -> dict[str, Any]:
    """Announce a staged snapshot and wait for the execution that announcement started."""
    sfn = harness.stack.client("stepfunctions")
    machine = harness.outputs["SnapshotStateMachineArn"]
    before = {e["executionArn"] for e in sfn.list_executions(stateMachineArn=machine)["executions"]}
    announce(harness, bucket, key)
    (started,) = [
        e["executionArn"]
        for e in sfn.list_executions(stateMachineArn=machine)["executions"]
        if e["executionArn"] not in before
    ]
    execution = harness.stack.wait_execution(started, max_rounds=12_000)
    harness.drain(max_rounds=DRAIN_ROUNDS)
    return execution


def listed(harness: ActivationHarness, members: range) -> set[int]:
    """Which of these members are in the audience's Marketo list now (what the vendor shows)."""
    marketo = harness.fake("marketo")
    on_list = marketo.members(OTHER_LIST)
    return {
        n
        for n in members
        for lead in marketo.leads_where("email", f"member{n}@example.com")
        if lead["id"] in on_list
    }


@pytest.fixture(scope="module")
def overlapping(stack: ActivationHarness, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """o1 (members 900-919) applied. o2 (900-917: 918 and 919 leave) prepared and diffed (its exits sent),
    not committed yet, when o3 (900-919: they are back) arrives. o2 commits while o3 is waiting (or, without
    serialised runs, after o3 ran)."""
    stack.fake("marketo").add_list(OTHER_LIST, "Other")
    folder = tmp_path_factory.mktemp("overlap")
    everyone, fewer = list(range(900, 920)), list(range(900, 918))
    first = announced_run(stack, *stage_unannounced(stack, folder, "o1", everyone, -180, audience=OTHER))
    listed_after_o1 = listed(stack, range(900, 920))
    o2 = stage_unannounced(stack, folder, "o2", fewer, -120, audience=OTHER)
    prepared = prepare_directly(stack, *o2, execution="o2")
    assert prepared["status"] == "PREPARED", prepared
    diff_directly(stack, prepared)
    stack.drain()
    listed_while_o2_runs = listed(stack, range(900, 920))
    committed: list[dict[str, Any]] = []

    def commit_o2() -> None:
        if not committed:
            committed.append(invoke(stack, "SnapshotCommitFunctionName", {"prepared": prepared}))

    waits = sfn_fast_time.RECORDED
    waits.on_retry(commit_o2)  # o2 finishes while o3 waits for the audience (the retry's wait)
    try:
        third = announced_run(stack, *stage_unannounced(stack, folder, "o3", everyone, -60, audience=OTHER))
    finally:
        waits.on_retry(None)
    commit_o2()  # without serialised runs o3 never waited: o2's commit comes after it
    stack.drain()
    state = SnapshotState(stack.outputs["StateTableName"], stack.stack.client("dynamodb"))
    history = stack.stack.client("stepfunctions").get_execution_history(executionArn=third["executionArn"])
    return {
        "busy": [
            e["lambdaFunctionFailedEventDetails"]
            for e in history["events"]
            if e["type"] == "LambdaFunctionFailed"
        ],
        "executions": (first, third),
        "listed": (listed_after_o1, listed_while_o2_runs, listed(stack, range(900, 920))),
        "o2": committed[0],
        "pointer": state.pointer(OTHER[0]),
    }


def test_com_04_overlapping_runs_of_one_audience_leave_every_member_of_the_last_snapshot_at_the_vendor(
    overlapping: dict[str, Any],
) -> None:
    """The review's finding: o2's exits were sent while o3 ran against o1; o3 saw 918 and 919 unchanged
    and sent nothing, so they stayed removed although the applied snapshot lists them. Serialised, o3
    waits for o2 and diffs against it: 918 and 919 are added again."""
    after_o1, while_o2, final = overlapping["listed"]
    assert after_o1 == set(range(900, 920))
    assert while_o2 == set(range(900, 918))  # o2's exits reached Marketo
    assert [e["status"] for e in overlapping["executions"]] == ["SUCCEEDED", "SUCCEEDED"]
    assert overlapping["pointer"].snapshot_id == "o3"
    assert set(range(900, 920)) - final == set()  # every member of the applied snapshot is on the list
    assert overlapping["o2"]["status"] == "APPLIED"  # o3 waited for it
    (busy,) = overlapping["busy"]  # o3's Prepare, once, while o2 held the audience; then it ran
    assert busy["error"] == "SnapshotAudienceBusy"
    assert "audience 'aud-other' is held by run 'o2'" in busy["cause"]


@pytest.fixture(scope="module")
def superseded(
    stack: ActivationHarness, overlapping: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """f4 (918 and 919 leave, 920 joins) sends its changes and fails (its Map failed: RecordFailure); then
    o5, newer, has 900-919 again: against o3 (the applied one) nobody changed, but the vendor holds f4's."""
    folder = tmp_path_factory.mktemp("superseded")
    f4 = stage_unannounced(stack, folder, "f4", [*range(900, 918), 920], -50, audience=OTHER)
    prepared = prepare_directly(stack, *f4, execution="f4")
    diff_directly(stack, prepared)
    failed = fail_directly(stack, prepared)
    stack.drain()
    listed_after_f4 = listed(stack, range(900, 921))
    from snapshots.store import S3Store

    o5 = announced_run(
        stack, *stage_unannounced(stack, folder, "o5", list(range(900, 920)), -40, audience=OTHER)
    )
    state = SnapshotState(stack.outputs["StateTableName"], stack.stack.client("dynamodb"))
    return {
        "failed": failed,
        "execution": o5,
        "listed": (listed_after_f4, listed(stack, range(900, 921))),
        "record": state.run(OTHER[0], "o5"),
        "pointer": state.pointer(OTHER[0]),
        "memberships": {
            key.split("/")[2]
            for key in S3Store(stack.outputs["SnapshotBucketName"], stack.stack.client("s3")).keys(
                f"state/{OTHER[0]}/"
            )
        },
    }


def test_com_04_a_failed_run_superseded_by_a_newer_one_leaves_the_vendor_as_the_applied_snapshot_says(
    superseded: dict[str, Any],
) -> None:
    """The review's second case: a failed run's changes stay sent. The next run sends again every member
    the failed run may have changed, as its own snapshot has them: 918 and 919 back, 920 removed."""
    after_f4, final = superseded["listed"]
    assert superseded["failed"]["status"] == "FAILED"
    assert after_f4 == {*range(900, 918), 920}  # f4's changes reached Marketo
    assert superseded["execution"]["status"] == "SUCCEEDED", superseded["execution"]
    assert final == set(range(900, 920))
    record = superseded["record"]
    assert (record["status"], record["changed"], record["removed"], record["added"]) == ("APPLIED", 2, 1, 0)
    assert superseded["pointer"].pending == Pending()  # o5 settled f4
    assert superseded["memberships"] == {"o5"}  # o5's commit deleted what f4 kept under state/, and o3


def test_the_audience_lease_and_the_re_checks_are_calls_the_snapshot_roles_allow(
    stack: ActivationHarness, superseded: dict[str, Any]
) -> None:
    """Prepare takes and releases the audience's lease, the diff tasks renew it and read a failed run's
    partitions, Commit renews and releases it and deletes what the failed run kept: each as AWS would
    allow it (the key `lock#snapshot#<audience>` and nothing more)."""
    functions = ("snapshot-prepare", "snapshot-diff", "snapshot-commit")
    assert calls_their_roles_refuse(stack, *functions) == []


# The failure paths and the lease, over sockets: a third audience (marketo-other's list 1003) for the
# first snapshot that fails, and aud-other's runs continued.
THIRD = ("aud-third", "Third")
THIRD_LIST = 1003


def lease_holder(harness: ActivationHarness, audience: str) -> str | None:
    from activation_core.locks import LeaseLock

    holder = LeaseLock(harness.outputs["StateTableName"], dynamodb=harness.stack.client("dynamodb")).holder(
        f"snapshot#{audience}"
    )
    return holder.owner if holder else None


@pytest.fixture(scope="module")
def commit_failed(
    stack: ActivationHarness, superseded: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """c6's Commit fails after its retries (a done marker it cannot sum: not a transient error). Then o7."""
    folder = tmp_path_factory.mktemp("commit-failed")
    bucket, key = stage_unannounced(stack, folder, "c6", list(range(900, 919)), -30, audience=OTHER)
    stack.stack.client("s3").put_object(
        Bucket=bucket, Key=f"runs/{OTHER[0]}/c6/done/0000.json", Body=b'{"added": "not a count"}'
    )
    execution = announced_run(stack, bucket, key)
    state = SnapshotState(stack.outputs["StateTableName"], stack.stack.client("dynamodb"))
    after = {"holder": lease_holder(stack, OTHER[0]), "record": state.run(OTHER[0], "c6"),
             "pending": state.audience(OTHER[0])[1]}  # fmt: skip
    sfn_fast_time.RECORDED.clear()
    o7 = announced_run(
        stack, *stage_unannounced(stack, folder, "o7", list(range(900, 920)), -20, audience=OTHER)
    )
    return after | {"execution": execution, "o7": o7, "o7_retries": list(sfn_fast_time.RECORDED.retries)}


def test_a_commit_that_fails_after_its_retries_gives_the_audience_back_and_records_the_run(
    commit_failed: dict[str, Any],
) -> None:
    """Before, the execution ended at Commit: the audience held for the lease's hour (the next run
    waited), no run record, the run not FAILED."""
    assert commit_failed["execution"]["status"] == "FAILED"
    assert commit_failed["holder"] is None  # given back at once
    assert commit_failed["record"]["status"] == "FAILED"
    assert [u.run_key for u in commit_failed["pending"].open] == ["c6"]  # the next run re-checks it
    assert commit_failed["o7"]["status"] == "SUCCEEDED"
    assert commit_failed["o7_retries"] == []  # o7 did not wait for the audience


@pytest.fixture(scope="module")
def delivered_twice(
    stack: ActivationHarness, commit_failed: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """d8's manifest, started twice (S3 and EventBridge deliver at least once) while the audience is
    still held by another run; once it is free, one execution takes it and the other waits for that one."""
    sfn = stack.stack.client("stepfunctions")
    bucket, key = stage_unannounced(stack, tmp_path_factory.mktemp("twice"), "d8", list(range(900, 918)), -10,
                                    audience=OTHER)  # fmt: skip
    state = SnapshotState(stack.outputs["StateTableName"], stack.stack.client("dynamodb"))
    state.hold(OTHER[0], "another-run")
    both_waiting, waiting = threading.Event(), []

    def wait_for_the_holder() -> None:  # on each retry's wait, in the waiting execution's thread
        holder = lease_holder(stack, OTHER[0])
        if holder == "another-run":  # both executions wait for it, then it gives the audience back
            waiting.append(holder)
            if len(waiting) < 2:
                assert both_waiting.wait(timeout=120), "the second execution never asked for the audience"
            else:
                state.release(OTHER[0], "another-run")
                both_waiting.set()
        elif holder is not None and holder.startswith("arn:"):  # the other execution of the manifest
            stack.stack.wait_execution(holder, max_rounds=12_000)

    sfn_fast_time.RECORDED.on_retry(wait_for_the_holder)
    try:
        machine = stack.outputs["SnapshotStateMachineArn"]
        payload = json.dumps({"bucket": bucket, "manifestKey": key})
        arns = [sfn.start_execution(stateMachineArn=machine, input=payload)["executionArn"] for _ in range(2)]
        executions = [stack.stack.wait_execution(arn, max_rounds=12_000) for arn in arns]
    finally:
        sfn_fast_time.RECORDED.on_retry(None)
    stack.drain()
    histories = [sfn.get_execution_history(executionArn=arn)["events"] for arn in arns]
    return {"executions": executions, "arns": arns, "histories": histories, "record": state.run(OTHER[0], "d8"),
            "listed": listed(stack, range(900, 920))}  # fmt: skip


def test_two_executions_of_one_manifest_apply_it_once_and_both_end_succeeded(
    delivered_twice: dict[str, Any],
) -> None:
    """Before, both held the lease (named after the run): they ran side by side and the one that lost it
    ended SnapshotRunFailed (or SnapshotLeaseLost) although the run was applied."""
    assert [e["status"] for e in delivered_twice["executions"]] == ["SUCCEEDED", "SUCCEEDED"]
    assert delivered_twice["record"]["status"] == "APPLIED"
    busy = [
        (arn, e["lambdaFunctionFailedEventDetails"]["cause"])
        for arn, history in zip(delivered_twice["arns"], delivered_twice["histories"], strict=True)
        for e in history
        if e["type"] == "LambdaFunctionFailed"
        and e["lambdaFunctionFailedEventDetails"]["error"] == "SnapshotAudienceBusy"
    ]
    held_by_the_other = [
        arn
        for arn, cause in busy
        if any(f"held by run '{other}'" in cause for other in delivered_twice["arns"])
    ]
    assert held_by_the_other, busy  # one waited for the other execution, not for another run's name
    assert delivered_twice["listed"] == set(range(900, 918))


@pytest.fixture(scope="module")
def failed_first(stack: ActivationHarness, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """x1, the FIRST snapshot of aud-third (930-940), sends its changes and fails; x2 (930-939) follows."""
    stack.fake("marketo").add_list(THIRD_LIST, "Third")
    folder = tmp_path_factory.mktemp("failed-first")
    x1 = stage_unannounced(stack, folder, "x1", list(range(930, 941)), -100, audience=THIRD)
    prepared = prepare_directly(stack, *x1, execution="x1")
    diff_directly(stack, prepared)
    fail_directly(stack, prepared)
    stack.drain()
    marketo = stack.fake("marketo")

    def on_list() -> set[int]:
        members = marketo.members(THIRD_LIST)
        return {n for n in range(930, 941) for lead in marketo.leads_where("email", f"member{n}@example.com")
                if lead["id"] in members}  # fmt: skip

    after_x1 = on_list()
    x2 = announced_run(
        stack, *stage_unannounced(stack, folder, "x2", list(range(930, 940)), -90, audience=THIRD)
    )
    return {"after_x1": after_x1, "x2": x2, "final": on_list()}


def test_a_failed_first_snapshot_leaves_no_member_of_its_own_at_the_vendor(
    failed_first: dict[str, Any],
) -> None:
    """Before, with no applied snapshot to list it on, the failed first run was forgotten: 940, only in
    it, stayed on the Marketo list for good."""
    assert failed_first["after_x1"] == set(range(930, 941))  # x1's changes reached Marketo
    assert failed_first["x2"]["status"] == "SUCCEEDED", failed_first["x2"]
    assert failed_first["final"] == set(range(930, 940))  # 940 removed again


def test_the_fold_the_failure_paths_and_the_execution_lease_are_calls_the_snapshot_roles_allow(
    stack: ActivationHarness,
    commit_failed: dict[str, Any],
    delivered_twice: dict[str, Any],
    failed_first: dict[str, Any],
) -> None:
    """Prepare folding failed runs under runs/, Commit's failure path and its listing of state/<audience>/,
    a pointer item without an applied snapshot: each call as AWS would allow it to the function's role."""
    assert calls_their_roles_refuse(stack, "snapshot-prepare", "snapshot-diff", "snapshot-commit") == []

"""The snapshot workflow against AWS's documented limits, which moto does not enforce.

- Step Functions: a state's input/output at most 256 KB; a Standard execution's history at most 25,000
  events; a Distributed Map's MaxConcurrency at most 10,000 (and ours bounded, so the bus and the
  destinations' queues are not flooded); a Map child's failure fails the run (no silent loss).
- Lambda: timeout at most 900 s, ephemeral storage at most 10,240 MB.
- EventBridge: an entry at most 256 KB.
- DynamoDB: an item at most 400 KB (the audience's pointer, with the runs not applied).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from activation_core import naming
from activation_core.publishing import EventPublisher
from local.harness import DESTINATION_TYPES
from snapshots.diff import Change, ChangeKind
from snapshots.events import entry
from snapshots.members import MAX_LINE_BYTES
from snapshots.partitions import MAX_BITS, Row
from snapshots.plan import Recheck, RunPlan, Targets, Unsettled
from snapshots.state import Pending, Pointer, SnapshotState

ROOT = Path(__file__).resolve().parents[3]
PAYLOAD_LIMIT = 256 * 1024
HISTORY_LIMIT = 25_000
ITEM_LIMIT = 400 * 1024
INSTANCES = tuple(f"instance-{i:03d}-{'x' * 50}" for i in range(100))  # far beyond any config seen
AT = datetime(2026, 12, 1, tzinfo=UTC)


def worst_recheck() -> Recheck:
    """Any number of runs not applied, folded: one set, the longest prefix and ids, every instance."""
    return Recheck(prefix="r" * 1024, bits=MAX_BITS, runs=10**9, last_run="s" * 128, snapshot_at=AT,
                   instances=INSTANCES)  # fmt: skip


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    return dict(json.loads((ROOT / "functions" / "snapshots" / "statemachine.asl.json").read_text()))


def largest_plan() -> RunPlan:
    """100 instances activating one audience (far beyond any config seen), the longest ids allowed."""
    instances = INSTANCES
    return RunPlan(
        bucket="b" * 63, audience_id="a" * 256, audience_name="n" * 512, origin="o" * 64, entity="profile",
        snapshot_id="s" * 128, snapshot_at=datetime(2026, 12, 1, tzinfo=UTC), bits=MAX_BITS,
        run_prefix="r" * 400, state_prefix="p" * 400, previous_snapshot_id="s" * 128, previous_prefix="p" * 400,
        previous_bits=MAX_BITS, targets=Targets(current=instances, full=instances, removal=instances,
        types={i: "marketo" for i in instances}), members=10**9, lines=10**9, bad_lines=10**9,
        recheck=worst_recheck(), checksum="sha256:" + "f" * 64,
    )  # fmt: skip


def test_every_state_payload_stays_under_256_kb() -> None:
    plan = largest_plan().model_dump(mode="json")
    prepared = {"status": "PREPARED", "plan": plan, "partitionsKey": "k" * 1024}
    execution_input = {"bucket": "b" * 63, "manifestKey": "k" * 1024}
    item = {"partition": 4095, "plan": plan}
    done = {"partition": 4095, "sent": {i: 10**9 for i in plan["targets"]["current"]}, "added": 10**9}
    for payload in (execution_input | {"prepared": prepared, "summary": done}, item, done):
        assert len(json.dumps(payload).encode()) <= PAYLOAD_LIMIT


def test_the_audience_pointer_stays_under_400_kb_whatever_the_number_of_failed_runs() -> None:
    """The pointer holds one open run (the one past its Prepare) and one folded set: its size does not
    depend on how many runs failed (tests/unit/snapshots/test_runs_serialised.py runs 25 in a row)."""
    open_run = Unsettled(
        run_key="s" * 128, snapshot_at=AT, prefix="r" * 1024, bits=MAX_BITS, instances=INSTANCES
    )
    applied = Pointer("s" * 128, AT, MAX_BITS, "p" * 1024, INSTANCES)
    item = SnapshotState.item("a" * 256, applied, Pending(open=(open_run,), recheck=worst_recheck()))
    size = sum(len(k) + len(next(iter(v.values())).encode()) for k, v in item.items())
    assert size <= ITEM_LIMIT / 10  # 24 KB: far from the limit


def test_the_map_is_distributed_bounded_and_a_failed_partition_fails_the_run(
    definition: dict[str, Any],
) -> None:
    diff = definition["States"]["DiffPartitions"]
    assert diff["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert 1 <= diff["MaxConcurrency"] <= 10_000
    assert diff["ToleratedFailureCount"] == 0 and "ToleratedFailurePercentage" not in diff
    assert diff["ItemReader"]["ReaderConfig"]["InputType"] == "JSON"
    assert diff["Catch"][0]["Next"] == "RecordFailure"
    assert definition["States"]["RecordFailure"]["Next"] == "Recorded"


def test_a_commit_that_fails_after_its_retries_gives_the_audience_back_and_records_the_run(
    definition: dict[str, Any],
) -> None:
    """Without a Catch the execution ended there: the audience held for the lease's hour, no run record.
    Any error after Commit's retries goes to RecordFailure (run FAILED, lease released), as a Map's does."""
    states = definition["States"]
    assert states["Commit"]["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "RecordFailure"}
    ]
    recorded = states["Recorded"]
    assert recorded["Choices"] == [
        {"Variable": "$.summary.reason", "StringEquals": "already_applied", "Next": "Done"}
    ]
    assert recorded["Default"] == "RunFailed"


def test_the_execution_owns_the_audience_lease(definition: dict[str, Any]) -> None:
    """Two executions of one run (the same manifest delivered twice) must not both hold the audience:
    the lease is named after the execution, passed to every task that takes, renews or releases it."""
    states = definition["States"]
    assert states["Prepare"]["Parameters"] == {"request.$": "$", "execution.$": "$$.Execution.Id"}
    assert states["DiffPartitions"]["ItemSelector"]["owner.$"] == "$.prepared.owner"


def test_execution_history_does_not_grow_with_the_snapshot(definition: dict[str, Any]) -> None:
    """Each partition runs as a child execution (Distributed Map): the parent's history holds a fixed
    number of states; a child holds one task and its retries."""
    parent_states = len(definition["States"])
    worst_retries = sum(r["MaxAttempts"] for s in definition["States"].values() for r in s.get("Retry", []))
    assert (parent_states + worst_retries) * 5 <= HISTORY_LIMIT  # ~5 history events per state or attempt
    child = definition["States"]["DiffPartitions"]["ItemProcessor"]["States"]["DiffPartition"]
    assert (1 + sum(r["MaxAttempts"] for r in child["Retry"])) * 5 <= HISTORY_LIMIT


def test_task_lambdas_fit_lambda_limits_and_prepare_has_disk_for_the_partitions(
    resources: dict[str, Any],
) -> None:
    for name in ("SnapshotPrepareFunction", "SnapshotDiffFunction", "SnapshotCommitFunction"):
        props = resources[name]["Properties"]
        assert props.get("Timeout", 30) <= 900
        assert props.get("EphemeralStorage", {"Size": 512})["Size"] <= 10_240
    assert resources["SnapshotPrepareFunction"]["Properties"]["EphemeralStorage"]["Size"] == 10_240


def test_an_event_built_from_the_largest_allowed_line_fits_an_eventbridge_entry() -> None:
    line = json.dumps(
        {"identities": {"email": "a@example.com"}, "attributes": {"x": "y" * (MAX_LINE_BYTES - 80)}}
    )
    assert len(line.encode()) <= MAX_LINE_BYTES
    change = Change(ChangeKind.ADDED, Row("0" * 64, "0" * 32, line))
    assert EventPublisher.fits(entry(largest_plan(), change, "bus", largest_plan().targets.current))


def test_the_snapshot_bucket_is_encrypted_private_and_expires_personal_data(
    resources: dict[str, Any],
) -> None:
    bucket = resources["SnapshotBucket"]["Properties"]
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert bucket["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    expiry = {r.get("Prefix"): r.get("ExpirationInDays") for r in bucket["LifecycleConfiguration"]["Rules"]}
    # Parameters: tests/unit/template/test_retention.py checks their defaults (30, 7, 400 days).
    assert expiry["incoming/"] == {"Ref": "SnapshotIncomingRetentionDays"}
    assert expiry["runs/"] == {"Ref": "SnapshotRunRetentionDays"}
    assert expiry["state/"] == {"Ref": "SnapshotMembershipRetentionDays"}
    (tls,) = resources["SnapshotBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert tls["Effect"] == "Deny" and tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_destination_rules_route_targeted_events_only_to_their_type(resources: dict[str, Any]) -> None:
    for destination_type in DESTINATION_TYPES:
        pattern = resources[naming.logical_id(destination_type, "Rule")]["Properties"]["EventPattern"]
        assert pattern["$or"] == [
            {"detail": {"targetTypes": [{"exists": False}]}},
            {"detail": {"targetTypes": [destination_type]}},
        ]


def test_the_same_manifest_twice_is_not_a_failed_run(definition: dict[str, Any]) -> None:
    """S3 and EventBridge deliver at least once: a second event for an applied snapshot must not alarm."""
    choices = definition["States"]["Accepted"]["Choices"]
    assert {"Variable": "$.prepared.reason", "StringEquals": "already_applied"}.items() <= choices[1].items()
    assert choices[1]["Next"] == "Done" and definition["States"]["Accepted"]["Default"] == "Refused"


def test_the_prepare_task_knows_the_entity_every_destination_type_takes(
    resources: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its refusal of a snapshot of the other entity (`entity_mismatch`) reads them from its environment."""
    from activation_cli import discovery
    from snapshots.settings import SnapshotSettings

    variables = resources["SnapshotPrepareFunction"]["Properties"]["Environment"]["Variables"]
    monkeypatch.setenv("DESTINATION_ENTITIES", variables["DESTINATION_ENTITIES"])
    assert SnapshotSettings.from_env().destination_entities == {
        d.type: d.entity for d in discovery.destinations().destinations
    }

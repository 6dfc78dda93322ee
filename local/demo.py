"""`make demo`: the whole stack on this machine, the sample events through it, an outcome table.

Starts moto with template.yaml deployed, the fake vendors (with LAMBDA_RUNNER=sam the functions run
in `sam local start-lambda`; see local/sam_local/moto_runner.py), publishes events/eventbridge/*.json to the
bus (one RainFocus call made to fail three times so its record goes back to the queue and is
delivered on the next receive), waits until every record has an outcome, prints one table per
destination, then backfills the sample audience snapshots (events/snapshots/: the expo invitees to
RainFocus, Marketo and Outreach, the ABM accounts to Bombora) through the snapshot workflow and prints
their reconciliation, and stops everything it started.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "activation_core"), str(ROOT / "functions")]

from local.examples import sample_events  # noqa: E402
from local.harness import DESTINATION_TYPES, ActivationHarness, DestinationReport  # noqa: E402
from local.sam_local import moto_runner as sam_runner  # noqa: E402

COLUMNS = ("received", "delivered", "skipped", "rejected", "retried")


def render(report: DestinationReport) -> str:
    counts = "  ".join(f"{name} {report.count(name):>2}" for name in COLUMNS)
    lines = [
        f"{report.destination_type:<10} published {report.published:>2}  {counts}  in DLQ {report.dlq_depth:>2}"
        f"  {'balanced' if report.balanced else 'NOT BALANCED'}"
    ]
    for reason, count in report.reasons.items():
        lines.append(f"{'':<12}{count:>3} x {reason}")
    for reason, count in sorted(report.dlq_reasons.items()):
        lines.append(f"{'':<12}{count:>3} x in DLQ with reason {reason}")
    return "\n".join(lines)


SNAPSHOTS = ROOT / "events" / "snapshots"


def backfill(harness: ActivationHarness) -> list[dict[str, object]]:
    """Upload each sample snapshot (members, then manifest), wait for its run, deliver, reconcile."""
    s3, sfn = harness.stack.client("s3"), harness.stack.client("stepfunctions")
    bucket, machine = harness.outputs["SnapshotBucketName"], harness.outputs["SnapshotStateMachineArn"]
    for manifest in sorted(SNAPSHOTS.glob("*.manifest.json")):
        members = manifest.with_name(manifest.name.removesuffix(".manifest.json"))
        audience = json.loads(manifest.read_text())["audienceId"]
        s3.upload_file(str(members), bucket, f"incoming/{audience}/{members.name}")
        s3.upload_file(str(manifest), bucket, f"incoming/{audience}/{manifest.name}")
    for execution in sfn.list_executions(stateMachineArn=machine)["executions"]:
        harness.stack.wait_execution(execution["executionArn"], max_rounds=6000)
    harness.drain()
    response = harness.stack.client("lambda").invoke(
        FunctionName=harness.outputs["SnapshotReconcileFunctionName"], Payload=b"{}"
    )
    json.loads(response["Payload"].read())
    table = harness.outputs["StateTableName"]
    from snapshots.state import SnapshotState

    runs = SnapshotState(table, harness.stack.client("dynamodb")).runs()
    return [r["reconciliation"] for r in runs if r.get("reconciliation")]


def render_reconciliation(reconciliation: dict[str, object]) -> str:
    instances = reconciliation["instances"]
    assert isinstance(instances, list)
    lines = [f"{reconciliation['audienceId']} ({reconciliation['members']} members)"]
    for i in instances:
        lines.append(
            f"  {i['instance']:<20} sent {i['sent']:>2}  delivered {i['delivered']:>2}  skipped {i['skipped']:>2}"
            f"  rejected {i['rejected']:>2}  pending {i['pending']:>2}"
            + "".join(f"  [{r} x{n}]" for r, n in {**i["skippedByReason"], **i["rejectedByReason"]}.items())
        )
    return "\n".join(lines)


def main() -> int:
    started = time.monotonic()
    with ActivationHarness() as harness:
        print(f"local stack up in {time.monotonic() - started:.1f} s: template.yaml deployed into moto at "
              f"{harness.stack.endpoint_url}, fake RainFocus at {harness.fake('rainfocus').base_url}")  # fmt: skip
        if sam_runner.requested():
            print(
                "functions run in `sam local start-lambda` (LAMBDA_RUNNER=sam), the Lambda runtime emulator"
            )
        # A transient vendor failure: Grace's attendee call fails 3 times (every in-process attempt), so
        # her record returns to the queue and is delivered on its second receive.
        harness.fake("rainfocus").fail_next(
            "attendee/store", 3, 503, body={"responseCode": "503", "responseMessage": "busy"},
            body_contains=b"grace.hopper",
        )  # fmt: skip
        events = sample_events()
        harness.publish(events)
        print(
            f"published {len(events)} sample events from events/eventbridge/ to {harness.outputs['EventBusName']}"
        )
        harness.drain()
        reports = [harness.report(t) for t in DESTINATION_TYPES]
        print()
        for report in reports:
            print(render(report))
        attendees = harness.fake("rainfocus").attendees
        print(f"\nRainFocus attendees now in the fake: {len(attendees)} "
              f"({', '.join(sorted(a['firstname'] for a in attendees.values()))})")  # fmt: skip
        reconciliations = backfill(harness)
        print("\nbackfill of the sample audience snapshots (events/snapshots/), reconciled per instance:")
        for reconciliation in reconciliations:
            print(render_reconciliation(reconciliation))
        ok_backfill = all(r["pending"] == 0 for r in reconciliations) and len(reconciliations) == 2
    elapsed = time.monotonic() - started
    ok = all(r.balanced for r in reports) and ok_backfill
    print(
        f"\n{'every record has an outcome' if ok else 'SOME RECORDS HAVE NO OUTCOME'}; done in {elapsed:.1f} s"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

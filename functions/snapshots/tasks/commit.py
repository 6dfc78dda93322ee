"""Commit task: sum the partitions, move the audience's pointer, record the run, summary event + metrics.

Also runs after a failed Map or a Commit that failed after its retries (the state machine passes
`error`): the run is recorded FAILED, the audience given back, and running the same snapshot again
resumes it.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from activation_core import aws
from activation_core.models.snapshots import SNAPSHOT_APPLIED, SNAPSHOT_SOURCE
from activation_core.observability import logger
from snapshots import runner
from snapshots.plan import RunPlan
from snapshots.settings import snapshot_settings
from snapshots.state import SnapshotState, StaleSnapshot
from snapshots.store import S3Store
from snapshots.tasks.errors import transient_errors

METRICS = {
    "members": "SnapshotMembers",
    "badLines": "SnapshotBadLines",
    "published": "SnapshotChangesPublished",
}


def emit_metrics(record: dict[str, Any]) -> None:
    for key, name in METRICS.items():
        with single_metric(name=name, unit=MetricUnit.Count, value=int(record.get(key) or 0)) as metric:
            metric.add_dimension(name="Audience", value=str(record.get("audienceId", "unknown")))


def publish_summary(bus: str, record: dict[str, Any]) -> None:
    try:
        aws.client("events").put_events(
            Entries=[
                {
                    "Source": SNAPSHOT_SOURCE,
                    "DetailType": SNAPSHOT_APPLIED,
                    "Detail": json.dumps(record, default=str),
                    "EventBusName": bus,
                }
            ]
        )
    except Exception as exc:  # the run is recorded either way; the event is a courtesy to listeners
        logger.warning("summary event not published", extra={"error_type": type(exc).__name__})


@transient_errors
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = snapshot_settings()
    plan = RunPlan.model_validate(event["prepared"]["plan"])
    owner = plan.lease_owner(event["prepared"].get("owner"))  # the execution holding the audience's lease
    state = SnapshotState(settings.state_table_name)
    if event.get("error") is not None:
        error = event["error"] if isinstance(event["error"], dict) else {}
        record = {
            "audienceId": plan.audience_id,
            "snapshotId": plan.snapshot_id,
            "status": "FAILED",
            "reason": str(error.get("Error", "map_failed"))[:100],
            "detail": "a partition failed after its retries; run the same snapshot again to resume",
            "runId": plan.run_key,
            "backfill": plan.backfill,
            **plan.run_fields(),
        }
        if not state.put_run(plan.audience_id, plan.run_key, record, keep_applied=True):
            # Another execution of the same run (the manifest delivered twice, this one's lease lost)
            # applied it: that record, its metrics and its summary event stand; this one is a no-op.
            logger.info("snapshot run already applied", extra={"audience": plan.audience_id})
            return {
                "status": "APPLIED",
                "reason": "already_applied",
                "audienceId": plan.audience_id,
                "snapshotId": plan.snapshot_id,
            }
        state.release(plan.audience_id, owner)  # the next run of the audience may start
    else:
        try:
            record = runner.commit(S3Store(plan.bucket), plan, state, owner=owner)
        except StaleSnapshot:
            record = {
                "audienceId": plan.audience_id,
                "snapshotId": plan.snapshot_id,
                "status": "REFUSED",
                "reason": "older_than_applied",
                "detail": "a later snapshot of this audience was applied while this one ran",
                "runId": plan.run_key,
                "backfill": plan.backfill,
            }
            state.put_run(plan.audience_id, plan.run_key, record)
            state.release(plan.audience_id, owner)
    emit_metrics(record)
    publish_summary(settings.event_bus_name, record)
    logger.info("snapshot run finished", extra={"status": record["status"], "audience": plan.audience_id})
    return {
        k: record.get(k) for k in ("status", "audienceId", "snapshotId", "members", "published", "reason")
    }

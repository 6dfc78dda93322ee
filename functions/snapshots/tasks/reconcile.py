"""Reconcile task (every 15 minutes, and on demand from the CLI): provisional reconciliation of every
applied snapshot not yet final; the final one is stored, emitted as `SnapshotUndeliveredShare` (the
alarm's metric) and published as an `Audience Snapshot Reconciled` event."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from activation_core import aws
from activation_core.models.snapshots import SNAPSHOT_RECONCILED, SNAPSHOT_SOURCE
from activation_core.observability import logger
from snapshots.reconcile import due, open_runs, outcomes_of, reconcile
from snapshots.settings import snapshot_settings
from snapshots.state import SnapshotState
from snapshots.tasks.errors import transient_errors


def emit(reconciliation: dict[str, Any]) -> None:
    share = 100 * reconciliation["undeliveredShare"]
    # Once with the service dimension only (what the alarm watches, any audience), once per audience.
    with single_metric(name="SnapshotUndeliveredShare", unit=MetricUnit.Percent, value=share):
        pass
    with single_metric(name="SnapshotUndeliveredShare", unit=MetricUnit.Percent, value=share) as metric:
        metric.add_dimension(name="Audience", value=str(reconciliation.get("audienceId")))
    for instance in reconciliation["instances"]:
        for name in ("sent", "delivered", "skipped", "rejected", "pending"):
            with single_metric(
                name=f"Snapshot{name.capitalize()}", unit=MetricUnit.Count, value=instance[name]
            ) as metric:
                metric.add_dimension(name="Instance", value=str(instance["instance"]))


def run(
    state: SnapshotState, bus: str, now: datetime, deadline: timedelta, events: Any | None = None
) -> list[dict[str, Any]]:
    done = []
    for record in open_runs(state):
        reconciliation = reconcile(record, outcomes_of(state, record))
        record["reconciliation"] = reconciliation
        if due(record, reconciliation, now, deadline):
            record["reconciledAt"] = now.isoformat()
            emit(reconciliation)
            (events or aws.client("events")).put_events(
                Entries=[
                    {
                        "Source": SNAPSHOT_SOURCE,
                        "DetailType": SNAPSHOT_RECONCILED,
                        "Detail": json.dumps(reconciliation),
                        "EventBusName": bus,
                    }
                ]
            )
            done.append(reconciliation)
        state.put_run(record["audienceId"], record.get("runId") or record["snapshotId"], record)
    return done


@transient_errors
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = snapshot_settings()
    state = SnapshotState(settings.state_table_name)
    final = run(
        state,
        settings.event_bus_name,
        datetime.now(UTC),
        timedelta(hours=float((event or {}).get("deadlineHours", settings.reconcile_deadline_hours))),
    )
    logger.info("snapshots reconciled", extra={"final": len(final)})
    return {"final": [{k: r[k] for k in ("audienceId", "snapshotId", "undeliveredShare")} for r in final]}

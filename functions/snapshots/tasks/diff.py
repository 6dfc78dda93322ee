"""Diff task (one per partition, inside the Distributed Map): diff, publish the changes, keep the partition."""

from __future__ import annotations

from typing import Any

from activation_core.publishing import EventPublisher  # the bus's PutEvents batching and retries
from snapshots import runner
from snapshots.plan import RunPlan
from snapshots.settings import snapshot_settings
from snapshots.state import SnapshotState
from snapshots.store import S3Store
from snapshots.tasks.errors import transient_errors


@transient_errors
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = snapshot_settings()
    plan = RunPlan.model_validate(event["plan"])
    # The run still holds its audience (renewed for another hour), or it stops before sending anything.
    SnapshotState(settings.state_table_name).renew(plan.audience_id, plan.lease_owner(event.get("owner")))
    publisher = EventPublisher(settings.event_bus_name, workers=settings.publish_workers)
    return runner.diff_partition(
        S3Store(plan.bucket), plan, int(event["partition"]), publisher.publish, settings.event_bus_name
    )

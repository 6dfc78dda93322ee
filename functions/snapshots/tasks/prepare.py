"""Prepare task: check a snapshot and split it into partitions (or refuse it, changing nothing)."""

from __future__ import annotations

from typing import Any

from activation_core import deadline
from activation_core.config_store import load_destinations, parse_instances
from activation_core.models.snapshots import SnapshotReadyDetail
from activation_core.observability import logger
from snapshots import runner
from snapshots.plan import BackfillRequest, RunPlan
from snapshots.settings import snapshot_settings
from snapshots.state import SnapshotState
from snapshots.store import S3Store
from snapshots.tasks.errors import transient_errors


@transient_errors
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """`event`: `{"request": <the execution's input>, "execution": <its id>}` (the state machine's
    Parameters): the execution holds the audience's lease, so a second one of the same run waits."""
    settings = snapshot_settings()
    owner = str(event["execution"])
    if "backfill" in event["request"]:
        return _backfill(BackfillRequest.model_validate(event["request"]["backfill"]), owner)
    request = SnapshotReadyDetail.model_validate(event["request"])
    state = SnapshotState(settings.state_table_name)
    if request.bucket != settings.bucket:
        refusal = runner.Refusal("foreign_bucket", "snapshots are read from the stack's snapshot bucket only")
        logger.warning("snapshot refused", extra={"reason": refusal.reason})
        return refusal.as_dict()
    config = load_destinations(settings.config_parameter_name, settings.config_cache_seconds)
    deadline.begin(context)  # out of time for folding failed runs, the run is a resync instead
    try:
        result = runner.prepare(
            S3Store(request.bucket),
            request.bucket,
            request.manifest_key,
            config,
            state,
            target=settings.partition_target,
            entities=settings.destination_entities,
            owner=owner,
            time_left=deadline.remaining,
        )
    finally:
        deadline.end()
    if isinstance(result, runner.Refusal):
        logger.warning("snapshot refused", extra={"reason": result.reason, "detail": result.detail})
        record = result.as_dict() | {"manifestKey": request.manifest_key}
        # Its own key: a refused copy of the applied snapshot must not overwrite that run's record.
        state.put_run(result.audience_id or "unknown", f"{result.snapshot_id or 'unknown'}#refused", record)
        return result.as_dict()
    return _prepared(result, owner)


def _prepared(result: RunPlan, owner: str) -> dict[str, Any]:
    logger.info(
        "snapshot prepared",
        extra={
            "audience": result.audience_id,
            "snapshot": result.snapshot_id,
            "partitions": 1 << result.bits,
            "backfill": result.backfill,
        },
    )
    return {
        "status": "PREPARED",
        "plan": result.model_dump(mode="json"),
        "partitionsKey": f"{result.run_prefix}partitions.json",
        "owner": owner,  # the lease's: every diff task and Commit renew or release it under this name
    }


def _backfill(request: BackfillRequest, owner: str) -> dict[str, Any]:
    settings = snapshot_settings()
    state = SnapshotState(settings.state_table_name)
    if request.bucket != settings.bucket:
        return runner.Refusal(
            "foreign_bucket", "snapshots are read from the stack's snapshot bucket only"
        ).as_dict()
    from aws_lambda_powertools.utilities import parameters  # on first use, as config_store does

    # Read now, not from the container's cache: a backfill is started right after a config push.
    raw = parameters.get_parameter(
        settings.config_parameter_name, max_age=settings.config_cache_seconds, force_fetch=True
    )
    config = parse_instances(str(raw)).config
    result = runner.prepare_backfill(
        S3Store(request.bucket), request, config, state, settings.destination_entities, owner=owner
    )
    if isinstance(result, runner.Refusal):
        logger.warning("backfill refused", extra={"reason": result.reason, "detail": result.detail})
        state.put_run(request.audience_id, request.run_id, result.as_dict() | {"runId": request.run_id})
        return result.as_dict()
    return _prepared(result, owner)

"""Backfills: what an instance that newly activates an audience still lacks, what sending it costs at
the vendor, and starting it from the audience's applied snapshot (docs/snapshots.md, "Activating an
audience on an instance").

The estimate comes from each destination's own `call_plan(instance)` (its batch size, call types and
rate limits) and the applied snapshot's member count; the run is the snapshot workflow started with a
backfill input, which sends the stored membership to the instances that did not receive it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from activation_cli import discovery
from activation_cli.console import err
from activation_cli.stack import Stack, client

CONFIG_OUTPUT = "DestinationsConfigParameterName"
MACHINE_OUTPUT = "SnapshotStateMachineArn"
BUCKET_OUTPUT = "SnapshotBucketName"
# How long the functions keep the config document (activation_core.settings, CONFIG_CACHE_SECONDS): a
# backfill started sooner could reach a function that does not know the instance yet.
CONFIG_CACHE_SECONDS = 60
sleep = time.sleep  # module-level so tests wait on no clock


@dataclass(frozen=True)
class Estimate:
    instance: str
    audience: str
    snapshot_id: str | None
    members: int
    vendor_calls: int
    calls_by_type: dict[str, int]
    seconds: float | None
    limit: str | None

    @property
    def command(self) -> str:
        if self.snapshot_id is None:
            return f"activation snapshot push FILE --audience {self.audience}"
        return f"activation snapshot backfill --audience {self.audience}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "audience": self.audience,
            "snapshotId": self.snapshot_id,
            "members": self.members,
            "vendorCalls": self.vendor_calls,
            "callsByType": self.calls_by_type,
            "seconds": self.seconds,
            "limit": self.limit,
            "command": self.command,
        }

    def describe(self) -> str:
        if self.snapshot_id is None:
            return (
                f"backfill needed: {self.instance} now activates {self.audience}, which has no applied "
                f"snapshot yet; its first snapshot sends every member: {self.command}"
            )
        calls = ", ".join(f"{n:,} {kind}" for kind, n in self.calls_by_type.items())
        return (
            f"backfill needed: {self.instance} now activates {self.audience}: {self.members:,} member(s) of "
            f"snapshot {self.snapshot_id}, {self.vendor_calls:,} vendor call(s) ({calls}), "
            f"{duration(self.seconds, self.limit)}; start it: {self.command}"
        )


def duration(seconds: float | None, limit: str | None) -> str:
    if seconds is None:
        return "no published vendor rate limit (the stack's throughput bounds it)"
    if seconds >= 86_400:
        text = f"{seconds / 86_400:,.1f} days"
    elif seconds >= 3_600:
        text = f"{seconds / 3_600:,.1f} h"
    elif seconds >= 60:
        text = f"{seconds / 60:,.1f} min"
    else:
        text = f"{seconds:,.0f} s"
    return f"at least {text} at the vendor's rate limit ({limit})"


def _state(stack: Stack) -> Any:
    from snapshots.state import SnapshotState

    return SnapshotState(stack.output("StateTableName"), client("dynamodb"))


def estimates(stack: Stack, config: Any, pairs: list[dict[str, str]]) -> list[Estimate]:
    """One estimate per (instance, audience) pair the config newly activates."""
    state = _state(stack)
    instances = {i.id: i for i in config.destinations}
    result = []
    for pair in pairs:
        instance, audience = instances[pair["instance"]], pair["audience"]
        pointer = state.pointer(audience)
        members = int((state.run(audience, pointer.snapshot_id) or {}).get("members", 0)) if pointer else 0
        plan = discovery.call_plan(instance)
        limit = plan.binding_limit(members)
        result.append(
            Estimate(
                instance=instance.id,
                audience=audience,
                snapshot_id=pointer.snapshot_id if pointer else None,
                members=members,
                vendor_calls=plan.calls(members),
                calls_by_type=plan.calls_by_type(members),
                seconds=plan.seconds(members),
                limit=limit.name if limit else None,
            )
        )
    return result


def wait_for_config(stack: Stack, cache_seconds: float = CONFIG_CACHE_SECONDS) -> float:
    """Sleep until every function has read the config pushed last (their cache); returns the wait."""
    parameter = client("ssm").get_parameter(Name=stack.output(CONFIG_OUTPUT))["Parameter"]
    modified = parameter.get("LastModifiedDate")
    if not isinstance(modified, datetime):
        return 0.0
    age = (datetime.now(UTC) - modified.astimezone(UTC)).total_seconds()
    wait = max(0.0, min(cache_seconds, cache_seconds - age))
    if wait > 0:
        err.print(f"waiting {wait:.0f} s for the functions to read the new config (their cache)")
        sleep(wait)
    return wait


def start(stack: Stack, audience: str) -> dict[str, Any]:
    """Start the backfill run of `audience` from its applied snapshot; what was started, or why not."""
    from snapshots.plan import backfill_run_id

    pointer = _state(stack).pointer(audience)
    if pointer is None:
        return {"audience": audience, "started": False, "reason": "no_applied_snapshot"}
    run_id = backfill_run_id(pointer.snapshot_id, datetime.now(UTC))
    request = {
        "backfill": {
            "bucket": stack.output(BUCKET_OUTPUT),
            "audienceId": audience,
            "snapshotId": pointer.snapshot_id,
            "runId": run_id,
        }
    }
    execution = client("stepfunctions").start_execution(
        stateMachineArn=stack.output(MACHINE_OUTPUT), name=run_id[:80], input=json.dumps(request)
    )
    return {
        "audience": audience,
        "started": True,
        "snapshotId": pointer.snapshot_id,
        "runId": run_id,
        "executionArn": execution["executionArn"],
    }

"""Changes as events of the existing contract (same detail-types, same detail), marked as coming from a
snapshot and targeted at the instances that should receive them.

Event ids are deterministic (audience, snapshot, member key, status): a partition published twice (a
resumed run) carries the same ids, so the pipeline's idempotency drops the second copy per instance.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import Any

from activation_core.models.events import (
    ACCOUNT_MEMBERSHIP_CHANGED,
    PROFILE_MEMBERSHIP_CHANGED,
    MembershipStatus,
)
from activation_core.models.snapshots import SNAPSHOT_SOURCE
from snapshots.diff import Change, ChangeKind
from snapshots.plan import RunPlan

# A member new since the previous snapshot joined (`realized`); one that was in it already and is sent
# again (changed, or to an instance being backfilled or resynced) is `existing`, as the platform reports
# members it re-evaluates; a member gone `exited`.
STATUS = {
    ChangeKind.ADDED: MembershipStatus.REALIZED,
    ChangeKind.CHANGED: MembershipStatus.EXISTING,
    ChangeKind.UNCHANGED: MembershipStatus.EXISTING,
    ChangeKind.REMOVED: MembershipStatus.EXITED,
}


def event_id(plan: RunPlan, key: str, status: MembershipStatus) -> str:
    material = f"{plan.audience_id}|{plan.snapshot_id}|{key}|{status.value}"
    return "snap-" + hashlib.sha256(material.encode()).hexdigest()[:40]


def targets_of(plan: RunPlan, kind: ChangeKind) -> tuple[str, ...]:
    if kind is ChangeKind.REMOVED:
        return plan.targets.removal
    if kind is ChangeKind.UNCHANGED:
        return plan.targets.full
    return plan.targets.current


def entry(plan: RunPlan, change: Change, bus_name: str, instances: tuple[str, ...]) -> dict[str, Any]:
    status = STATUS[change.kind]
    at = plan.snapshot_at.isoformat().replace("+00:00", "Z")
    detail: dict[str, Any] = {
        "schemaVersion": "1",
        "eventId": event_id(plan, change.row.key, status),
        "occurredAt": at,
        plan.entity: json.loads(change.row.line),
        "audiences": [
            {
                "id": plan.audience_id,
                "name": plan.audience_name,
                "status": status.value,
                "origin": plan.origin,
                "updatedAt": at,
            }
        ],
        "changeOrigin": "snapshot",
        "snapshotId": plan.snapshot_id,
        "targetInstances": list(instances),
        "targetTypes": sorted({plan.targets.types[i] for i in instances}),
    }
    return {
        "Source": SNAPSHOT_SOURCE,
        "DetailType": ACCOUNT_MEMBERSHIP_CHANGED if plan.entity == "account" else PROFILE_MEMBERSHIP_CHANGED,
        "Detail": json.dumps(detail, separators=(",", ":"), ensure_ascii=False),
        "EventBusName": bus_name,
    }


def entries(
    plan: RunPlan, changes: Iterable[Change], bus_name: str, sent: dict[str, int]
) -> Iterator[dict[str, Any]]:
    """An entry per change that some instance should receive; counts per instance into `sent`."""
    for change in changes:
        instances = targets_of(plan, change.kind)
        if not instances:
            continue
        for instance in instances:
            sent[instance] = sent.get(instance, 0) + 1
        yield entry(plan, change, bus_name, instances)

"""How far a snapshot run is, read while it runs (`activation snapshot status`): partitions diffed of
all, changes sent per instance so far (from the partitions' done markers), and what the destinations
made of them so far (the pipeline's per-snapshot ledger, as the reconciliation reads it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from snapshots.plan import run_prefix
from snapshots.reconcile import reconcile
from snapshots.state import SnapshotState
from snapshots.store import NotFound, ObjectStore


def run_progress(
    store: ObjectStore,
    state: SnapshotState,
    audience_id: str,
    snapshot_id: str,
    run_key: str | None = None,
    *,
    destination_types: Iterable[str],
) -> dict[str, Any]:
    prefix = run_prefix(audience_id, run_key or snapshot_id)
    progress: dict[str, Any] = {
        "audienceId": audience_id,
        "snapshotId": snapshot_id,
        "runId": run_key or snapshot_id,
    }
    try:
        partitions = len(store.get_json(f"{prefix}partitions.json"))
    except NotFound:
        return progress | {"stage": "preparing"}
    sent: dict[str, int] = {}
    done = 0
    for key in store.keys(f"{prefix}done/"):
        done += 1
        for instance, count in store.get_json(key).get("sent", {}).items():
            sent[instance] = sent.get(instance, 0) + int(count)
    so_far = reconcile({"sent": sent}, state.outcomes(audience_id, snapshot_id, destination_types))
    return progress | {
        "stage": "diffing" if done < partitions else "committing",
        "partitions": partitions,
        "partitionsDone": done,
        "instances": [
            {k: i[k] for k in ("instance", "sent", "delivered", "skipped", "rejected", "pending")}
            for i in so_far["instances"]
        ],
    }

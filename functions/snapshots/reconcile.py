"""Reconciliation of an applied snapshot, per instance that received it: members in the snapshot,
changes sent, and what became of them in the destination's pipeline (delivered, skipped by reason,
rejected by reason, still pending). `undeliveredShare` = (rejected + pending) / sent.

A change the pipeline skips as `duplicate` is a second copy of one already applied there (a resumed
run resends an unfinished partition with the same event ids; EventBridge delivers at least once): it
is counted as `resent`, not as the outcome of another change, so delivered + skipped + rejected +
pending = sent, and copies never hide a change still pending.

Deliveries happen after the run (queues, rate limits), so a reconciliation is provisional until nothing
is pending or the deadline passes; then it is final: stored in the run record, emitted as a metric
(the undelivered-share alarm) and a summary event.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from snapshots.state import SnapshotState

_RESENT = "reason:skipped:duplicate"


def _reasons(counts: dict[str, int], outcome: str) -> dict[str, int]:
    prefix = f"reason:{outcome}:"
    return {
        k.removeprefix(prefix): v for k, v in sorted(counts.items()) if k.startswith(prefix) and k != _RESENT
    }


def reconcile(record: dict[str, Any], outcomes: dict[str, dict[str, int]]) -> dict[str, Any]:
    instances = []
    sent_total = undelivered_total = 0
    for instance_id, sent in sorted((record.get("sent") or {}).items()):
        counts = outcomes.get(instance_id, {})
        delivered, skipped, rejected = (counts.get(k, 0) for k in ("delivered", "skipped", "rejected"))
        resent = counts.get(_RESENT, 0)
        skipped -= resent
        pending = max(0, sent - delivered - skipped - rejected)
        instances.append(
            {
                "instance": instance_id,
                "members": record.get("members", 0),
                "sent": sent,
                "delivered": delivered,
                "skipped": skipped,
                "skippedByReason": _reasons(counts, "skipped"),
                "rejected": rejected,
                "rejectedByReason": _reasons(counts, "rejected"),
                "retried": counts.get("retried", 0),
                "resent": resent,
                "pending": pending,
            }
        )
        sent_total += sent
        undelivered_total += rejected + pending
    return {
        "audienceId": record.get("audienceId"),
        "snapshotId": record.get("snapshotId"),
        "members": record.get("members", 0),
        "instances": instances,
        "pending": sum(i["pending"] for i in instances),
        "undeliveredShare": round(undelivered_total / sent_total, 6) if sent_total else 0.0,
    }


def outcomes_of(state: SnapshotState, record: dict[str, Any]) -> dict[str, dict[str, int]]:
    """What the destinations made of a run's changes so far: the ledgers of the types it was sent to."""
    types = ((record.get("targets") or {}).get("types") or {}).values()
    return state.outcomes(str(record["audienceId"]), str(record["snapshotId"]), types)


def due(record: dict[str, Any], reconciliation: dict[str, Any], now: datetime, deadline: timedelta) -> bool:
    """Final when nothing is pending any more, or when the deadline since the run passed."""
    finished = datetime.fromisoformat(str(record.get("finishedAt")))
    return reconciliation["pending"] == 0 or now - finished >= deadline


def open_runs(state: SnapshotState) -> list[dict[str, Any]]:
    return [r for r in state.runs() if r.get("status") == "APPLIED" and not r.get("reconciledAt")]

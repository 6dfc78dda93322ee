"""Reconciliation arithmetic, and the pipeline's per-snapshot counters it reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from activation_core.batch import _snapshot_counters
from activation_core.outcomes import Outcome
from activation_core.pipeline import InstanceOutcome, RecordResult
from snapshots.reconcile import due, reconcile

RECORD: dict[str, Any] = {
    "audienceId": "a",
    "snapshotId": "s",
    "members": 10,
    "sent": {"i1": 10, "i2": 4},
    "finishedAt": "2026-12-01T10:00:00+00:00",
}


def test_com_08_reconciliation_accounts_for_every_change_sent_per_instance() -> None:
    outcomes = {
        "i1": {
            "delivered": 7,
            "skipped": 1,
            "rejected": 1,
            "reason:skipped:consent": 1,
            "reason:rejected:http_4xx": 1,
        },
        "i2": {"delivered": 4},
    }
    result = reconcile(RECORD, outcomes)
    i1, i2 = result["instances"]
    assert (i1["sent"], i1["delivered"], i1["skipped"], i1["rejected"], i1["pending"]) == (10, 7, 1, 1, 1)
    assert i1["skippedByReason"] == {"consent": 1} and i1["rejectedByReason"] == {"http_4xx": 1}
    assert i2["pending"] == 0
    assert result["undeliveredShare"] == round(2 / 14, 6)  # 1 rejected + 1 pending of 14 sent


def test_a_reconciliation_is_final_when_nothing_is_pending_or_the_deadline_passed() -> None:
    finished = datetime(2026, 12, 1, 10, tzinfo=UTC)
    pending = reconcile(RECORD, {})
    assert not due(RECORD, pending, finished + timedelta(hours=1), timedelta(hours=24))
    assert due(RECORD, pending, finished + timedelta(hours=24), timedelta(hours=24))
    settled = reconcile(RECORD, {"i1": {"delivered": 10}, "i2": {"skipped": 4}})
    assert due(RECORD, settled, finished, timedelta(hours=24))


def test_snapshot_changes_are_counted_per_audience_snapshot_and_instance() -> None:
    results = {
        "m1": RecordResult(
            Outcome.delivered(), [InstanceOutcome("i1", ("a",), Outcome.delivered())], snapshot_id="s"
        ),
        "m2": RecordResult(
            Outcome.rejected("retries_exhausted:http_503"),
            [InstanceOutcome("i1", ("a",), Outcome.retry("http_503"))],
            snapshot_id="s",
        ),
        "m3": RecordResult(
            Outcome.delivered(), [InstanceOutcome("i1", ("a",), Outcome.delivered())]
        ),  # live event
    }
    counters = _snapshot_counters(results)
    assert dict(counters) == {
        "a#s#i1": {"delivered": 1, "rejected": 1, "reason:rejected:retries_exhausted:http_503": 1}
    }


def test_com_08_a_resumed_runs_second_copies_do_not_hide_changes_still_pending() -> None:
    """A run resumed after dying mid-partition sends part of its changes twice; the second copies are
    skipped as `duplicate` by the pipeline. They are not outcomes of further changes: 4 of 14 changes
    still waiting for a rate limit are pending, and the reconciliation is not final."""
    record = RECORD | {"sent": {"i1": 14}}
    outcomes = {"i1": {"delivered": 10, "skipped": 7, "reason:skipped:duplicate": 7}}
    result = reconcile(record, outcomes)
    (i1,) = result["instances"]
    assert (i1["sent"], i1["delivered"], i1["skipped"], i1["pending"], i1["resent"]) == (14, 10, 0, 4, 7)
    assert i1["delivered"] + i1["skipped"] + i1["rejected"] + i1["pending"] == i1["sent"]
    assert i1["skippedByReason"] == {}
    assert result["undeliveredShare"] == round(4 / 14, 6)
    finished = datetime.fromisoformat(RECORD["finishedAt"])
    assert not due(record, result, finished + timedelta(hours=1), timedelta(hours=24))


def test_com_08_a_change_reaching_an_instance_that_stopped_activating_is_skipped_with_its_reason() -> None:
    """The config changed after Prepare chose the targets (the audience removed from one instance, another
    disabled) while the run's changes were queued: each still ends with an outcome the reconciliation
    reads (skipped, by reason), not pending until the deadline and then counted undelivered."""
    from activation_core.config_store import parse_destinations
    from activation_core.pipeline import Pipeline
    from tests.support import load_event, sqs_record
    from tests.unit.layer.recording import SETTINGS, RecordingDestination, config

    document = config("kept", "dropped", "off").model_dump(mode="json", by_alias=True, exclude_none=True)
    document["destinations"][1]["audiences"] = [{"id": "aud-other", "name": "O"}]  # no longer activates
    document["destinations"][2]["enabled"] = False  # disabled
    cfg = parse_destinations(document)
    event = load_event("profile-membership-realized")
    event["detail"].update(
        targetInstances=["kept", "dropped", "off"], changeOrigin="snapshot", snapshotId="s-1"
    )
    results = Pipeline(RecordingDestination(), SETTINGS, lambda: cfg).process([sqs_record(event)])
    counters = _snapshot_counters(results)
    assert dict(counters) == {
        "aud-expo-invitees#s-1#kept": {"delivered": 1},
        "aud-expo-invitees#s-1#dropped": {"skipped": 1, "reason:skipped:audience_not_activated": 1},
        "aud-expo-invitees#s-1#off": {"skipped": 1, "reason:skipped:instance_disabled": 1},
    }
    record = {"audienceId": "aud-expo-invitees", "snapshotId": "s-1", "members": 1,
              "sent": {"kept": 1, "dropped": 1, "off": 1}}  # fmt: skip
    outcomes = {key.rsplit("#", 1)[1]: dict(counts) for key, counts in counters.items()}
    assert reconcile(record, outcomes)["pending"] == 0

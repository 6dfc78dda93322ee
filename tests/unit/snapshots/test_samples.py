"""The sample snapshots in events/snapshots/ are valid: manifests, lines and checksums agree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from activation_core.models.snapshots import MANIFEST_SUFFIX, SnapshotManifest, SnapshotReadyDetail
from snapshots.members import ReadReport, read_members

SAMPLES = Path(__file__).resolve().parents[3] / "events" / "snapshots"


@pytest.mark.parametrize("manifest_path", sorted(SAMPLES.glob(f"*{MANIFEST_SUFFIX}")), ids=lambda p: p.name)
def test_sample_snapshot_matches_its_manifest(manifest_path: Path) -> None:
    manifest = SnapshotManifest.model_validate_json(manifest_path.read_text())
    members = manifest_path.with_name(manifest_path.name.removesuffix(MANIFEST_SUFFIX))
    report = ReadReport()
    with members.open("rb") as stream:
        read = list(read_members(stream, manifest, members.name.endswith(".gz"), report))
    assert report.sha256 == manifest.checksum
    assert report.lines == manifest.member_count == len(read)
    assert report.bad == 0


def test_sample_snapshot_ready_event_points_at_a_manifest() -> None:
    event = json.loads((SAMPLES / "snapshot-ready.json").read_text())
    assert event["detail-type"] == "Audience Snapshot Ready"
    assert SnapshotReadyDetail.model_validate(event["detail"]).manifest_key.endswith(MANIFEST_SUFFIX)

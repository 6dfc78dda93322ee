"""Writing a snapshot (members file + manifest): what upstream teams produce, and what
`activation snapshot push`, the samples, the tests and the benches use."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from activation_core.models.snapshots import MANIFEST_SUFFIX, SnapshotManifest


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def count_lines(path: Path) -> int:
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())


def _text_writer(path: Path) -> TextIO:
    if not path.name.endswith(".gz"):
        return path.open("w", encoding="utf-8")
    return io.TextIOWrapper(gzip.GzipFile(path, "wb", mtime=0), encoding="utf-8")


def write_members(path: Path, members: Iterable[dict[str, Any]]) -> int:
    """JSON Lines, gzip when the name ends in .gz; returns the number of lines. The same members give
    the same bytes (gzip's header time fixed): a file written again keeps its checksum, which a
    snapshot id reused with another file is refused by (`snapshot_id_reused`)."""
    count = 0
    with _text_writer(path) as out:
        for member in members:
            out.write(json.dumps(member, separators=(",", ":"), ensure_ascii=False) + "\n")
            count += 1
    return count


def manifest_for(
    members_path: Path,
    *,
    audience_id: str,
    audience_name: str,
    snapshot_id: str,
    snapshot_at: datetime,
    entity: str = "profile",
    origin: str = "segmentation",
    full: bool = False,
    identity_namespace: str | None = None,
) -> SnapshotManifest:
    """The manifest of an existing members file: its line count and checksum are computed here."""
    return SnapshotManifest.model_validate(
        {
            "audienceId": audience_id,
            "audienceName": audience_name,
            "entity": entity,
            "origin": origin,
            "snapshotId": snapshot_id,
            "snapshotAt": snapshot_at,
            "memberCount": count_lines(members_path),
            "checksum": sha256_of(members_path),
            "full": full,
            "identityNamespace": identity_namespace,
        }
    )


def manifest_path(members_path: Path) -> Path:
    return members_path.with_name(members_path.name + MANIFEST_SUFFIX)


def write_manifest(members_path: Path, manifest: SnapshotManifest) -> Path:
    path = manifest_path(members_path)
    path.write_text(manifest.model_dump_json(by_alias=True, exclude_none=True, indent=2) + "\n")
    return path

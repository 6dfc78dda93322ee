"""A snapshot bucket on disk (DirStore), an in-process moto state table, and snapshot builders."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from activation_core import aws
from activation_core.models.config import DestinationsConfig
from snapshots.files import manifest_for, write_manifest, write_members
from snapshots.state import SnapshotState
from snapshots.store import DirStore
from tests.support import create_state_table

AUDIENCE = "aud-expo-invitees"
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def profile(n: int, title: str = "Engineer") -> dict[str, Any]:
    return {
        "identities": {"email": f"person{n}@example.com", "crmId": f"CRM-{n}"},
        "attributes": {"person": {"name": {"firstName": f"P{n}", "lastName": "Test"}, "jobTitle": title}},
        "consents": {"marketing.email": "y"},
    }


def config(*instances: tuple[str, str, bool]) -> DestinationsConfig:
    """(id, type, activates the audience)"""
    return DestinationsConfig.model_validate(
        {
            "destinations": [
                {
                    "id": instance_id,
                    "type": kind,
                    "secret": f"s/{instance_id}",
                    "audiences": [{"id": AUDIENCE, "name": "Expo"}]
                    if active
                    else [{"id": "aud-other", "name": "O"}],
                }
                for instance_id, kind, active in instances
            ]
        }
    )


@pytest.fixture
def state(monkeypatch: pytest.MonkeyPatch) -> Iterator[SnapshotState]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    aws.reset_clients()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_state_table(client, "state")
        yield SnapshotState("state", client)
    aws.reset_clients()


@pytest.fixture
def store(tmp_path: Path) -> DirStore:
    return DirStore(tmp_path / "bucket")


SnapshotWriter = Callable[..., str]


@pytest.fixture
def put_snapshot(store: DirStore) -> SnapshotWriter:
    """Write members + manifest under incoming/; returns the manifest key."""

    def write(
        snapshot_id: str,
        members: list[dict[str, Any]] | list[str],
        *,
        hours: int = 0,
        gz: bool = True,
        tamper: Callable[[dict[str, Any]], None] | None = None,
        **fields: Any,
    ) -> str:
        folder = store.root / "incoming"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{snapshot_id}.jsonl{'.gz' if gz else ''}"
        if members and isinstance(members[0], str):
            path.write_text("\n".join(str(m) for m in members) + "\n")
        else:
            write_members(path, members)  # type: ignore[arg-type]
        manifest = manifest_for(
            path,
            audience_id=fields.pop("audience_id", AUDIENCE),
            audience_name="Expo 2026 invitees",
            snapshot_id=snapshot_id,
            snapshot_at=T0 + timedelta(hours=hours),
            **fields,
        )
        manifest_file = write_manifest(path, manifest)
        if tamper is not None:
            import json

            data = json.loads(manifest_file.read_text())
            tamper(data)
            manifest_file.write_text(json.dumps(data))
        return str(manifest_file.relative_to(store.root))

    return write

"""The snapshot contract: the full membership of one audience at one time (issue 13).

A snapshot is two S3 objects an upstream team (or `activation snapshot push`) writes:

* the **members file**: JSON Lines (optionally gzip, name ending `.gz`), one member per line in the event
  contract's shape: `{"identities": {...}, "attributes": {...}, "consents": {...}}` for a profile
  audience, `{"identities": {...}, "attributes": {...}}` for an account audience;
* the **manifest** (`<members file>.manifest.json`, written last): audience, origin, snapshot time,
  member count and the SHA-256 of the members file's bytes as stored.

JSON Schemas in `shared/schemas/` are generated from these models (`make schemas`) and drift-tested.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MANIFEST_SUFFIX = ".manifest.json"
SNAPSHOT_READY = "Audience Snapshot Ready"
SNAPSHOT_APPLIED = "Audience Snapshot Applied"
SNAPSHOT_RECONCILED = "Audience Snapshot Reconciled"
SNAPSHOT_SOURCE = "activation.snapshots"
_CHECKSUM = re.compile(r"^sha256:[0-9a-f]{64}$")
_SNAPSHOT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class _Line(BaseModel):
    # A line with unknown top-level keys is refused: a typo ("identites") must not pass as an empty member.
    model_config = ConfigDict(extra="forbid", frozen=True)


class SnapshotProfileMember(_Line):
    """One line of a profile audience's members file (the event contract's `profile`)."""

    identities: dict[str, str] = Field(min_length=1, description="namespace -> value; at least one")
    attributes: dict[str, Any] = Field(default_factory=dict)
    consents: dict[str, Literal["y", "n"]] = Field(default_factory=dict)


class SnapshotAccountMember(_Line):
    """One line of an account audience's members file (the event contract's `account`)."""

    identities: dict[str, str] = Field(min_length=1, description="namespace -> value; at least one")
    attributes: dict[str, Any] = Field(default_factory=dict)


class SnapshotManifest(BaseModel):
    """`<members file>.manifest.json`: what the members file holds and how to check it."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_version: Literal["1"] = Field(default="1", alias="schemaVersion")
    audience_id: str = Field(alias="audienceId", min_length=1, max_length=256)
    audience_name: str = Field(alias="audienceName", min_length=1, max_length=512)
    entity: Literal["profile", "account"] = "profile"
    origin: str = Field(
        default="segmentation", max_length=64, description="The audience's origin (segmentation, upload, ...)"
    )
    snapshot_id: str = Field(
        alias="snapshotId", description="Unique per audience; letters, digits, '.', '_', '-' (<= 128)"
    )
    snapshot_at: datetime = Field(
        alias="snapshotAt",
        description="When the membership was taken; must be later than the last one applied",
    )
    member_count: int = Field(alias="memberCount", ge=0, description="Lines in the members file")
    checksum: str = Field(description="sha256:<hex> of the members file's bytes as stored (after gzip)")
    members_key: str | None = Field(
        default=None,
        alias="membersKey",
        description="S3 key of the members file; default: the manifest's key without .manifest.json",
    )
    identity_namespace: str | None = Field(
        default=None,
        alias="identityNamespace",
        description="Identity that keys a member across snapshots (e.g. email); default: all identities",
    )
    full: bool = Field(default=False, description="Resync: send every member, not only the changes")

    @field_validator("checksum")
    @classmethod
    def _checksum_shape(cls, value: str) -> str:
        if not _CHECKSUM.match(value):
            raise ValueError("checksum must be 'sha256:' followed by 64 lower-case hex digits")
        return value

    @field_validator("snapshot_id")
    @classmethod
    def _snapshot_id_shape(cls, value: str) -> str:
        if not _SNAPSHOT_ID.match(value):
            raise ValueError("snapshotId must be 1-128 letters, digits, '.', '_' or '-'")
        return value

    @field_validator("snapshot_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("snapshotAt must carry a time zone (e.g. 2026-12-07T10:00:00Z)")
        return value


class SnapshotReadyDetail(BaseModel):
    """`detail` of an `Audience Snapshot Ready` event: where the manifest is."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    bucket: str = Field(min_length=3)
    manifest_key: str = Field(alias="manifestKey", min_length=1)

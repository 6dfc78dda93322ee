"""A snapshot run's plan: what Prepare decided, handed to every partition task and to Commit.

Small (a few hundred bytes plus the instance lists) so it fits a Step Functions payload many times over.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class Targets(BaseModel):
    """Which instances get which changes.

    `current`: every enabled instance that activates the audience (added and changed members);
    `full`: those that get every member (first snapshot since activation: a backfill; or a resync);
    `removal`: those that had the previous snapshot and still activate the audience (exited members)."""

    model_config = ConfigDict(frozen=True)

    current: tuple[str, ...]
    full: tuple[str, ...]
    removal: tuple[str, ...]
    types: dict[str, str] = Field(description="instance id -> destination type")


class RunPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    bucket: str
    audience_id: str
    audience_name: str
    origin: str
    entity: str
    snapshot_id: str
    snapshot_at: datetime
    bits: int
    run_prefix: str
    state_prefix: str
    previous_snapshot_id: str | None = None
    previous_prefix: str | None = None
    previous_bits: int = 0
    targets: Targets
    members: int
    lines: int
    bad_lines: int


def run_prefix(audience_id: str, snapshot_id: str) -> str:
    return f"runs/{audience_id}/{snapshot_id}/"


def state_prefix(audience_id: str, snapshot_id: str) -> str:
    return f"state/{audience_id}/{snapshot_id}/"

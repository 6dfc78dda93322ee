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


class Unsettled(BaseModel):
    """A run of the audience that sent changes and was not applied (failed, or stopped): the vendors may
    hold any of them, so the next run of the audience sends again every member it may have changed."""

    model_config = ConfigDict(frozen=True)

    run_key: str
    snapshot_at: datetime
    prefix: str = Field(description="its members as Prepare partitioned them: runs/<audience>/<run>/new/")
    bits: int
    instances: tuple[str, ...] = Field(default=(), description="where it sends (its targets' current)")
    resync: bool = Field(
        default=False,
        description="it was a resync because what earlier runs sent was forgotten: until a run is applied, "
        "every later one is a resync too",
    )


class Recheck(BaseModel):
    """Every member the runs of the audience not applied since its applied snapshot (or since none) may
    have changed at the vendors, folded into ONE set (snapshots/recheck.py): sorted partitions of rows
    `key, UNSETTLED, line` under `prefix`. However many runs failed, a diff task reads one set and the
    pointer holds one of these: memory, the item and the plan stay flat."""

    model_config = ConfigDict(frozen=True)

    prefix: str = Field(description="runs/<audience>/<the run that folded it>/unsettled/<run folded last>/")
    bits: int
    runs: int = Field(description="how many runs it folds")
    last_run: str = Field(description="the latest of them (refusals name it)")
    snapshot_at: datetime = Field(description="the latest of their snapshots' times")
    instances: tuple[str, ...] = Field(default=(), description="every instance they sent to")
    resync: bool = Field(default=False, description="one of them was a resync (Unsettled.resync)")


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
    # A backfill re-sends the applied membership (its partitions under `state_prefix`) to the instances
    # that activated the audience since; it has its own run id (its run prefix and run record).
    backfill: bool = False
    run_id: str | None = None
    # Runs since the applied snapshot that sent changes and were not applied, folded (docs/snapshots.md,
    # "Runs of one audience"): every member they may have changed is sent again as this snapshot has it.
    recheck: Recheck | None = None
    checksum: str = ""  # the members file's (the manifest's): a snapshotId names one file ("" for a backfill)
    # Listed runs the fold had no time for (recheck.fold): not re-checked, this run is a resync instead.
    dropped_runs: tuple[str, ...] = ()

    @property
    def run_key(self) -> str:
        """The run record's and run prefix's name: the snapshot id, or the backfill's own."""
        return self.run_id or self.snapshot_id

    def lease_owner(self, owner: object) -> str:
        """The name the run holds its audience's lease under: `owner`, the execution's (Prepare's output
        passes it on); or, for an execution started before the deploy that made the execution the
        lease's owner (it keeps its old definition and Prepare's output has none), the run's key."""
        return str(owner or self.run_key)

    def run_fields(self) -> dict[str, list[str]]:
        """What the run record says of the plan beyond its counts, applied or failed (`activation snapshot
        status` shows it): the runs the fold dropped, whose additions may stay extra at the vendor."""
        return {"droppedRuns": list(self.dropped_runs)} if self.dropped_runs else {}

    @property
    def new_prefix(self) -> str:
        """Where the membership to send lies: this run's partitions, or (backfill) the applied ones."""
        return self.state_prefix if self.backfill else f"{self.run_prefix}new/"


class BackfillRequest(BaseModel):
    """Start input of a backfill run (`activation snapshot backfill`): the audience's applied snapshot,
    sent to the enabled instances that activate the audience and have not received it."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    bucket: str
    audience_id: str = Field(alias="audienceId", min_length=1)
    snapshot_id: str = Field(alias="snapshotId", min_length=1, description="the applied snapshot it sends")
    run_id: str = Field(alias="runId", pattern=r"^[A-Za-z0-9._-]{1,128}$")


def backfill_run_id(snapshot_id: str, at: datetime) -> str:
    return f"{snapshot_id}.backfill-{at.strftime('%Y%m%dT%H%M%SZ')}"


def run_prefix(audience_id: str, snapshot_id: str) -> str:
    return f"runs/{audience_id}/{snapshot_id}/"


def state_prefix(audience_id: str, snapshot_id: str) -> str:
    return f"state/{audience_id}/{snapshot_id}/"

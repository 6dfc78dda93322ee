"""Per audience: which snapshot is applied (the pointer to its partitions), every run's record, and the
lease that lets one run of the audience at a time.

State table items: `pk=snapshot`, `sk=<audience>` (the pointer; moved only by a conditional write to a
later snapshot; it also holds the runs since it, or since none, that may have sent changes and were not
applied: `unsettled`, the one run past its Prepare, and `recheck`, the others folded into one set),
`pk=snapshot-run`, `sk=<audience>#<snapshot>` (status, counts, reconciliation) and
`pk=lock#snapshot#<audience>`, `sk=lock` (the audience's run lease, activation_core.locks).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from activation_core import aws, naming
from activation_core.locks import Lease, LeaseLock
from snapshots.plan import Recheck, Unsettled

# How long a run holds its audience without renewing (each step renews it): longer than any step with its
# retries (a task runs at most 15 minutes), so only a run that stopped (aborted, timed out) loses it.
LEASE_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class Pending:
    """Runs of the audience since its applied snapshot (or since none: a failed first snapshot) that may
    have changed members at the vendors and were not applied. `open`: listed by their Prepare before they
    send (one, once the next Prepare folded the others; older items may list more); `recheck`: the others,
    folded into one set of members. Bounded whatever the number of failures."""

    open: tuple[Unsettled, ...] = ()
    recheck: Recheck | None = None


@dataclass(frozen=True, slots=True)
class Pointer:
    snapshot_id: str
    snapshot_at: datetime
    bits: int
    prefix: str
    instances: tuple[str, ...]
    pending: Pending = Pending()


class StaleSnapshot(Exception):
    """Another run applied a later snapshot first."""


class AudienceBusy(Exception):
    """Another run of the audience holds its lease: this one waits (the state machine retries), then is
    refused."""


class LeaseLost(Exception):
    """The run's lease on its audience expired and another run took it: this run must stop."""


class SnapshotState:
    def __init__(
        self, table: str, dynamodb: Any | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.table = table
        self._dynamodb = dynamodb
        self._clock = clock  # the lease's (tests move it past an expiry)

    @property
    def dynamodb(self) -> Any:
        if self._dynamodb is None:
            self._dynamodb = aws.client("dynamodb")
        return self._dynamodb

    def audience(self, audience_id: str) -> tuple[Pointer | None, Pending]:
        """The applied snapshot (None if there is none yet) and the runs pending since, in one read."""
        item = self.dynamodb.get_item(
            TableName=self.table, Key={"pk": {"S": "snapshot"}, "sk": {"S": audience_id}}, ConsistentRead=True
        ).get("Item")
        if not item:
            return None, Pending()
        recheck = item.get("recheck", {}).get("S")
        pending = Pending(
            open=tuple(
                Unsettled.model_validate(u) for u in json.loads(item.get("unsettled", {}).get("S", "[]"))
            ),
            recheck=Recheck.model_validate_json(recheck) if recheck else None,
        )
        if "snapshotId" not in item:  # a first snapshot's run not applied: pending runs, no pointer
            return None, pending
        pointer = Pointer(
            snapshot_id=item["snapshotId"]["S"],
            snapshot_at=datetime.fromisoformat(item["snapshotAt"]["S"]),
            bits=int(item["bits"]["N"]),
            prefix=item["prefix"]["S"],
            instances=tuple(json.loads(item["instances"]["S"])),
            pending=pending,
        )
        return pointer, pending

    def pointer(self, audience_id: str) -> Pointer | None:
        return self.audience(audience_id)[0]

    def advance(self, audience_id: str, new: Pointer) -> None:
        """Point the audience at `new`, only if nothing later was applied meanwhile."""
        self._put_pointer(
            audience_id,
            self.item(audience_id, new, new.pending),
            "attribute_not_exists(epoch) OR epoch < :t OR snapshotId = :id",
            {":t": {"N": str(new.snapshot_at.timestamp())}, ":id": {"S": new.snapshot_id}},
        )

    def set_pending(self, audience_id: str, applied: Pointer | None, pending: Pending) -> None:
        """Record, before a run sends anything, the runs that may change members at the vendors until one
        is applied: also when the audience has no applied snapshot (a failed first snapshot's additions
        are removed by the next run). Conditional on the applied snapshot read (none: still none)."""
        if applied is None:
            condition, values = "attribute_not_exists(snapshotId)", None
        else:
            condition, values = "snapshotId = :id", {":id": {"S": applied.snapshot_id}}
        self._put_pointer(audience_id, self.item(audience_id, applied, pending), condition, values)

    @staticmethod
    def item(audience_id: str, applied: Pointer | None, pending: Pending) -> dict[str, Any]:
        """The pointer item: its size is bounded (one open run, one folded set, the instance lists)."""
        item: dict[str, Any] = {
            "pk": {"S": "snapshot"},
            "sk": {"S": audience_id},
            "unsettled": {"S": json.dumps([u.model_dump(mode="json") for u in pending.open])},
        }
        if pending.recheck is not None:
            item["recheck"] = {"S": pending.recheck.model_dump_json()}
        if applied is not None:
            item |= {
                "snapshotId": {"S": applied.snapshot_id},
                "snapshotAt": {"S": applied.snapshot_at.isoformat()},
                "epoch": {"N": str(applied.snapshot_at.timestamp())},
                "bits": {"N": str(applied.bits)},
                "prefix": {"S": applied.prefix},
                "instances": {"S": json.dumps(list(applied.instances))},
            }
        return item

    def _put_pointer(
        self, audience_id: str, item: dict[str, Any], condition: str, values: dict[str, Any] | None
    ) -> None:
        try:
            self.dynamodb.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression=condition,
                **({"ExpressionAttributeValues": values} if values else {}),
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise StaleSnapshot(audience_id) from exc
            raise

    def _lock(self) -> LeaseLock:
        return LeaseLock(self.table, dynamodb=self.dynamodb, clock=self._clock)

    def hold(self, audience_id: str, owner: str, seconds: float = LEASE_SECONDS) -> bool:
        """Take the audience's lease for `owner` (an execution; again, if it holds it already);
        AudienceBusy if another holds it. True when this call took it, False when the owner held it
        already (a retried Prepare: it must not give back what an earlier attempt took)."""
        lock = self._lock()
        before = lock.holder(f"snapshot#{audience_id}")
        if lock.try_acquire(f"snapshot#{audience_id}", seconds, owner=owner) is None:
            held = lock.holder(f"snapshot#{audience_id}")
            by = (
                f"run '{held.owner}' until {datetime.fromtimestamp(held.expires_at, UTC).isoformat()}"
                if held
                else "another run"
            )
            raise AudienceBusy(f"audience '{audience_id}' is held by {by}")
        return before is None or before.owner != owner or before.expires_at < self._clock()

    def renew(self, audience_id: str, owner: str, seconds: float = LEASE_SECONDS) -> None:
        """Extend this run's lease; LeaseLost if it expired and another run took the audience."""
        if self._lock().renew(Lease(f"snapshot#{audience_id}", owner, 0.0), seconds) is None:
            raise LeaseLost(f"run '{owner}' no longer holds audience '{audience_id}'")

    def release(self, audience_id: str, owner: str) -> None:
        """Give the audience back (only if this run still holds it)."""
        self._lock().release(Lease(f"snapshot#{audience_id}", owner, 0.0))

    def put_run(
        self, audience_id: str, snapshot_id: str, record: dict[str, Any], *, keep_applied: bool = False
    ) -> bool:
        """Write the run's record; `keep_applied`: not over one already APPLIED (a second execution of
        the same manifest failing after the first applied it). False when the applied record stays."""
        condition = (
            {
                "ConditionExpression": "attribute_not_exists(pk) OR #status <> :applied",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {":applied": {"S": "APPLIED"}},
            }
            if keep_applied
            else {}
        )
        try:
            self.dynamodb.put_item(
                TableName=self.table,
                Item={
                    "pk": {"S": "snapshot-run"},
                    "sk": {"S": f"{audience_id}#{snapshot_id}"},
                    "record": {"S": json.dumps(record, default=str)},
                    "status": {"S": str(record.get("status", ""))},
                },
                **condition,
            )
        except ClientError as exc:
            if (
                keep_applied
                and exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"
            ):
                return False
            raise
        return True

    def outcomes(
        self, audience_id: str, snapshot_id: str, destination_types: Iterable[str]
    ) -> dict[str, dict[str, int]]:
        """The pipeline's counters of this snapshot's changes, per instance (activation_core.batch):
        one query per destination type the snapshot was sent to (each type's own ledger partition)."""
        prefix = f"{audience_id}#{snapshot_id}#"
        out: dict[str, dict[str, int]] = {}
        paginator = self.dynamodb.get_paginator("query")
        for destination_type in sorted(set(destination_types)):
            for page in paginator.paginate(
                TableName=self.table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
                ExpressionAttributeValues={
                    ":pk": {"S": naming.snapshot_ledger_key(destination_type)},
                    ":p": {"S": prefix},
                },
                ConsistentRead=True,
            ):
                for item in page.get("Items", []):
                    out[item["sk"]["S"].removeprefix(prefix)] = {
                        k: int(v["N"]) for k, v in item.items() if "N" in v
                    }
        return out

    def run(self, audience_id: str, run_key: str) -> dict[str, Any] | None:
        item = self.dynamodb.get_item(
            TableName=self.table,
            Key={"pk": {"S": "snapshot-run"}, "sk": {"S": f"{audience_id}#{run_key}"}},
            ConsistentRead=True,
        ).get("Item")
        return json.loads(item["record"]["S"]) if item else None

    def runs(self, audience_id: str | None = None) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk" + (" AND begins_with(sk, :a)" if audience_id else ""),
            "ExpressionAttributeValues": {":pk": {"S": "snapshot-run"}}
            | ({":a": {"S": f"{audience_id}#"}} if audience_id else {}),
        }
        out: list[dict[str, Any]] = []
        for page in self.dynamodb.get_paginator("query").paginate(**kwargs):
            out += [json.loads(item["record"]["S"]) for item in page.get("Items", [])]
        return out

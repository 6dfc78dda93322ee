"""Erasure from the audiences' stored memberships: what the snapshot bucket keeps of a person under state/.

A `Profile Erasure Requested` event reaches this function through its own queue (template.yaml,
SnapshotErasureQueue). For every audience with an applied snapshot, the person's rows are removed
from the current membership (state/<audience>/<snapshot>/part-NNNN.tsv.gz) and the partition is
written again. A member's key is the hash of its identity (members.py), and the partition is chosen
by the key's top bits, so an audience keyed by one identity (`identityNamespace`) needs one partition
read and rewritten per value the request names for it (as given and normalised). An audience keyed
by all of a member's identities cannot be placed from a request that may name only some of them: its
partitions are all read (streamed) and only those holding the person are rewritten. Which keying an
audience uses is read from its first stored row (the manifest is not kept).

A row is the person's when its key is one of the request's keys or its identities share a digest with
the request's (activation_core.erasure.identity_digests: normalised, so case does not hide a match).
Memberships the pointer does not name (a run not committed yet, or one that failed) are erased too,
every listed partition read; one applied once and since superseded (its deletion by a commit not done)
is deleted. The answer is recorded in the erasure ledger under the stack's own type (`stack` /
`snapshot-memberships`: `erased` with the number of audiences, or `not_found`).

Concurrency with a running snapshot. Before erasing, the request leaves a **marker** (pk
`snapshot-erasure`, the request's identity digests and member keys, never a value, kept as long as a
membership may be: STATE_RETENTION_DAYS). A commit that moves an audience's pointer applies again every
marker recorded after its snapshot was taken (`reapply`, called by runner.commit): a snapshot taken
before the erasure cannot bring the person back, one taken after it may (the upstream still has the
person). Whichever of the two comes second sees the other: the marker is written before the erasure
reads the pointers, and the commit reads the markers after moving the pointer. If a commit moves the
pointer while the erasure rewrites the superseded membership, the erasure deletes what it wrote there
(the commit deleted that membership) and erases the new one.

The upstream remains the source: a snapshot that still lists the person after the erasure adds them
again. Erase them upstream first (docs/operations.md, "Erasure requests").
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from activation_core import aws, erasure
from activation_core.guards import normalise_identity
from activation_core.models.events import ErasureRequestDetail
from activation_core.observability import logger
from snapshots.members import member_key
from snapshots.partitions import Row, partition_name, partition_of, read_rows, write_sorted
from snapshots.plan import Recheck, RunPlan
from snapshots.state import SnapshotState
from snapshots.store import NotFound, ObjectStore, S3Store

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

STORE = "snapshot-memberships"  # the ledger's instance column for this store
MARKER = "snapshot-erasure"  # state table partition of the markers a commit applies again
DEFAULT_STATE_RETENTION_DAYS = 400
# The longest an erasure runs after writing its marker: the function's Timeout (template.yaml,
# SnapshotErasureFunction; tests/unit/template/test_security.py holds them equal).
ERASURE_SECONDS = 900.0
_ALL_IDENTITIES = ""  # the keying of an audience without `identityNamespace`


@dataclass(frozen=True, slots=True)
class Person:
    """What finds a person's rows without their values: identity digests and possible member keys."""

    digests: frozenset[str]
    keys: frozenset[str]
    # namespace -> the member keys the request gives for an audience keyed by that namespace
    by_namespace: Mapping[str, frozenset[str]]

    @classmethod
    def of(cls, identities: Mapping[str, str]) -> Person:
        by_namespace: dict[str, frozenset[str]] = {}
        for name, value in identities.items():
            variants = {str(value), normalise_identity(name, value)}
            by_namespace[name] = frozenset(
                key for v in variants if (key := member_key({name: v}, name)) is not None
            )
        whole = member_key(dict(identities), None)
        keys = set().union(*by_namespace.values()) | ({whole} if whole else set())
        return cls(frozenset(erasure.identity_digests(identities)), frozenset(keys), by_namespace)

    def holds(self, row: Row) -> bool:
        if row.key in self.keys:
            return True
        identities = json.loads(row.line).get("identities", {})
        return bool(erasure.identity_digests(identities) & self.digests)

    def as_item(self) -> dict[str, Any]:
        return {
            "digests": {"SS": sorted(self.digests)},
            "keys": {"SS": sorted(self.keys)},
            "byNamespace": {"S": json.dumps({n: sorted(k) for n, k in self.by_namespace.items()})},
        }

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Person:
        by_namespace = {n: frozenset(k) for n, k in json.loads(item["byNamespace"]["S"]).items()}
        return cls(frozenset(item["digests"]["SS"]), frozenset(item["keys"]["SS"]), by_namespace)


@dataclass(frozen=True, slots=True)
class Membership:
    """Where one stored membership is: its prefix and its 2^bits partitions."""

    prefix: str
    bits: int


def keying(row: Row) -> str:
    """The identity namespace that keyed this row, or `_ALL_IDENTITIES`."""
    identities: dict[str, str] = json.loads(row.line).get("identities", {})
    for name, value in identities.items():
        if member_key({name: value}, name) == row.key:
            return name
    return _ALL_IDENTITIES


def _first_row(store: ObjectStore, membership: Membership) -> Row | None:
    for index in range(1 << membership.bits):
        try:
            for row in read_rows(store, f"{membership.prefix}{partition_name(index)}"):
                return row
        except NotFound:
            continue
    return None


def candidate_partitions(store: ObjectStore, membership: Membership, person: Person) -> list[int]:
    """The partitions that may hold the person: one per key when the audience is keyed by an identity
    the request names, otherwise all of them."""
    every = list(range(1 << membership.bits))
    first = _first_row(store, membership)
    if first is None:
        return []  # an empty membership
    namespace = keying(first)
    if namespace == _ALL_IDENTITIES or namespace not in person.by_namespace:
        return every
    return sorted({partition_of(key, membership.bits) for key in person.by_namespace[namespace]})


def erase_partition(store: ObjectStore, key: str, person: Person) -> int:
    """Rewrite one partition without the person's rows (bounded by the partition target); rows removed."""
    try:
        rows = list(read_rows(store, key))
    except NotFound:
        return 0
    kept = [row for row in rows if not person.holds(row)]
    if len(kept) < len(rows):
        write_sorted(store, key, kept)  # still sorted: a partition's rows keep their order
    return len(rows) - len(kept)


def erase_membership(store: ObjectStore, membership: Membership, person: Person) -> list[str]:
    """The person removed from one membership; the partitions rewritten."""
    written = []
    for index in candidate_partitions(store, membership, person):
        key = f"{membership.prefix}{partition_name(index)}"
        if erase_partition(store, key, person):
            written.append(key)
    return written


def audiences(state: SnapshotState) -> Iterator[str]:
    pages = state.dynamodb.get_paginator("query").paginate(
        TableName=state.table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "snapshot"}},
        ProjectionExpression="sk",
    )
    for page in pages:
        for item in page.get("Items", []):
            yield item["sk"]["S"]


def erase_audience(store: ObjectStore, state: SnapshotState, audience_id: str, person: Person) -> bool:
    """The person removed from the audience's current membership; whether they were in it."""
    found = False
    pointer = state.pointer(audience_id)
    while pointer is not None:
        written = erase_membership(store, Membership(pointer.prefix, pointer.bits), person)
        found = found or bool(written)
        after = state.pointer(audience_id)
        if after is None or after.prefix == pointer.prefix:
            return found
        # A commit moved the pointer meanwhile and deleted this membership: what was written again
        # there goes too, and the new membership is erased (the commit's reapply may have missed it).
        for key in written:
            store.delete_prefix(key)
        pointer = after
    return found


def erase_strays(store: ObjectStore, state: SnapshotState, audience_id: str, person: Person) -> bool:
    """The person removed from the audience's memberships the pointer does not name: a run not committed
    (yet), or one that failed. One superseded by a later snapshot (its commit deletes it) is deleted."""
    by_prefix: dict[str, list[str]] = {}
    for key in store.keys(f"state/{audience_id}/"):
        if key.endswith(".tsv.gz"):
            by_prefix.setdefault(key.rsplit("/", 1)[0] + "/", []).append(key)
    applied = {run["snapshotId"] for run in state.runs(audience_id) if run.get("status") == "APPLIED"}
    found = False
    for prefix, keys in sorted(by_prefix.items()):
        current = state.pointer(audience_id)  # read after the run records: an APPLIED one moved it
        if current is not None and prefix == current.prefix:
            continue
        if prefix.rstrip("/").rsplit("/", 1)[-1] in applied:
            # Applied once, no longer current: superseded for good (the pointer only moves forward).
            store.delete_prefix(prefix)
            continue
        # Not committed: its size in partitions is not stored here, so every partition is read.
        found = sum(erase_partition(store, key, person) for key in sorted(keys)) > 0 or found
    return found


def erase_folded(store: ObjectStore, state: SnapshotState, audience_id: str, person: Person) -> bool:
    """The person removed from the audience's folded set of failed runs to re-check (snapshots/recheck.py,
    under runs/): each fold copies it forward, so left as it was the person's line would outlive
    SnapshotRunRetentionDays for as long as runs keep failing. The partitions of the runs listed and not
    yet folded are left alone (one may be in flight: a commit applies the erasure to what it writes)."""
    recheck = state.audience(audience_id)[1].recheck
    if recheck is None:
        return False
    return bool(erase_membership(store, Membership(recheck.prefix, recheck.bits), person))


def mark(state: SnapshotState, request_id: str, person: Person, retention_days: int, now: float) -> None:
    state.dynamodb.put_item(
        TableName=state.table,
        Item={
            "pk": {"S": MARKER},
            "sk": {"S": request_id},
            "erasedAt": {"N": str(now)},
            "ttl": {"N": str(int(now + retention_days * 86400))},
            **person.as_item(),
        },
    )


def erase_everywhere(
    store: ObjectStore,
    state: SnapshotState,
    request_id: str,
    identities: Mapping[str, str],
    *,
    retention_days: int = DEFAULT_STATE_RETENTION_DAYS,
    now: float | None = None,
) -> int:
    """The person removed from every audience's stored membership; in how many audiences they were."""
    person = Person.of(identities)
    mark(state, request_id, person, retention_days, time.time() if now is None else now)
    erased = sum(
        erase_audience(store, state, audience, person)
        | erase_strays(store, state, audience, person)
        | erase_folded(store, state, audience, person)
        for audience in sorted(audiences(state))
    )
    logger.info("snapshot memberships erased", extra={"audiences": erased})
    return erased


def markers_since(state: SnapshotState, epoch: float) -> Iterable[Person]:
    pages = state.dynamodb.get_paginator("query").paginate(
        TableName=state.table,
        KeyConditionExpression="pk = :pk",
        FilterExpression="erasedAt > :t",
        ExpressionAttributeValues={":pk": {"S": MARKER}, ":t": {"N": str(epoch)}},
        ConsistentRead=True,
    )
    for page in pages:
        for item in page.get("Items", []):
            yield Person.from_item(item)


def apply_markers(store: ObjectStore, state: SnapshotState, membership: Membership, epoch: float) -> int:
    """The erasures recorded after `epoch`, applied to one membership; how many people were removed."""
    return sum(bool(erase_membership(store, membership, person)) for person in markers_since(state, epoch))


def reapply(store: ObjectStore, state: SnapshotState, plan: RunPlan) -> int:
    """After a commit moved the pointer to `plan`'s membership: the erasures recorded after its snapshot
    was taken, applied to it. How many people were removed again."""
    again = apply_markers(
        store, state, Membership(plan.state_prefix, plan.bits), plan.snapshot_at.timestamp()
    )
    if again:
        logger.info("erasures applied again to a snapshot taken before them", extra={"people": again})
    return again


def reapply_to_folded(store: ObjectStore, state: SnapshotState, recheck: Recheck, fold_started: float) -> int:
    """After a Prepare listed the folded set it copied forward: the erasures that may have run during the
    fold, applied to the new copy. `erase_folded` reads the set the pointer names once, without the
    lease: one that read it before the Prepare listed its copy erased only the old copy, perhaps after
    the fold had read the person from it. Such an erasure wrote its marker at most ERASURE_SECONDS
    before its last write, so markers from that long before the fold started are applied too."""
    membership = Membership(recheck.prefix, recheck.bits)
    again = apply_markers(store, state, membership, fold_started - ERASURE_SECONDS)
    if again:
        logger.info("erasures applied again to the folded set a fold wrote", extra={"people": again})
    return again


@dataclass(frozen=True)
class SnapshotErasureDeps:
    store: ObjectStore
    state: SnapshotState
    retention_days: int
    max_receive_count: int = 0


def erase(detail: ErasureRequestDetail, deps: SnapshotErasureDeps) -> int:
    return erase_everywhere(
        deps.store,
        deps.state,
        detail.request_id,
        detail.profile.identities,
        retention_days=deps.retention_days,
    )


def eraser(deps: SnapshotErasureDeps) -> erasure.StoreEraser:
    return erasure.StoreEraser(
        store=STORE,
        items="audience memberships",
        erase=lambda detail: erase(detail, deps),
        dynamodb=deps.state.dynamodb,
        state_table=deps.state.table,
        max_receive_count=deps.max_receive_count,
    )


def handle(record: SQSRecord, deps: SnapshotErasureDeps) -> None:
    erasure.carry_out(record, eraser(deps))


def default_deps() -> SnapshotErasureDeps:
    env = os.environ
    table = env.get("STATE_TABLE_NAME", "")
    return SnapshotErasureDeps(
        store=S3Store(env.get("SNAPSHOT_BUCKET_NAME", "")),
        state=SnapshotState(table, aws.client("dynamodb")),
        retention_days=int(env.get("STATE_RETENTION_DAYS", str(DEFAULT_STATE_RETENTION_DAYS))),
        max_receive_count=int(env.get("MAX_RECEIVE_COUNT", "0")),
    )


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return erasure.handle_batch(event, context, eraser(default_deps()))

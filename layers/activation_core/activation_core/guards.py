"""Order and idempotency per destination instance, in one state-table item per (instance, entity).

The item of a destination instance and an entity (its hashed, normalised identities) holds, per
audience, the `occurredAt` of the last change applied to the vendor and the ids of the events applied
at that instant. The pipeline reads the items of a whole batch before delivery (BatchGetItem, up to 100
keys a request): a change older than the one applied is skipped as `stale`, the same event again as
`duplicate` (or `redelivered` when it is the very same message again: see below). After delivery, the items of the changes the vendor accepted (or the connector
deliberately skipped) are written whole, on condition that they did not change since they were read
(a version number), in TransactWriteItems (100 items, at most 3 MB of them, a request, requests in parallel); a refused one
is read again and merged, so an item never moves backwards whatever other invocations do meanwhile.
The guard moves only once a change is applied, and a batch costs a few DynamoDB round trips, not
three per record (docs/decisions.md, 2026-12-07).

What this guarantees, and what not (README, "Idempotency and order"):
- an event the vendor accepted is not sent again to that instance, unless the invocation ends between
  the vendor's answer and the commit (a crash, a timeout, DynamoDB unavailable): then it is sent
  twice, which the vendors' upserts make harmless;
- a change older than one already applied (same instance, entity and audience) is never sent;
- two invocations holding changes to the same entity at the same moment may both send (nothing is
  locked while the vendor is called); the guard then keeps the newest of them.

Redelivery (the outcome ledger, README "What the ledger guarantees"): with each applied event the item
also keeps the id of the message lineage that carried it (the SQS message id of its first copy; a
requeued copy carries it over, `ORIGIN_ATTRIBUTE`). The same lineage seen again at the same instant is
`redelivered`: SQS delivered a message whose outcome was already counted once more (a failed delete, a
visibility timeout that ran out, two copies of one requeue), so the ledger counts it apart from the
settled outcomes. The same event in another message (EventBridge published it twice) stays `duplicate`,
a settled outcome of that message. No write is added: the lineage rides in the guard's own put.
Outcomes that do not move the guard (skips, rejections) are recognised by activation_core.settled.

Retention: an item expires (DynamoDB TTL) `retention_days` after the last change applied to its
entity on its instance (every commit moves the expiry forward). Once DynamoDB has deleted it, the
entity is unknown again: an older event arriving after that would be applied, and a redelivered one
sent again. Events never wait that long in the stack (queues keep them 4 days, DLQs 14), so the
default (`DEFAULT_RETENTION_DAYS`) is far beyond any realistic delay (docs/decisions.md, 2026-12-07).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from activation_core import aws, naming
from activation_core.errors import RetryableError
from activation_core.observability import logger

# Reads: aws.batch_get (BatchGetItem, 100 keys a request). Commits: TransactWriteItems of up to 100
# items (AWS's limit; 4 MB a request, far above 100 of these items): the same write units as smaller
# ones in a quarter of the requests, whose fixed cost (signing, headers, HTTP, parsing) was half the
# guard's CPU once the items are sent as built (docs/decisions.md, "as built"). A refused item cancels
# its whole request: every entity of it is re-read and tried again.
WRITE_CHUNK = 100
# ... and at most 4 MB of items a request (AWS; moto does not check it): an entity in many audiences
# makes a large item (about 200 bytes an audience), so a request is also closed at this many bytes of
# items as `_item_size` counts them (the UTF-8 bytes of attribute names and values).
WRITE_CHUNK_BYTES = 3 * 1024 * 1024
# A commit whose condition failed (another invocation moved an item meanwhile) is re-read and retried.
_COMMIT_ROUNDS = 3
_SORT_KEY = "applied"
# Days an entity's item outlives the last change applied to it (the template's OrderGuardRetentionDays).
DEFAULT_RETENTION_DAYS = 400

# Identity namespaces whose values are case-insensitive: an address or a domain, whatever it is called.
_CASE_INSENSITIVE_NAME = re.compile(r"e-?mail|domain", re.IGNORECASE)
_EMAIL_VALUE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HEX_DIGEST = re.compile(r"^[0-9A-Fa-f]{32,128}$")


def normalise_identity(namespace: str, value: Any) -> str:
    """An identity as it keys anything: trimmed; case-folded where its namespace ignores case (an
    e-mail address or a domain by its name or its shape, a hex digest). Other ids (CRM record ids,
    which may differ by case alone) keep their case."""
    text = str(value).strip()
    if _CASE_INSENSITIVE_NAME.search(namespace) or _EMAIL_VALUE.match(text) or _HEX_DIGEST.match(text):
        return text.casefold()
    return text


def entity_key(identities: Mapping[str, Any]) -> str:
    """A stable, non-reversible key for the mapped identities of a profile or account (normalised)."""
    normalised = {name: normalise_identity(name, value) for name, value in identities.items()}
    return hashlib.sha256(json.dumps(normalised, sort_keys=True, default=str).encode()).hexdigest()[:32]


def occurrence(at: datetime) -> int:
    """Microseconds since the epoch, exactly (a float timestamp would round)."""
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return (aware - _EPOCH) // _MICROSECOND


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = datetime.resolution


class Verdict(StrEnum):
    NEW = "new"
    STALE = "stale"
    DUPLICATE = "duplicate"
    REDELIVERED = "redelivered"


@dataclass(frozen=True, slots=True)
class Applied:
    """The last change applied for one audience: when it occurred, which events carried it, and the
    message lineages (first SQS message ids) they came in."""

    at: int
    event_ids: frozenset[str]
    origins: frozenset[str] = frozenset()

    def verdict(self, at: int, event_id: str, origin: str = "") -> Verdict:
        if at < self.at:
            return Verdict.STALE
        if at == self.at and event_id in self.event_ids:
            return Verdict.REDELIVERED if origin and origin in self.origins else Verdict.DUPLICATE
        return Verdict.NEW

    def joined(self, other: Applied) -> Applied:
        """Both changes of one instant: their events and lineages together."""
        return Applied(self.at, self.event_ids | other.event_ids, self.origins | other.origins)


@dataclass(frozen=True, slots=True)
class Change:
    """One record's change to one entity, for the audiences it was sent for."""

    entity: str
    event_id: str
    at: int
    audiences: tuple[str, ...]
    origin: str = ""  # the message lineage (first SQS message id) that carried it


@dataclass(frozen=True, slots=True)
class EntityState:
    """One entity's item as read: per audience the last change applied, and the item's version (0: no
    item yet); a commit writes the whole item on condition that the version is still the one read."""

    version: int = 0
    applied: Mapping[str, Applied] = field(default_factory=dict)

    def get(self, audience: str) -> Applied | None:
        return self.applied.get(audience)

    def merged(self, changes: Mapping[str, Applied]) -> dict[str, Applied] | None:
        """The item's audiences with `changes` applied (newer wins, an equal instant adds its events);
        None if nothing would change."""
        result = dict(self.applied)
        for audience, change in changes.items():
            current = result.get(audience)
            if current is None or change.at > current.at:
                result[audience] = change
            elif change.at == current.at and not (
                change.event_ids <= current.event_ids and change.origins <= current.origins
            ):
                result[audience] = current.joined(change)
        return None if result == self.applied else result


NO_STATE = EntityState()


@dataclass(frozen=True, slots=True)
class Committed:
    """What a commit did: how many entities it could not commit (their changes were applied all the
    same), and the lineages another invocation had applied meanwhile (SQS gave the same message to
    two invocations at once: the other one's outcome is the counted one)."""

    not_committed: int = 0
    redelivered: frozenset[str] = frozenset()


def _applied_by(state: EntityState, change: Change) -> bool:
    """Whether `state` already holds this change of this lineage for every audience of it."""
    if not change.origin:
        return False
    for audience in change.audiences:
        applied = state.get(audience)
        if applied is None or applied.at != change.at or change.origin not in applied.origins:
            return False
    return True


@dataclass(slots=True)
class _Target:
    """What one entity's changes of a batch record: per audience, the newest change and its events."""

    newest: dict[str, Applied] = field(default_factory=dict)

    def add(self, change: Change) -> None:
        origins = frozenset({change.origin} - {""})
        applied = Applied(change.at, frozenset({change.event_id}), origins)
        for audience in change.audiences:
            current = self.newest.get(audience)
            if current is None or change.at > current.at:
                self.newest[audience] = applied
            elif change.at == current.at:
                self.newest[audience] = current.joined(applied)


class OrderGuard(aws.UsesDynamoDB):
    """Reads and commits the order-and-idempotency items of one state table (see the module doc).

    Its requests are built here alone, in DynamoDB's wire form and a few fixed shapes that the unit
    tests send through a validated client, so the container's guard client skips botocore's
    parameter validation and sends its reads and transactions as built (`aws.client`, validated=False:
    together about 60% of the guard's CPU on a 1,000-record batch; docs/decisions.md, 2026-12-07)."""

    _validated = False

    def __init__(
        self,
        table_name: str,
        destination_type: str,
        *,
        dynamodb: Any | None = None,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = table_name
        self._type = destination_type
        self._dynamodb = dynamodb
        self._retention_seconds = retention_days * 86400
        self._clock = clock

    def _key(self, instance_id: str, entity: str) -> dict[str, Any]:
        # `order#<type>#...`: the partitions only this type's role may write (template.yaml, LeadingKeys).
        return {"pk": {"S": naming.order_key(self._type, instance_id, entity)}, "sk": {"S": _SORT_KEY}}

    def forget(self, instance_id: str, entity: str) -> None:
        """Drop the order-and-idempotency item of one entity on one instance (an erasure request)."""
        self._client.delete_item(TableName=self._table, Key=self._key(instance_id, entity))

    # ------------------------------------------------------------------ before delivery
    def read(self, instance_id: str, entities: Collection[str]) -> dict[str, EntityState]:
        """What was last applied to each entity on this instance (strongly consistent).

        Raises RetryableError `order_guard_unavailable` when the table cannot be read."""
        keys = {self._key(instance_id, entity)["pk"]["S"]: entity for entity in sorted(set(entities))}
        try:
            items = aws.batch_get(
                self._client, self._table, [self._key(instance_id, e) for e in keys.values()]
            )
        except ClientError as exc:
            raise RetryableError("order_guard_unavailable", _error_code(exc)) from None
        except aws.KeysLeftUnprocessed:
            raise RetryableError("order_guard_unavailable", "keys left unprocessed") from None
        return {keys[item["pk"]["S"]]: _state_of(item) for item in items}

    # ------------------------------------------------------------------ after delivery
    def commit(
        self, instance_id: str, changes: Iterable[Change], known: Mapping[str, EntityState]
    ) -> Committed:
        """Move the items of applied changes forward; `known` is what `read` returned. Returns how
        many entities could not be committed (logged; their changes were applied all the same) and
        the lineages found applied by another invocation when a refused item was read again."""
        targets: dict[str, _Target] = {}
        changes = list(changes)
        for change in changes:
            targets.setdefault(change.entity, _Target()).add(change)
        states = dict(known)
        pending = list(targets)
        self._client  # noqa: B018 - resolved here, before the threads: clients are made on one thread
        redelivered: set[str] = set()
        for _ in range(_COMMIT_ROUNDS):
            actions = {
                entity: action
                for entity in pending
                if (
                    action := self._action(instance_id, entity, targets[entity], states.get(entity, NO_STATE))
                )
            }
            if not actions:
                return Committed(0, frozenset(redelivered))
            chunks = _chunks(actions)
            failed: list[str] = []
            for part in aws.in_parallel(functools.partial(self._transact, actions=actions), chunks):
                failed += part
            if not failed:
                return Committed(0, frozenset(redelivered))
            pending = failed
            try:
                fresh = self.read(instance_id, failed)
            except RetryableError:
                break
            states.update({entity: fresh.get(entity, NO_STATE) for entity in failed})
            redelivered.update(
                c.origin for c in changes if c.entity in fresh and _applied_by(fresh[c.entity], c)
            )
        logger.warning("order guard not committed", extra={"entities": len(pending)})
        return Committed(len(pending), frozenset(redelivered))

    def _action(
        self, instance_id: str, entity: str, target: _Target, state: EntityState
    ) -> dict[str, Any] | None:
        """The entity's whole item, written only if its version is still the one read (optimistic
        concurrency: a plain conditional put, the cheapest write DynamoDB checks a condition on)."""
        merged = state.merged(target.newest)
        if merged is None:
            return None  # a newer or the same change is already recorded (another invocation)
        item: dict[str, Any] = {
            **self._key(instance_id, entity),
            "v": {"N": str(state.version + 1)},
            "ttl": {"N": str(math.ceil(self._clock() + self._retention_seconds))},
        }
        for audience, applied in merged.items():
            item[f"t:{audience}"] = {"N": str(applied.at)}
            item[f"e:{audience}"] = {"SS": sorted(applied.event_ids)}
            if applied.origins:
                item[f"o:{audience}"] = {"SS": sorted(applied.origins)}
        put: dict[str, Any] = {"TableName": self._table, "Item": item}
        if state.version:
            put["ConditionExpression"] = "v = :v"
            put["ExpressionAttributeValues"] = {":v": {"N": str(state.version)}}
        else:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        return {"Put": put}

    def _transact(self, entities: Sequence[str], *, actions: Mapping[str, Any]) -> list[str]:
        """One transaction; the entities to try again (all of them if it failed as a whole)."""
        items = [actions[e] for e in entities]
        # A token per request: botocore's own retry of this request (after a timeout) resends it with
        # the same token, a no-op if the first attempt was applied, instead of a failed condition; a
        # new round is a new request. Random rather than a digest of the items: the same for a retry
        # all the same, no serialisation of the items to make it, and two invocations that commit
        # identical items (one message held by both) are never taken for one request.
        token = str(uuid.uuid4())
        try:
            self._client.transact_write_items(TransactItems=items, ClientRequestToken=token)
        except ClientError as exc:
            # Cancelled (an item's version moved: another invocation wrote it; or a conflict): the
            # items not refused were cancelled with it. Every entity of the chunk is read and tried again.
            if _error_code(exc) != "TransactionCanceledException":
                logger.warning("order guard commit failed", extra={"error_type": _error_code(exc)})
            return list(entities)
        return []


def _chunks(actions: Mapping[str, Any]) -> list[list[str]]:
    """The entities of `actions` in transactions of at most WRITE_CHUNK items and WRITE_CHUNK_BYTES."""
    chunks: list[list[str]] = [[]]
    size = 0
    for entity, action in actions.items():
        item_size = _item_size(action["Put"]["Item"])
        if chunks[-1] and (len(chunks[-1]) == WRITE_CHUNK or size + item_size > WRITE_CHUNK_BYTES):
            chunks.append([])
            size = 0
        chunks[-1].append(entity)
        size += item_size
    return chunks


def _item_size(item: Mapping[str, Any]) -> int:
    """An item's size as DynamoDB counts it, near enough: the UTF-8 bytes of its attribute names and
    values (S, N, SS)."""
    size = 0
    for name, value in item.items():
        size += _utf8_length(name)
        for typed in value.values():
            size += sum(map(_utf8_length, typed)) if type(typed) is list else _utf8_length(typed)
    return size


def _utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def _state_of(item: Mapping[str, Any]) -> EntityState:
    applied: dict[str, Applied] = {}
    for name, value in item.items():
        if name.startswith("t:"):
            audience = name[2:]
            ids = item.get(f"e:{audience}", {}).get("SS", [])
            origins = item.get(f"o:{audience}", {}).get("SS", [])
            applied[audience] = Applied(int(value["N"]), frozenset(ids), frozenset(origins))
    return EntityState(int(item.get("v", {}).get("N", "1")), applied)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))

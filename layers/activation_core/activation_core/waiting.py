"""Changes waiting for a rate limit, merged per entity across batches (issue 18: vendor calls spent on
people, not events).

A connector merges the changes of one batch per entity itself. When a vendor's budget is the
bottleneck, the records it defers come back in other batches, each of which would spend a call on an
entity whose newer change is also waiting. So:

- a record the connector told to wait (a retry with `retry_after`: the vendor's or our shared rate
  limit) leaves, per (instance, entity), the time of its change for each field it sets: the mapping's
  targets (`field:<target>`) and each activated membership (`audience:<id>`);
- when a record that already waited comes back (received before, or a requeued copy), a field of it is
  covered when a newer change (still waiting, or delivered since) sets that field too. A record whose
  every field is covered ends `skipped:superseded` without a vendor call. The newer record carries
  those fields and is itself delivered, retried or rejected to the DLQ (replayable): nothing is lost,
  and the vendor never gets an older value after a newer one.

Cost: nothing for a record that never waited (no read, no write), so the happy path is unchanged. A
batch that waits writes one item per distinct entity (UpdateItem); a batch of records that waited
before reads one item per distinct entity (GetItem, a few in parallel: the functions' policies allow
GetItem, not BatchGetItem). A lost or failed write only costs calls (the older record is then sent
as before), never a record. Concurrent writers for one entity may lower a field's time (the last write
wins): that too only costs calls.

Privacy: no value is stored, only field names (mapping targets, audience ids) and times, under the
hashed entity key of the order guard; items expire `EXPIRES_AFTER_SECONDS` after the last wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from activation_core import aws, naming
from activation_core.guards import entity_key
from activation_core.observability import logger
from activation_core.outcomes import Kind, Outcome

if TYPE_CHECKING:
    from activation_core.pipeline import WorkItem

# Longer than a record can wait in its queue (SQS keeps a message at most 14 days; a record waiting for
# a rate limit is requeued at most 24 times), so a change is known for as long as an older one can come.
EXPIRES_AFTER_SECONDS = 14 * 86400
_MAX_CONFLICTS = 3
# Parallel GetItem calls for the entities of one batch.
READ_CONCURRENCY = 8
# The message attribute counting how often a waiting record was sent back to its queue (activation_core
# .batch.requeue_waiting): a requeued copy arrives with a receive count of 1 again.
REQUEUES_ATTRIBUTE = "activationRequeues"
# The message id of a record's first copy, carried by its requeued copies: the lineage the order guard
# remembers, so a lineage seen again is a redelivery (counted apart by the ledger), not a new outcome.
ORIGIN_ATTRIBUTE = "activationOrigin"


def origin_of(record: Mapping[str, Any]) -> str:
    """The message lineage of an SQS record: its first copy's message id."""
    attribute = (record.get("messageAttributes") or {}).get(ORIGIN_ATTRIBUTE) or {}
    return str(attribute.get("stringValue") or record.get("messageId") or "")


SUPERSEDED_DETAIL = "a newer change to this entity (waiting or delivered) sets every field of this one"


def change_fields(item: WorkItem) -> frozenset[str]:
    """What a record sets on its entity: the mapping's targets and each activated membership."""
    return frozenset(
        [f"field:{target}" for target in item.mapped.fields]
        + [f"audience:{activation.audience.id}" for activation in item.activations]
    )


def item_entity(item: WorkItem) -> str:
    return entity_key(item.mapped.identities or item.mapped.fields)


def has_waited(record: Mapping[str, Any]) -> bool:
    """Whether this SQS record was received before (or is a requeued copy of one that waited)."""
    attributes = record.get("attributes") or {}
    received = int(attributes.get("ApproximateReceiveCount", "1") or 1)
    return received > 1 or REQUEUES_ATTRIBUTE in (record.get("messageAttributes") or {})


def is_waiting(outcome: Outcome) -> bool:
    """A retry that only waits (a rate limit, a vendor's reset or quota: `Outcome.waiting`), not failing."""
    return outcome.kind is Kind.RETRY and outcome.waiting


def _times(item: Mapping[str, Any]) -> dict[str, float]:
    """The field times of a stored item (its other attributes are the key, version and ttl)."""
    return {
        name: float(value["N"])
        for name, value in item.items()
        if name.startswith(("field:", "audience:")) and "N" in value
    }


def _conflict(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


class WaitingChanges(aws.UsesDynamoDB):
    """The newest waiting change per (instance, entity, field), in the state table."""

    def __init__(
        self,
        table_name: str,
        destination_type: str,
        *,
        dynamodb: Any | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = table_name
        self._type = destination_type
        self._dynamodb = dynamodb
        self._clock = clock

    def _key(self, instance_id: str, entity: str) -> dict[str, Any]:
        # `waiting#<type>#...`: the partitions only this type's role may write (template.yaml, LeadingKeys).
        return {"pk": {"S": naming.waiting_key(self._type, instance_id, entity)}, "sk": {"S": "fields"}}

    def forget(self, instance_id: str, entity: str) -> None:
        """Drop the waiting-change item of one entity on one instance (an erasure request)."""
        self._client.delete_item(TableName=self._table, Key=self._key(instance_id, entity))

    def superseded(self, instance_id: str, items: Sequence[WorkItem]) -> dict[str, Outcome]:
        """`skipped:superseded` for each record that waited before and whose every field a newer
        change sets; the others are not in the result."""
        returning = [item for item in items if item.record.waited]
        if not returning:
            return {}
        newest = self._read(instance_id, {item_entity(item) for item in returning})
        outcomes: dict[str, Outcome] = {}
        for item in returning:
            known = newest.get(item_entity(item))
            fields = change_fields(item)
            if not known or not fields:
                continue
            stamp = item.record.occurred_at.timestamp()
            if all(known.get(name, float("-inf")) > stamp for name in fields):
                outcomes[item.key] = Outcome.skipped("superseded", SUPERSEDED_DETAIL)
        return outcomes

    def note(self, instance_id: str, items: Iterable[WorkItem], outcomes: Mapping[str, Outcome]) -> None:
        """Remember the changes told to wait: per entity, the newest time of each field they set."""
        per_entity: dict[str, dict[str, float]] = {}
        for item in items:
            outcome = outcomes.get(item.key)
            if outcome is None or not is_waiting(outcome):
                continue
            stamp = item.record.occurred_at.timestamp()
            fields = per_entity.setdefault(item_entity(item), {})
            for name in change_fields(item):
                fields[name] = max(stamp, fields.get(name, stamp))
        for entity, fields in per_entity.items():
            self._write(instance_id, entity, fields)

    def _write(self, instance_id: str, entity: str, fields: Mapping[str, float]) -> None:
        """Each field's time becomes the newer of ours and the stored one."""
        key = self._key(instance_id, entity)
        try:
            if self._set_if_newer(key, fields):
                return
            for _ in range(_MAX_CONFLICTS):
                if self._merge(key, fields):
                    return
        except Exception as exc:  # an optimisation only: without it the older record is sent as before
            logger.warning("waiting change not recorded", extra={"error_type": type(exc).__name__})

    def _set_if_newer(self, key: Mapping[str, Any], fields: Mapping[str, float]) -> bool:
        """One write when no field is stored with a newer time (changes mostly arrive in order)."""
        ordered = sorted(fields)
        names = {f"#f{i}": name for i, name in enumerate(ordered)}
        values = {f":t{i}": {"N": repr(fields[name])} for i, name in enumerate(ordered)}
        try:
            self._client.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression=f"SET {', '.join(f'{n} = :t{n[2:]}' for n in names)}, #ttl = :ttl "
                "ADD #version :one",
                ConditionExpression=" AND ".join(
                    f"(attribute_not_exists(#f{i}) OR #f{i} <= :t{i})" for i in range(len(ordered))
                ),
                ExpressionAttributeNames={**names, "#ttl": "ttl", "#version": "version"},
                ExpressionAttributeValues={**values, ":ttl": self._expiry(), ":one": {"N": "1"}},
            )
        except ClientError as exc:
            if _conflict(exc):
                return False
            raise
        return True

    def _merge(self, key: Mapping[str, Any], fields: Mapping[str, float]) -> bool:
        """Read, keep the newer time of each field, write back unless another writer came first."""
        item = self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item", {})
        stored = _times(item)
        merged = {**stored, **{name: max(t, stored.get(name, t)) for name, t in fields.items()}}
        if merged == stored:
            return True
        version = item.get("version", {}).get("N")
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    **key,
                    **{name: {"N": repr(t)} for name, t in merged.items()},
                    "version": {"N": str(int(version or 0) + 1)},
                    "ttl": self._expiry(),
                },
                ConditionExpression="version = :v" if version else "attribute_not_exists(pk)",
                **({"ExpressionAttributeValues": {":v": {"N": version}}} if version else {}),
            )
        except ClientError as exc:
            if _conflict(exc):
                return False
            raise
        return True

    def _expiry(self) -> dict[str, str]:
        return {"N": str(int(self._clock() + EXPIRES_AFTER_SECONDS))}

    def _read(self, instance_id: str, entities: set[str]) -> dict[str, dict[str, float]]:
        def get(entity: str) -> tuple[str, dict[str, float]]:
            item = self._client.get_item(TableName=self._table, Key=self._key(instance_id, entity)).get(
                "Item", {}
            )
            return entity, _times(item)

        try:
            if len(entities) == 1:
                return dict([get(next(iter(entities)))])
            workers = min(READ_CONCURRENCY, len(entities))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="waiting") as pool:
                return dict(pool.map(get, sorted(entities)))
        except Exception as exc:  # unread: every record is sent as before
            logger.warning("waiting changes not read", extra={"error_type": type(exc).__name__})
            return {}

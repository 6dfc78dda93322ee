"""Settled messages: an SQS message delivered again after its outcome was counted is counted once;
and a message is counted `received` once, whatever its receive count.

SQS standard queues deliver at least once: a message whose delete failed, whose visibility ran out
while its invocation still ran, or a requeue whose SendMessageBatch the SDK retried after SQS had
taken it, comes back after its outcome was settled (delivered, skipped, or rejected to the DLQ).

- A change the vendor accepted moves the order guard, which keeps the message lineage with it
  (activation_core.guards): the same lineage again is `skipped:redelivered` there, at no extra cost.
- Every other settled outcome (a skip before or by the guard: consent, `stale`, `duplicate`,
  `superseded`, a connector's skip; a rejection; an erasure) leaves one item per message lineage (the
  first copy's message id, `waiting.origin_of`): `pk=settled#<destination type>#<lineage>`,
  `sk=message`, holding nothing but its expiry. It is written once the outcome is final (after the
  DLQ accepted a rejection) with a conditional put, so of two invocations holding one message at once
  the second to settle learns it and counts `redelivered` instead.
- A message counted `received` whose outcome is not final at the end of that batch (it retries after
  a partial batch failure, or waits as a requeued copy) leaves `sk=received` under the same key (only
  its expiry; unconditional puts, BatchWriteItem, 25 a request): its later receives are not counted
  again. A message that ends settled needs none (the guard or `sk=message` says it was counted).
- Before a batch is decided, its records that may be redeliveries (received before, or requeued
  copies: a first arrival cannot be one) are looked up (BatchGetItem, both sort keys):
  a lineage found settled ends `skipped:redelivered` at once: no vendor call, no second DLQ message, no
  second count; a lineage found either way was counted `received` already. One received again and
  found neither way was never counted: no earlier receive reached the end of a batch (the invocation
  never ran the handler, or died in it), so this receive counts it (activation_core.batch).

Cost: a delivered first arrival reads and writes nothing here (the happy path is unchanged); a settled
skip or rejection costs one conditional put (1 write unit); a record that retries or waits costs one
write unit once (its first such receive), in BatchWriteItem requests of 25; a batch with records
received before costs one BatchGetItem per 50 of them (two keys each; reads only). A failed read or
write never holds a record back: it is logged, and a redelivery of that message would be counted again.

Retention: an item expires (DynamoDB TTL) `RETENTION_SECONDS` after it was written. A copy that
can still arrive was sent before that and SQS keeps it at most the queue's retention
(`QUEUE_RETENTION_SECONDS`, the template's queues keep SQS's default), so the item outlives every
redelivery; a template test holds the two together.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from activation_core import aws
from activation_core.observability import logger

# SQS's default MessageRetentionPeriod, which the destination queues keep (template.yaml).
QUEUE_RETENTION_SECONDS = 4 * 86_400
# One day beyond it: a margin for clocks and for TTL (DynamoDB deletes expired items lazily, later).
RETENTION_SECONDS = QUEUE_RETENTION_SECONDS + 86_400
_SORT_KEY = "message"
_RECEIVED_SORT_KEY = "received"
_REFUSED = "ConditionalCheckFailedException"


@dataclass(frozen=True, slots=True)
class Seen:
    """What an earlier receive left of some lineages: settled, or counted `received` (settled or not)."""

    settled: frozenset[str] = frozenset()
    received: frozenset[str] = frozenset()


class SettledMessages(aws.UsesDynamoDB):
    """The lineages of one destination type whose outcome is settled, in the state table."""

    def __init__(
        self,
        table_name: str,
        destination_type: str,
        *,
        dynamodb: Any | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = table_name
        self._prefix = f"settled#{destination_type}#"  # a LeadingKeys pattern of the type's role
        self._dynamodb = dynamodb
        self._clock = clock

    def _key(self, lineage: str, sort_key: str = _SORT_KEY) -> dict[str, Any]:
        return {"pk": {"S": self._prefix + lineage}, "sk": {"S": sort_key}}

    def seen(self, lineages: Collection[str], *, received: Collection[str] = ()) -> Seen:
        """Which of `lineages` were settled before, and which of them and of `received` were counted
        `received` before (nothing, if the table cannot be read: those records are decided and
        counted as if new)."""
        settled = sorted({lineage for lineage in lineages if lineage})
        counted = sorted({lineage for lineage in received if lineage})
        keys = [self._key(x) for x in settled] + [self._key(x, _RECEIVED_SORT_KEY) for x in counted]
        if not keys:
            return Seen()
        try:
            items = aws.batch_get(
                self._client,
                self._table,
                keys,
                ProjectionExpression="#pk, #sk",
                ExpressionAttributeNames={"#pk": "pk", "#sk": "sk"},
            )
        except (ClientError, aws.KeysLeftUnprocessed) as exc:
            logger.warning("settled messages not read", extra={"error_type": type(exc).__name__})
            return Seen()
        found = {(item["pk"]["S"].removeprefix(self._prefix), item["sk"]["S"]) for item in items}
        done = frozenset(lineage for lineage, sort_key in found if sort_key == _SORT_KEY)
        return Seen(done, done | {lineage for lineage, sort_key in found if sort_key == _RECEIVED_SORT_KEY})

    def mark_received(self, lineages: Collection[str]) -> None:
        """Remember that `lineages` were counted `received` (their outcome is not final yet)."""
        wanted = sorted({lineage for lineage in lineages if lineage})
        if not wanted:
            return
        expires = {"N": str(int(self._clock()) + RETENTION_SECONDS)}
        puts = [
            {"PutRequest": {"Item": {**self._key(x, _RECEIVED_SORT_KEY), "ttl": expires}}} for x in wanted
        ]
        try:
            aws.batch_write(self._client, self._table, puts)
        except Exception as exc:  # counting only: the outcome stands whatever happens here
            logger.warning("received messages not recorded", extra={"error_type": type(exc).__name__})

    def settle(self, lineages: Collection[str]) -> set[str]:
        """Record `lineages` as settled; returns those another invocation had settled first."""
        wanted = sorted({lineage for lineage in lineages if lineage})
        expires = {"N": str(int(self._clock()) + RETENTION_SECONDS)}
        return {lineage for lineage in aws.in_parallel(lambda x: self._put(x, expires), wanted) if lineage}

    def _put(self, lineage: str, expires: dict[str, str]) -> str:
        """The lineage if it was settled already, else ''."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item={**self._key(lineage), "ttl": expires},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except Exception as exc:  # counting only: the outcome stands whatever happens here
            if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") == _REFUSED:
                return lineage
            logger.warning("settled message not recorded", extra={"error_type": type(exc).__name__})
        return ""

"""Settled messages: an SQS message delivered again after its outcome was counted is counted once.

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
- Before a batch is decided, its records that may be redeliveries (received before, or requeued
  copies: a first arrival cannot be one) are looked up (BatchGetItem); a lineage found settled ends
  `skipped:redelivered` at once: no vendor call, no second DLQ message, no second count.

Cost: a delivered first arrival reads and writes nothing here (the happy path is unchanged); a settled
skip or rejection costs one conditional put (1 write unit); a batch with records received before costs
one BatchGetItem per 100 of them (reads only). A failed read or write never holds a record back: it
is logged, and a redelivery of that message would be counted again.

Retention: an item expires (DynamoDB TTL) `RETENTION_SECONDS` after its outcome settled. A copy that
can still arrive was sent before that and SQS keeps it at most the queue's retention
(`QUEUE_RETENTION_SECONDS`, the template's queues keep SQS's default), so the item outlives every
redelivery; a template test holds the two together.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any

from botocore.exceptions import ClientError

from activation_core import aws
from activation_core.observability import logger

# SQS's default MessageRetentionPeriod, which the destination queues keep (template.yaml).
QUEUE_RETENTION_SECONDS = 4 * 86_400
# One day beyond it: a margin for clocks and for TTL (DynamoDB deletes expired items lazily, later).
RETENTION_SECONDS = QUEUE_RETENTION_SECONDS + 86_400
_SORT_KEY = "message"
_REFUSED = "ConditionalCheckFailedException"


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

    def _key(self, lineage: str) -> dict[str, Any]:
        return {"pk": {"S": self._prefix + lineage}, "sk": {"S": _SORT_KEY}}

    def seen(self, lineages: Collection[str]) -> set[str]:
        """The lineages among `lineages` whose outcome was settled before (none if the table cannot be
        read: those records are decided as usual)."""
        wanted = sorted({lineage for lineage in lineages if lineage})
        if not wanted:
            return set()
        try:
            items = aws.batch_get(
                self._client,
                self._table,
                [self._key(lineage) for lineage in wanted],
                ProjectionExpression="pk",
            )
        except (ClientError, aws.KeysLeftUnprocessed) as exc:
            logger.warning("settled messages not read", extra={"error_type": type(exc).__name__})
            return set()
        return {item["pk"]["S"].removeprefix(self._prefix) for item in items}

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

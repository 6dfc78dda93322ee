"""Idempotency and order, per destination instance (COM reliability).

- `DeliveryClaims`: Powertools Idempotency's DynamoDB persistence layer, keyed on (event id,
  destination instance): a redelivered event that was already applied is skipped as `duplicate`.
  The pipeline delivers in batches, so it drives the persistence layer's claim / success / release
  steps itself instead of wrapping one function call with `@idempotent_function`.
- `StaleGuard`: the newest `occurredAt` applied per (instance, entity, audience) in the state table;
  an older event is skipped as `stale` and never overwrites a newer state.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from activation_core import aws
from activation_core.errors import RetryableError

# Without a Lambda context, an interrupted claim frees itself after this long: longer than any
# function timeout, shorter than the queue's visibility timeout. With one, the claim lasts exactly as
# long as the invocation may run, so a record whose invocation timed out finds it free when it returns.
CLAIM_LEASE_MILLIS = 120_000


class Claim(StrEnum):
    NEW = "new"
    DONE = "done"
    IN_PROGRESS = "in_progress"


@dataclass(frozen=True, slots=True)
class ClaimResult:
    state: Claim
    # IN_PROGRESS: seconds until the other invocation's claim ends, so the record can be hidden that
    # long instead of coming back (and using up a receive) while that invocation still runs.
    held_for: float | None = None


class DeliveryClaims:
    def __init__(
        self, table_name: str, destination_type: str, *, expires_after_seconds: int = 7 * 86400
    ) -> None:
        from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
        from aws_lambda_powertools.utilities.idempotency.persistence.dynamodb import DynamoDBPersistenceLayer

        self._layer = DynamoDBPersistenceLayer(table_name=table_name, boto3_client=aws.client("dynamodb"))
        self._config = IdempotencyConfig(
            event_key_jmespath="[eventId, instance]", expires_after_seconds=expires_after_seconds
        )
        self._layer.configure(self._config, function_name=f"activation.{destination_type}")

    def register_lambda_context(self, context: Any) -> None:
        """Claims taken from now on expire when this invocation's time runs out (Powertools' own rule)."""
        self._config.register_lambda_context(context)

    def _lease_millis(self) -> int:
        context = self._config.lambda_context
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        return max(1, int(remaining())) if callable(remaining) else CLAIM_LEASE_MILLIS

    @staticmethod
    def _data(event_id: str, instance_id: str) -> dict[str, Any]:
        return {"eventId": event_id, "instance": instance_id}

    def claim(self, event_id: str, instance_id: str) -> ClaimResult:
        from aws_lambda_powertools.utilities.idempotency.exceptions import (
            IdempotencyItemAlreadyExistsError,
            IdempotencyPersistenceLayerError,
        )

        data = self._data(event_id, instance_id)
        try:
            self._layer.save_inprogress(data, remaining_time_in_millis=self._lease_millis())
        except IdempotencyItemAlreadyExistsError as exc:
            record = exc.old_data_record or self._layer.get_record(data)
            if record is not None and record.status == "COMPLETED":
                return ClaimResult(Claim.DONE)
            expiry_millis = record.in_progress_expiry_timestamp if record is not None else None
            held_for = float(expiry_millis) / 1000 - time.time() if expiry_millis else None
            return ClaimResult(Claim.IN_PROGRESS, held_for if held_for and held_for > 0 else None)
        except IdempotencyPersistenceLayerError as exc:
            raise RetryableError("idempotency_unavailable", type(exc).__name__) from None
        return ClaimResult(Claim.NEW)

    def complete(self, event_id: str, instance_id: str) -> None:
        self._layer.save_success(self._data(event_id, instance_id), {"applied": True})

    def release(self, event_id: str, instance_id: str) -> None:
        """Forget the claim: the event may be applied again (a retry, or a replay from the DLQ)."""
        self._layer.delete_record(self._data(event_id, instance_id), RuntimeError("released"))


def entity_key(identities: Mapping[str, Any]) -> str:
    """A stable, non-reversible key for the mapped identities of a profile or account."""
    return hashlib.sha256(json.dumps(identities, sort_keys=True, default=str).encode()).hexdigest()[:32]


class StaleGuard:
    def __init__(self, table_name: str, *, dynamodb: Any | None = None) -> None:
        self._table = table_name
        self._dynamodb = dynamodb

    @property
    def _client(self) -> Any:
        if self._dynamodb is None:
            self._dynamodb = aws.client("dynamodb")
        return self._dynamodb

    def forget(self, instance_id: str, entity: str) -> None:
        """Drop every order record of one entity on one instance (an erasure request)."""
        pk = f"order#{instance_id}#{entity}"
        pages = self._client.get_paginator("query").paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
            ProjectionExpression="sk",
        )
        for page in pages:
            for item in page.get("Items", []):
                self._client.delete_item(TableName=self._table, Key={"pk": {"S": pk}, "sk": item["sk"]})

    def admit(self, instance_id: str, entity: str, audience_id: str, occurred_at: datetime) -> bool:
        """Record `occurred_at` unless a newer event was already admitted (equal passes: a retry)."""
        stamp = occurred_at.timestamp()
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": f"order#{instance_id}#{entity}"},
                    "sk": {"S": audience_id},
                    "occurredAt": {"N": repr(stamp)},
                },
                ConditionExpression="attribute_not_exists(pk) OR occurredAt <= :t",
                ExpressionAttributeValues={":t": {"N": repr(stamp)}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise RetryableError(
                "order_guard_unavailable", exc.response.get("Error", {}).get("Code", "")
            ) from None
        return True

"""A DynamoDB lease lock: single flight across concurrent Lambda invocations (e.g. one token refresh).

The state table has `pk` (S) / `sk` (S) keys and a TTL attribute `ttl`. DynamoDB deletes expired items
lazily (often hours late), so a lease's expiry is enforced by the write condition, not by TTL: TTL only
tidies up. A lease is advisory and time-bound: a holder that outlives it may overlap with the next one,
so leases should exceed the guarded work's worst case.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from activation_core import aws
from activation_core.errors import RetryableError

logger = logging.getLogger(__name__)

_CONDITION_FAILED = "ConditionalCheckFailedException"


@dataclass(frozen=True)
class Lease:
    key: str
    owner: str
    expires_at: float


def _number(value: float) -> str:
    # DynamoDB numbers are decimal strings; fixed notation avoids "1e+09"-style exponents.
    return f"{value:.6f}"


def _error_code(exc: BotoCoreError | ClientError) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__


class LeaseLock(aws.UsesDynamoDB):
    """Conditional-write lease lock on the state table."""

    def __init__(
        self,
        table_name: str,
        *,
        dynamodb: Any | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table_name = table_name
        self._dynamodb = dynamodb
        self._clock = clock

    @staticmethod
    def _item_key(key: str) -> dict[str, dict[str, str]]:
        return {"pk": {"S": f"lock#{key}"}, "sk": {"S": "lock"}}

    def try_acquire(self, key: str, lease_seconds: float, owner: str | None = None) -> Lease | None:
        """Take the lease on `key` for `lease_seconds`; None when someone else holds an unexpired one.

        `owner`: a name the holder keeps across processes (e.g. a workflow run's id), so the same owner
        taking the lease again (a retried step) gets it back; by default a random one per call."""
        if not math.isfinite(lease_seconds) or lease_seconds <= 0:
            raise ValueError("lease_seconds must be a positive number")
        now = self._clock()
        lease = Lease(key=key, owner=owner or uuid.uuid4().hex, expires_at=now + lease_seconds)
        try:
            self._client.put_item(
                TableName=self._table_name,
                Item={
                    **self._item_key(key),
                    "owner": {"S": lease.owner},
                    "expiresAt": {"N": _number(lease.expires_at)},
                    "ttl": {"N": str(math.ceil(lease.expires_at))},
                },
                # An expired lease is free even if TTL has not removed the item yet.
                ConditionExpression="attribute_not_exists(pk) OR expiresAt < :now OR #owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":now": {"N": _number(now)}, ":owner": {"S": lease.owner}},
            )
        except (BotoCoreError, ClientError) as exc:
            code = _error_code(exc)
            if code == _CONDITION_FAILED:
                return None
            # The caller cannot tell "held" from "DynamoDB unavailable": make it a transient failure.
            raise RetryableError("lock_unavailable", code) from exc
        return lease

    def renew(self, lease: Lease, lease_seconds: float) -> Lease | None:
        """Extend a lease we still hold to `lease_seconds` from now; None when it is no longer ours
        (it expired and another holder took it): the caller is fenced off and should not assume it."""
        now = self._clock()
        renewed = Lease(key=lease.key, owner=lease.owner, expires_at=now + lease_seconds)
        try:
            self._client.update_item(
                TableName=self._table_name,
                Key=self._item_key(lease.key),
                UpdateExpression="SET expiresAt = :expires, #ttl = :ttl",
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner", "#ttl": "ttl"},
                ExpressionAttributeValues={
                    ":owner": {"S": lease.owner},
                    ":expires": {"N": _number(renewed.expires_at)},
                    ":ttl": {"N": str(math.ceil(renewed.expires_at))},
                },
            )
        except (BotoCoreError, ClientError) as exc:
            code = _error_code(exc)
            if code == _CONDITION_FAILED:
                return None
            raise RetryableError("lock_unavailable", code) from exc
        return renewed

    def holder(self, key: str) -> Lease | None:
        """Who holds the lease on `key` and until when (None: nobody, or it expired)."""
        item = self._client.get_item(
            TableName=self._table_name, Key=self._item_key(key), ConsistentRead=True
        ).get("Item")
        if not item or float(item["expiresAt"]["N"]) < self._clock():
            return None
        return Lease(key=key, owner=item["owner"]["S"], expires_at=float(item["expiresAt"]["N"]))

    def release(self, lease: Lease) -> None:
        """Give the lease back if we still own it; best effort (it expires by itself anyway)."""
        try:
            self._client.delete_item(
                TableName=self._table_name,
                Key=self._item_key(lease.key),
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": {"S": lease.owner}},
            )
        except (BotoCoreError, ClientError) as exc:
            code = _error_code(exc)
            if code == _CONDITION_FAILED:
                # Our lease expired and someone else holds the key now: theirs is not ours to delete.
                return
            # Failing the caller's finished work over a lock that expires anyway would be worse.
            logger.warning("lease release failed (%s); it expires at its deadline", code)

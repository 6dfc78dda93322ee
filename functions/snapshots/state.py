"""Per audience: which snapshot is applied (the pointer to its partitions) and every run's record.

State table items: `pk=snapshot`, `sk=<audience>` (the pointer; moved only by a conditional write to a
later snapshot) and `pk=snapshot-run`, `sk=<audience>#<snapshot>` (status, counts, reconciliation).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from activation_core import aws, naming


@dataclass(frozen=True, slots=True)
class Pointer:
    snapshot_id: str
    snapshot_at: datetime
    bits: int
    prefix: str
    instances: tuple[str, ...]


class StaleSnapshot(Exception):
    """Another run applied a later snapshot first."""


class SnapshotState:
    def __init__(self, table: str, dynamodb: Any | None = None) -> None:
        self.table = table
        self._dynamodb = dynamodb

    @property
    def dynamodb(self) -> Any:
        if self._dynamodb is None:
            self._dynamodb = aws.client("dynamodb")
        return self._dynamodb

    def pointer(self, audience_id: str) -> Pointer | None:
        item = self.dynamodb.get_item(
            TableName=self.table, Key={"pk": {"S": "snapshot"}, "sk": {"S": audience_id}}, ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        return Pointer(
            snapshot_id=item["snapshotId"]["S"],
            snapshot_at=datetime.fromisoformat(item["snapshotAt"]["S"]),
            bits=int(item["bits"]["N"]),
            prefix=item["prefix"]["S"],
            instances=tuple(json.loads(item["instances"]["S"])),
        )

    def advance(self, audience_id: str, new: Pointer) -> None:
        """Point the audience at `new`, only if nothing later was applied meanwhile."""
        try:
            self.dynamodb.put_item(
                TableName=self.table,
                Item={
                    "pk": {"S": "snapshot"},
                    "sk": {"S": audience_id},
                    "snapshotId": {"S": new.snapshot_id},
                    "snapshotAt": {"S": new.snapshot_at.isoformat()},
                    "epoch": {"N": str(new.snapshot_at.timestamp())},
                    "bits": {"N": str(new.bits)},
                    "prefix": {"S": new.prefix},
                    "instances": {"S": json.dumps(list(new.instances))},
                },
                ConditionExpression="attribute_not_exists(pk) OR epoch < :t OR snapshotId = :id",
                ExpressionAttributeValues={
                    ":t": {"N": str(new.snapshot_at.timestamp())},
                    ":id": {"S": new.snapshot_id},
                },
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise StaleSnapshot(audience_id) from exc
            raise

    def put_run(self, audience_id: str, snapshot_id: str, record: dict[str, Any]) -> None:
        self.dynamodb.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": "snapshot-run"},
                "sk": {"S": f"{audience_id}#{snapshot_id}"},
                "record": {"S": json.dumps(record, default=str)},
                "status": {"S": str(record.get("status", ""))},
            },
        )

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

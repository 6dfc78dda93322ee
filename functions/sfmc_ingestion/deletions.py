"""Deletion checks: rows deleted in SFMC become exits (a full primary-key comparison on a schedule).

SFMC keeps no trace of a deleted row, so the source keeps one: every check records each primary key
(digest) it reads with the profile's identities and the check's run id, in the state table; the keys
not seen by a completed check are the rows deleted since the previous one. For each, an exit of the
data extension's audiences is published (the identities kept from the last check), then the key is
forgotten. The first check of a data extension only records.

Retention: a key's identities are kept while its row exists in SFMC (the next check after its
deletion removes them), at most `retention_days` (DELETION_KEY_RETENTION_DAYS, the template's
`DeletionKeyRetentionDays`) after the last check that saw it (TTL), and until an erasure request
names the person (`erase`). The key itself is a digest of the row's primary key; the identities are
kept in plain because an exit must name the person at the vendors (a hash could not be sent). Each
item also holds the identities' digests (`who`, activation_core.erasure.identity_digests) so that an
erasure request finds the person's items without the plain values being compared.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from activation_core import aws
from activation_core.erasure import identity_digests
from activation_core.errors import RetryableError

KEYS_PK = "sfmc#keys#{source}#{key}"
CHECKS_PK = "sfmc#deletion-check"
DEFAULT_RETENTION_DAYS = 400  # a year of daily/weekly checks, and then some


@dataclass(frozen=True)
class KnownKey:
    pk_digest: str
    identities: dict[str, str]


class KeyStore(aws.UsesDynamoDB):
    """The primary keys of one data extension as the last deletion check saw them."""

    def __init__(
        self,
        table_name: str,
        *,
        dynamodb: Any | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        retention_days: int = DEFAULT_RETENTION_DAYS,
    ) -> None:
        self._table = table_name
        self._dynamodb = dynamodb
        self._clock = clock
        self._sleep = sleep
        self._retention_seconds = retention_days * 86400

    def record(self, source_id: str, de_key: str, run_id: str, keys: Sequence[KnownKey]) -> None:
        pk = KEYS_PK.format(source=source_id, key=de_key)
        ttl = str(math.ceil(self._clock() + self._retention_seconds))
        requests = []
        for key in {k.pk_digest: k for k in keys}.values():  # one request per key in a batch
            item: dict[str, dict[str, Any]] = {
                "pk": {"S": pk},
                "sk": {"S": key.pk_digest},
                "seen": {"S": run_id},
                "identities": {"S": json.dumps(key.identities, separators=(",", ":"))},
                "ttl": {"N": ttl},
            }
            if who := identity_digests(key.identities):
                item["who"] = {"SS": sorted(who)}
            requests.append({"PutRequest": {"Item": item}})
        self._write(requests)

    def data_extensions(self) -> set[tuple[str, str]]:
        """(source, data extension) of every completed check: where keys may be held."""
        found: set[tuple[str, str]] = set()
        for items in self._pages(CHECKS_PK, projection="sk"):
            for item in items:
                source, _, de_key = item["sk"]["S"].partition("#")
                found.add((source, de_key))
        return found

    def erase(self, source_id: str, de_key: str, digests: set[str]) -> int:
        """Forget the keys of one data extension whose identities match `digests` (an erasure
        request's `identity_digests`); returns how many."""
        if not digests:
            return 0
        names = {f":h{i}": {"S": d} for i, d in enumerate(sorted(digests))}
        matches = [
            item["sk"]["S"]
            for items in self._pages(
                KEYS_PK.format(source=source_id, key=de_key),
                filter_expression=" OR ".join(f"contains(who, {name})" for name in names),
                values=names,
                projection="sk",
            )
            for item in items
        ]
        self.forget(source_id, de_key, matches)
        return len(matches)

    def _pages(
        self,
        pk: str,
        *,
        filter_expression: str | None = None,
        values: dict[str, Any] | None = None,
        projection: str | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """The items of one partition (those the filter keeps), page by page."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}, **(values or {})},
        }
        if filter_expression:
            kwargs["FilterExpression"] = filter_expression
        if projection:
            kwargs["ProjectionExpression"] = projection
        while True:
            try:
                page = self._client.query(**kwargs)
            except (BotoCoreError, ClientError) as exc:
                raise RetryableError("state_unavailable", type(exc).__name__) from exc
            if page.get("Items"):
                yield page["Items"]
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def unseen(self, source_id: str, de_key: str, run_id: str) -> Iterator[list[KnownKey]]:
        """Pages of the keys the check `run_id` did not see: rows deleted since the previous check."""
        for items in self._pages(
            KEYS_PK.format(source=source_id, key=de_key),
            filter_expression="seen <> :run",
            values={":run": {"S": run_id}},
        ):
            yield [KnownKey(i["sk"]["S"], json.loads(i["identities"]["S"])) for i in items]

    def forget(self, source_id: str, de_key: str, digests: Sequence[str]) -> None:
        pk = KEYS_PK.format(source=source_id, key=de_key)
        self._write([{"DeleteRequest": {"Key": {"pk": {"S": pk}, "sk": {"S": d}}}} for d in digests])

    def checked_at(self, source_id: str, de_key: str) -> str | None:
        try:
            item = self._client.get_item(
                TableName=self._table,
                Key={"pk": {"S": CHECKS_PK}, "sk": {"S": f"{source_id}#{de_key}"}},
                ConsistentRead=True,
            ).get("Item")
        except (BotoCoreError, ClientError) as exc:
            raise RetryableError("state_unavailable", type(exc).__name__) from exc
        return item["checkedAt"]["S"] if item else None

    def mark_checked(self, source_id: str, de_key: str, started_at: str, run_id: str) -> None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": CHECKS_PK},
                    "sk": {"S": f"{source_id}#{de_key}"},
                    "checkedAt": {"S": started_at},
                    "runId": {"S": run_id},
                },
            )
        except (BotoCoreError, ClientError) as exc:
            raise RetryableError("state_unavailable", type(exc).__name__) from exc

    def _write(self, requests: list[dict[str, Any]]) -> None:
        try:
            aws.batch_write(self._client, self._table, requests, sleep=self._sleep)
        except aws.KeysLeftUnprocessed as exc:
            raise RetryableError("state_throttled", "key writes left unprocessed") from exc
        except (BotoCoreError, ClientError) as exc:
            raise RetryableError("state_unavailable", type(exc).__name__) from exc

"""The S3 landing zone: one gzip JSON Lines object per page, partitioned by data extension and date.

`sfmc/source=<id>/data_extension=<key>/ingestion_date=YYYY-MM-DD/run=<runId>/page-00001.jsonl.gz`
(Hive-style partitions, readable by Athena/Glue). The key is deterministic, so a retried page
overwrites its own object instead of adding a second copy. Bucket encryption is the bucket's default
(SSE); nothing here decides it.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError

from activation_core import aws
from activation_core.errors import PermanentError, RetryableError

_PERMANENT_S3 = frozenset({"AccessDenied", "NoSuchBucket", "InvalidBucketName", "KMS.DisabledException"})


def object_key(source_id: str, de_key: str, started_at: str, run_id: str, page: int) -> str:
    # The run's start date, not "now": a run that crosses midnight keeps its pages together.
    return (
        f"sfmc/source={source_id}/data_extension={quote(de_key, safe='')}/ingestion_date={started_at[:10]}"
        f"/run={run_id}/page-{page:05d}.jsonl.gz"
    )


def encode(records: Iterable[dict[str, Any]]) -> bytes:
    """JSON Lines, gzip'd while written (no second full copy of the page in memory)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6, mtime=0) as gz:
        for record in records:
            gz.write(json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str).encode())
            gz.write(b"\n")
    return buffer.getvalue()


class Lander:
    def __init__(self, bucket: str, *, s3: Any | None = None) -> None:
        self.bucket = bucket
        self._s3 = s3

    @property
    def _client(self) -> Any:
        if self._s3 is None:
            self._s3 = aws.client("s3")
        return self._s3

    def put(self, key: str, body: bytes, rows: int) -> None:
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType="application/gzip",
                Metadata={"rows": str(rows), "format": "jsonl"},
            )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
            if code in _PERMANENT_S3:
                raise PermanentError("landing_refused", f"S3 {code}") from exc
            raise RetryableError("landing_failed", f"S3 {code}") from exc
        except BotoCoreError as exc:
            raise RetryableError("landing_failed", type(exc).__name__) from exc

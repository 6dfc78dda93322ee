"""The S3 landing zone: one gzip JSON Lines object per page, partitioned by data extension and date.

`sfmc/source=<id>/data_extension=<key>/ingestion_date=YYYY-MM-DD/run=<runId>/page-00001.jsonl.gz`
(Hive-style partitions, readable by Athena/Glue). The key is deterministic, so a retried page
overwrites its own object instead of adding a second copy. Bucket encryption is the bucket's default
(SSE); nothing here decides it.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from functools import partial
from typing import Any
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError
from pydantic_core import to_json

from activation_core import aws
from activation_core.errors import PermanentError, RetryableError

_PERMANENT_S3 = frozenset({"AccessDenied", "NoSuchBucket", "InvalidBucketName", "KMS.DisabledException"})


def object_key(source_id: str, de_key: str, started_at: str, run_id: str, page: int) -> str:
    # The run's start date, not "now": a run that crosses midnight keeps its pages together.
    return (
        f"sfmc/source={source_id}/data_extension={quote(de_key, safe='')}/ingestion_date={started_at[:10]}"
        f"/run={run_id}/page-{page:05d}.jsonl.gz"
    )


# zlib level 1: a page's JSON Lines come out ~35% larger than at level 6 for less than half its CPU
# (measured in tests/bench/bench_sfmc.py); S3 bytes are cheaper than page-task CPU.
COMPRESS_LEVEL = 1


_line = partial(to_json, fallback=str)


def encode(records: Iterable[dict[str, Any]], common: dict[str, Any] | None = None) -> bytes:
    """JSON Lines, gzip'd in one call (one page: a few MB at most, flat in the data extension's size).

    `common`: the fields every line starts with (the page's source, run, ...), serialised once for the
    page rather than once per line: each line is `{**common, **record}` (the keys of a record are not
    among them), byte for byte. pydantic-core's serialiser (already in the layer): compact JSON,
    non-ASCII kept, anything else as text, at a third of json.dumps' CPU.
    """
    if common:
        head = _line(common)  # b'{...}'
        opening = head[:-1] + b","  # once, not once per line
        lines = b"\n".join([opening + line[1:] if line != b"{}" else head for line in map(_line, records)])
    else:
        lines = b"\n".join(map(_line, records))
    if lines:
        lines += b"\n"  # every line ends in one, the last too
    return gzip.compress(lines, compresslevel=COMPRESS_LEVEL, mtime=0)


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

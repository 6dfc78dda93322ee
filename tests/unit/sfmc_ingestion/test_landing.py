"""The S3 landing format - with stub clients, no AWS."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from activation_core.errors import PermanentError, RetryableError
from sfmc_ingestion.landing import Lander, encode, object_key


def test_landing_keys_are_partitioned_by_data_extension_and_ingestion_date() -> None:
    key = object_key("sfmc-main", "Web Activity/2026", "2026-11-28T23:59:59Z", "run-1", 7)
    assert key == (
        "sfmc/source=sfmc-main/data_extension=Web%20Activity%2F2026/ingestion_date=2026-11-28/run=run-1/"
        "page-00007.jsonl.gz"
    )


def test_landed_pages_are_gzip_json_lines() -> None:
    records = [{"row": {"name": "Zoë", "n": 1}}, {"row": {"name": "Åsa", "n": 2}}]
    body = encode(records)
    assert body[:2] == b"\x1f\x8b"
    assert [json.loads(line) for line in gzip.decompress(body).splitlines()] == records
    assert encode(records) == body  # deterministic (no timestamp in the gzip header)


class StubS3:
    def __init__(self, error: str | None = None) -> None:
        self.error = error
        self.puts: list[dict[str, Any]] = []

    def put_object(self, **kwargs: Any) -> None:
        if self.error:
            raise ClientError({"Error": {"Code": self.error, "Message": "x"}}, "PutObject")
        self.puts.append(kwargs)


def test_landing_errors_are_classified() -> None:
    s3 = StubS3()
    Lander("b", s3=s3).put("k", b"x", 3)
    assert s3.puts[0]["Metadata"] == {"rows": "3", "format": "jsonl"}
    with pytest.raises(PermanentError):
        Lander("b", s3=StubS3("AccessDenied")).put("k", b"x", 1)
    with pytest.raises(RetryableError):
        Lander("b", s3=StubS3("SlowDown")).put("k", b"x", 1)

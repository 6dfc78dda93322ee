"""Where snapshots, partitions and run records live: S3 in AWS, a directory in benches and unit tests.

Every read streams (`open`), every large write uploads a local file (`upload`), so no task holds a
whole snapshot in memory.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol

from activation_core import aws


class NotFound(Exception):
    """The object does not exist."""


class ObjectStore(Protocol):
    def open(self, key: str) -> IO[bytes]: ...

    def upload(self, key: str, path: Path) -> None: ...

    def put_json(self, key: str, value: Any) -> None: ...

    def get_json(self, key: str) -> Any: ...

    def exists(self, key: str) -> bool: ...

    def delete_prefix(self, prefix: str) -> int: ...

    def keys(self, prefix: str) -> Iterator[str]: ...


class S3Store:
    def __init__(self, bucket: str, s3: Any | None = None) -> None:
        self.bucket = bucket
        self._s3 = s3

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            self._s3 = aws.client("s3")
        return self._s3

    def _missing(self, exc: Exception) -> bool:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        return code in ("NoSuchKey", "404", "NotFound")

    def open(self, key: str) -> IO[bytes]:
        try:
            body: IO[bytes] = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        except Exception as exc:
            if self._missing(exc):
                raise NotFound(key) from exc
            raise
        return body

    def upload(self, key: str, path: Path) -> None:
        self.s3.upload_file(str(path), self.bucket, key)

    def put_json(self, key: str, value: Any) -> None:
        body = json.dumps(value, separators=(",", ":"), default=str).encode()
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")

    def get_json(self, key: str) -> Any:
        with self.open(key) as body:
            return json.loads(body.read())

    def exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if self._missing(exc):
                return False
            raise
        return True

    def delete_prefix(self, prefix: str) -> int:
        deleted = 0
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
                deleted += len(keys)
        return deleted

    def keys(self, prefix: str) -> Iterator[str]:
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            yield from (o["Key"] for o in page.get("Contents", []))


class DirStore:
    """The same interface on a local directory (benches, unit tests)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / key

    def open(self, key: str) -> IO[bytes]:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError as exc:
            raise NotFound(key) from exc

    def upload(self, key: str, path: Path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)

    def put_json(self, key: str, value: Any) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(value, default=str))

    def get_json(self, key: str) -> Any:
        with self.open(key) as handle:
            return json.loads(handle.read())

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def delete_prefix(self, prefix: str) -> int:
        paths = [
            p
            for p in self.root.rglob("*")
            if p.is_file() and str(p.relative_to(self.root)).startswith(prefix)
        ]
        for path in paths:
            path.unlink()
        return len(paths)

    def keys(self, prefix: str) -> Iterator[str]:
        for path in sorted(self.root.rglob("*")):
            key = str(path.relative_to(self.root))
            if path.is_file() and key.startswith(prefix):
                yield key

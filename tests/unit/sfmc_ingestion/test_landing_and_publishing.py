"""The S3 landing format and PutEvents batching/retries - with stub clients, no AWS."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from activation_core.errors import PermanentError, RetryableError
from sfmc_ingestion.landing import Lander, encode, object_key
from sfmc_ingestion.publishing import MAX_REQUEST_BYTES, EventPublisher, batches, entry_size


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


def test_fields_common_to_a_page_are_written_once_and_land_as_if_on_every_line() -> None:
    common = {"sourceId": "sfmc-main", "page": 3, "ingestedAt": "2026-11-28T10:00:00Z"}
    records: list[dict[str, Any]] = [{"status": "published", "row": {"name": "Zoë"}}, {}]
    alone = encode([{**common, **record} for record in records])
    assert encode(records, common) == alone  # the same bytes as the lines written whole
    assert [json.loads(line) for line in gzip.decompress(alone).splitlines()][1] == common


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


class StubEvents:
    """Fails the entries whose detail holds a marker, `failures` times each."""

    def __init__(self, failures: int = 0, marker: str = "", error: str | None = None) -> None:
        self.failures, self.marker, self.error = failures, marker, error
        self.calls: list[list[dict[str, Any]]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        if self.error:
            raise ClientError({"Error": {"Code": self.error, "Message": "x"}}, "PutEvents")
        self.calls.append(Entries)
        results = []
        for entry in Entries:
            if self.failures and self.marker in entry["Detail"]:
                self.failures -= 1
                results.append({"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"})
            else:
                results.append({"EventId": "e"})
        return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}


def publisher(events: StubEvents, **kwargs: Any) -> EventPublisher:
    return EventPublisher("bus", events=events, sleep=lambda _: None, **kwargs)


def test_put_events_batches_hold_at_most_ten_entries() -> None:
    events = StubEvents()
    pub = publisher(events, workers=1)
    entries = [pub.entry({"eventId": f"e{n}"}) for n in range(25)]
    assert pub.publish(entries) == 25
    assert [len(c) for c in events.calls] == [10, 10, 5]
    assert {e["DetailType"] for c in events.calls for e in c} == {"Profile Updated"}
    assert {e["EventBusName"] for c in events.calls for e in c} == {"bus"}


def test_put_events_batches_stay_under_256_kb() -> None:
    pub = publisher(StubEvents())
    big = [pub.entry({"blob": "x" * 100_000, "n": n}) for n in range(5)]
    groups = batches(big)
    assert [len(g) for g in groups] == [2, 2, 1]
    assert all(sum(entry_size(e) for e in g) <= MAX_REQUEST_BYTES for g in groups)
    assert not pub.fits(pub.entry({"blob": "x" * MAX_REQUEST_BYTES}))


def test_only_the_failed_entries_are_sent_again() -> None:
    events = StubEvents(failures=2, marker="e3")
    pub = publisher(events, workers=1)
    assert pub.publish([pub.entry({"eventId": f"e{n}"}) for n in range(5)]) == 5
    assert [len(c) for c in events.calls] == [5, 1, 1]
    assert pub.retried_entries == 2


def test_entries_failing_after_every_attempt_fail_the_page() -> None:
    pub = publisher(StubEvents(failures=100, marker="e1"), attempts=3, workers=1)
    with pytest.raises(RetryableError, match="1 entries still failing"):
        pub.publish([pub.entry({"eventId": f"e{n}"}) for n in range(3)])


def test_a_missing_bus_is_permanent_and_throttling_is_retried() -> None:
    with pytest.raises(PermanentError):
        publisher(StubEvents(error="ResourceNotFoundException")).publish([{"Detail": "{}"}])
    with pytest.raises(RetryableError):
        publisher(StubEvents(error="ThrottlingException"), attempts=2).publish([{"Detail": "{}"}])


def test_batches_are_sent_in_parallel_and_all_counted() -> None:
    events = StubEvents()
    pub = publisher(events, workers=4)
    assert pub.publish([pub.entry({"eventId": f"e{n}"}) for n in range(95)]) == 95
    assert sorted(len(c) for c in events.calls) == [5] + [10] * 9

"""The layer's EventBridge publisher: PutEvents batching and retries - with a stub client, no AWS."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from activation_core.errors import PermanentError, RetryableError
from activation_core.publishing import MAX_REQUEST_BYTES, EventPublisher, batches, entry_size


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
    return EventPublisher(
        "bus",
        source="test.source",
        detail_type="Profile Updated",
        events=events,
        sleep=lambda _: None,
        **kwargs,
    )


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


def test_entries_are_stamped_with_the_publishers_source_and_detail_type() -> None:
    pub = publisher(StubEvents())
    assert (pub.entry({})["Source"], pub.entry({}, detail_type="Other")["DetailType"]) == (
        "test.source",
        "Other",
    )
    with pytest.raises(ValueError, match="source"):
        EventPublisher("bus").entry({})

"""Watermarks: boundary keys, merges, conditional commits, and the property that matters - the
watermark never moves ahead of a row that was not processed, whatever fails and whenever rows change."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from activation_core.errors import PermanentError
from sfmc_ingestion.client import RowsetPage
from sfmc_ingestion.config import parse_ingestion_config
from sfmc_ingestion.models import Watermark
from sfmc_ingestion.publishing import PreparedEntry
from sfmc_ingestion.rows import iso, parse_iso
from sfmc_ingestion.tasks import commit as commit_task
from sfmc_ingestion.tasks import page as page_task
from sfmc_ingestion.tasks import plan as plan_task
from sfmc_ingestion.tasks.errors import SfmcPermanent
from sfmc_ingestion.watermarks import DuplicateFilter, RecentRows, WatermarkStore, merge
from tests.support import create_state_table

T0 = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)


def at(minutes: int) -> str:
    return iso(T0 + timedelta(minutes=minutes))


def test_the_tracker_follows_the_highest_value_and_the_rows_within_the_window() -> None:
    tracker = RecentRows(Watermark(value=at(1)), window=timedelta(minutes=2))
    for minutes, key in ((1, "a"), (3, "b"), (2, "c"), (3, "d"), (3, "b"), (None, "e"), (4, "f")):
        tracker.see(None if minutes is None else at(minutes), key)
    # The window is [4 - 2, 4]: "a" (at 1) was forgotten when the value moved to 4.
    assert tracker.watermark() == Watermark(
        value=at(4), recent={at(2): ["c"], at(3): ["b", "d"], at(4): ["f"]}, recent_from=at(2)
    )


def test_without_a_window_the_tracker_keeps_the_rows_at_the_value() -> None:
    tracker = RecentRows(Watermark(value=at(1)))
    for minutes, key in ((1, "a"), (3, "b"), (2, "c"), (3, "d")):
        tracker.see(at(minutes), key)
    assert tracker.watermark() == Watermark(value=at(3), recent={at(3): ["b", "d"]}, recent_from=at(3))


def test_the_tracker_forgets_whole_values_oldest_first_rather_than_overflow() -> None:
    tracker = RecentRows(Watermark(), window=timedelta(hours=1), limit=4)
    for minutes, key in ((1, "a"), (2, "b"), (2, "c"), (3, "d"), (3, "e")):
        tracker.see(at(minutes), key)
    mark = tracker.watermark()
    assert mark.recent == {at(2): ["b", "c"], at(3): ["d", "e"]}
    assert mark.recent_from == at(2)
    duplicates = DuplicateFilter(mark)
    assert duplicates.seen(at(2), "b") and not duplicates.seen(at(1), "a")  # forgotten: re-published
    crowded = RecentRows(Watermark(), window=timedelta(hours=1), limit=2)
    for key in "xyz":
        crowded.see(at(5), key)
    assert not DuplicateFilter(crowded.watermark()).seen(at(5), "x")  # nothing known: re-publish


def test_duplicates_are_the_previous_runs_rows_in_its_window_only() -> None:
    duplicates = DuplicateFilter(
        Watermark(value=at(5), recent={at(4): ["z"], at(5): ["a", "b"]}, recent_from=at(3))
    )
    assert duplicates.seen(iso(T0 + timedelta(minutes=5)), "a")
    assert duplicates.seen(at(4), "z")
    assert not duplicates.seen(at(5), "c")  # same timestamp, new row: not lost
    assert not duplicates.seen(at(3), "y")  # stamped in the window, seen late: new, not lost
    assert not duplicates.seen(at(6), "a")  # modified since: a new version
    assert not duplicates.seen(at(2), "z")  # below the window: not known
    assert not DuplicateFilter(Watermark()).seen(at(5), "a")


def test_merge_never_moves_a_watermark_back() -> None:
    low = Watermark(value=at(1), recent={at(1): ["a"]}, recent_from=at(1))
    high = Watermark(value=at(2), recent={at(2): ["b"]}, recent_from=at(1))
    assert merge(low, high) == high
    assert merge(high, low) == high
    same = merge(Watermark(value=at(2), recent={at(2): ["a"]}, recent_from=at(2)), high)
    assert (same.recent, same.recent_from) == ({at(2): ["a", "b"]}, at(2))  # complete from the later
    assert merge(high, Watermark()) == high


@pytest.fixture
def store() -> Iterator[WatermarkStore]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_state_table(client, "state")
        yield WatermarkStore("state", dynamodb=client)


def test_a_commit_is_conditional_and_a_concurrent_commit_is_merged(store: WatermarkStore) -> None:
    start = store.read("s", "de")
    assert start == Watermark()
    first = store.commit(
        "s", "de", started_from=start, high=Watermark(value=at(5)), run_id="a", started_at=at(60)
    )
    assert (first.after.value, first.after.version, first.merged) == (at(5), 1, False)
    # A second run planned from the same (old) watermark commits a lower value: merged, never back.
    second = store.commit(
        "s", "de", started_from=start, high=Watermark(value=at(3)), run_id="b", started_at=at(61)
    )
    assert second.merged and second.after.value == at(5) and second.after.version == 2
    stored = store.read("s", "de")
    assert (stored.value, stored.version, stored.last_success_at) == (at(5), 2, at(61))
    assert store.list_all() == {"s#de": stored}


def test_run_records_are_kept_newest_first(store: WatermarkStore) -> None:
    for n in range(3):
        store.put_run({"runId": f"r{n}", "startedAt": at(n), "status": "SUCCEEDED", "dataExtensions": []})
    assert [r["runId"] for r in store.runs(2)] == ["r2", "r1"]


# --- the property -----------------------------------------------------------------------------------


@dataclass
class MemorySfmc:
    """Rows in memory with the rowset semantics the flow relies on: >= filter, ascending order,
    a snapshot per result set followed through links.next."""

    rows: dict[str, int] = field(default_factory=dict)  # primary key -> minutes after T0
    fail_at_page: int | None = None
    snapshots: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def first_page(
        self, key: str, *, page_size: int, filter_expr: str | None, order_by: str | None, fields: Any = ()
    ) -> RowsetPage:
        rows = sorted(self.rows.items(), key=lambda kv: kv[1])  # stable: ties keep insertion order
        if filter_expr:
            literal = filter_expr.split("'")[1]
            low = parse_iso(literal + "-06:00")
            rows = [(k, m) for k, m in rows if T0 + timedelta(minutes=m) >= low]
        token = f"t{next(self._ids)}"
        self.snapshots[token] = rows
        return self._page(token, 1, page_size)

    def next_page(self, link: str) -> RowsetPage:
        token, page, size = link.split(":")
        return self._page(token, int(page), int(size))

    def _page(self, token: str, page: int, size: int) -> RowsetPage:
        if self.fail_at_page == page:
            raise PermanentError("sfmc_403_20002", "injected")
        rows = self.snapshots[token]
        chunk = rows[(page - 1) * size : page * size]
        items = [
            {"keys": {"id": key}, "values": {"subscriberkey": key, "ts": _sfmc(minutes)}}
            for key, minutes in chunk
        ]
        more = page * size < len(rows)
        return RowsetPage(items, len(rows), page, size, f"{token}:{page + 1}:{size}" if more else None, token)


def _sfmc(minutes: int) -> str:
    local = T0 + timedelta(minutes=minutes) - timedelta(hours=6)
    return local.strftime("%m/%d/%Y %I:%M:%S %p")


class Collect:
    """Lander and publisher in one: what was landed and published, as (key, minutes)."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []

    def put(self, key: str, body: bytes, rows: int) -> None:
        return None

    def prepare(self, detail: dict[str, Any]) -> PreparedEntry:
        return PreparedEntry({"detail": detail}, 0)

    def publish(self, entries: list[dict[str, Any]], sizes: list[int] | None = None) -> int:
        for entry in entries:
            detail = entry["detail"]
            self.published.append(
                (detail["profile"]["identities"]["sfmcSubscriberKey"], detail["occurredAt"])
            )
        return len(entries)


CONFIG: dict[str, Any] = {
    "schemaVersion": "1",
    "sources": [
        {
            "id": "s",
            "secret": "unused",
            "dataExtensions": [
                {
                    "key": "DE",
                    "primaryKey": ["Id"],
                    "incrementalColumn": "Ts",
                    "fields": {"Ts": "Date"},
                    "lookBackSeconds": 600,
                    "mapping": [{"column": "SubscriberKey", "target": "identities.sfmcSubscriberKey"}],
                }
            ],
        }
    ],
}

LOOK_BACK_MINUTES = 10
steps = st.lists(
    st.tuples(
        # Rows inserted or modified before the run: minutes after the newest existing value (0: a tie;
        # negative: stamped before it but visible only now, within the look-back window).
        st.dictionaries(st.sampled_from("abcdefghijkl"), st.integers(-LOOK_BACK_MINUTES, 2), max_size=6),
        st.one_of(st.none(), st.integers(1, 4)),  # the page that fails in this run, if any
        st.integers(1, 5),  # page size
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps)
def test_the_watermark_never_advances_past_unprocessed_rows(store: WatermarkStore, runs: list[Any]) -> None:
    """Nothing lost (late rows within the look-back included) and, when no run failed, nothing
    published twice: the re-read rows are recognised."""
    source_rows = MemorySfmc()
    sink = Collect()
    config_doc: dict[str, Any] = {**CONFIG}
    source_id = f"s{next(_examples)}"
    config_doc["sources"] = [{**CONFIG["sources"][0], "id": source_id}]
    clock = itertools.count(10)
    failed_runs = 0
    for upserts, fail_at, page_size in [*runs, ({}, None, 3)]:  # a last clean run settles everything
        newest = max(source_rows.rows.values(), default=0)
        for key, offset in upserts.items():
            # The delta column's contract: a change is stamped with its time, so a row's new version is
            # later than its previous one; it may become visible up to the look-back after that time.
            previous = source_rows.rows.get(key)
            source_rows.rows[key] = max(
                newest + offset, previous + 1 if previous is not None else newest + offset
            )
        source_rows.fail_at_page = fail_at
        config_doc["sources"][0]["dataExtensions"][0]["pageSize"] = page_size
        config = parse_ingestion_config(config_doc)
        planned = plan_task.plan(
            {"input": {"trigger": "manual"}},
            config=config,
            store=store,
            now=T0 + timedelta(hours=next(clock)),
            run_id="r",
        )
        (item,) = planned["items"]
        deps = page_task.PageDeps(client=source_rows, lander=sink, publisher=sink, store=store)  # type: ignore[arg-type]
        error: dict[str, str] | None = None
        while True:
            try:
                item = page_task.run_page(item, deps)
            except SfmcPermanent as exc:
                error = {"Error": "SfmcPermanent", "Cause": str(exc)}
                break
            if item["cursor"]["done"]:
                break
        commit_task.commit({**item, "error": error} if error else item, store=store)
        failed_runs += error is not None

        mark = store.read(source_id, "DE")
        published = set(sink.published)
        for key, minutes in source_rows.rows.items():
            version = (key, at(minutes))
            if mark.value is None or error is not None:
                continue  # after a failed run, rows that became visible late are still pending
            if T0 + timedelta(minutes=minutes) < parse_iso(mark.value):
                assert version in published, (
                    f"{version} is below the watermark {mark.value} but was never published"
                )
            elif _digest(key) in mark.recent.get(at(minutes), []):
                assert version in published, (
                    f"{version} is among the recent rows of {mark.value} but was never published"
                )
    # After the clean run, every current row version has been published at least once.
    assert {(k, at(m)) for k, m in source_rows.rows.items()} <= set(sink.published)
    if not failed_runs:
        assert len(sink.published) == len(set(sink.published)), "a re-read row was published twice"


_examples = itertools.count()


def _digest(key: str) -> str:
    from sfmc_ingestion.rows import digest

    return digest([key])

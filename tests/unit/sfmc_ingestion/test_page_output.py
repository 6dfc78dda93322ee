"""The page task's outputs, byte for byte: what a performance change must not move (issue 18, goal 7).

Three data extensions' pages (every column type, one- and two-column primary keys, lower-case and
mixed-case names, a whole-hour, a half-hour and a daylight-saving zone, a previous run's look-back rows)
with deterministic damage mixed in (blank, whitespace, invalid, non-text and non-ASCII values, missing
keys, another row shape) go through `process_page`; the landed object (key and decompressed bytes), the
PutEvents entries in order and the returned work item are hashed. The expected digests were computed by
the page task as it was before the issue 18 changes (commit 7174f62): a change that moves any landed
byte, event id, detail or count fails here.
"""

from __future__ import annotations

import gc
import gzip
import hashlib
import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from local.fakes.sfmc import campaign_engagement, contacts, example_ingestion_config, web_activity
from sfmc_ingestion.client import RowsetPage
from sfmc_ingestion.config import parse_ingestion_config
from sfmc_ingestion.landing import Lander
from sfmc_ingestion.models import SourceRef, Watermark, WorkItem
from sfmc_ingestion.publishing import EventPublisher
from sfmc_ingestion.tasks.page import PageDeps, process_page

NOW = datetime(2026, 11, 28, 10, 0, 5, tzinfo=UTC)
# Values that each take another path through typing, mapping, digests and serialisation.
DAMAGE: tuple[Any, ...] = (
    "", "   ", "\t", None, 7, True, 2.5, "abc", "1,234.50", "12.0", "1e3", "NaN", "-0", "yes", "maybe",
    "False", "Zoë ☃", 'quote"back\\slash', "  MiXeD@Example.COM ", "11/20/2026", "2026-11-20T08:00:00Z",
    "13/45/2026 1:00:00 PM", "11/20/2026 8:00 PM", "11/20/2026 20:00:00", "x\u2028y", "\x00", "€" * 3,
)  # fmt: skip


class CapturedS3:
    def __init__(self) -> None:
        self.objects: list[tuple[str, bytes]] = []

    def put_object(self, **kwargs: Any) -> None:
        self.objects.append((kwargs["Key"], gzip.decompress(kwargs["Body"])))


class CapturedEvents:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.entries.extend(Entries)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "e"}] * len(Entries)}


class OnePage:
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def first_page(self, key: str, **_: Any) -> RowsetPage:
        return RowsetPage(self.items, len(self.items), 1, len(self.items), None, "t1")

    def next_page(self, link: str) -> RowsetPage:
        raise AssertionError("one page")


class PreviousRun:
    def __init__(self, mark: Watermark) -> None:
        self.mark = mark

    def read(self, source_id: str, key: str) -> Watermark:
        return self.mark


def rowset(
    rows: list[dict[str, str]], pk: tuple[str, ...], *, lower: bool, seed: int
) -> list[dict[str, Any]]:
    """Rows as SFMC's rowset API returns them, every few damaged (deterministically)."""
    rng = random.Random(seed)
    items: list[dict[str, Any]] = []
    for n, row in enumerate(rows):
        values: dict[str, Any] = {(k.lower() if lower else k): v for k, v in row.items()}
        if n % 3 == 0:
            for name in rng.sample(sorted(values), k=rng.randint(1, 3)):
                values[name] = rng.choice(DAMAGE)
        if n % 29 == 5:
            values = {k.upper(): v for k, v in values.items()}  # another shape
        if n % 31 == 7:
            values.pop(rng.choice(sorted(values)))  # a column missing (a primary-key column at times)
        pk_names = {name.lower() for name in pk}
        keys = {k: v for k, v in values.items() if k.lower() in pk_names}
        rest = {k: v for k, v in values.items() if k.lower() not in pk_names}
        items.append({"keys": keys, "values": rest} if n % 37 != 11 else {"values": {**keys, **rest}})
    return items


def run_page(key: str, rows: list[dict[str, str]], *, zone: str, lower: bool, look_back: bool) -> str:
    (source,) = parse_ingestion_config(example_ingestion_config()).sources
    de = next(d for d in source.data_extensions if d.key == key)
    items = rowset(rows, tuple(de.primary_key), lower=lower, seed=len(rows))
    item = WorkItem(
        run_id="run-42",
        started_at="2026-11-28T10:00:00Z",
        source=SourceRef(id=source.id, secret=source.secret, time_zone=zone),
        data_extension=de.model_copy(update={"look_back_seconds": 600}),
    )
    previous = Watermark()
    if look_back:
        # The previous run processed some of these rows: they are counted duplicate, not published.
        first = process_page(
            item.model_copy(deep=True), _deps(items[: len(items) // 2], Watermark()), now=NOW
        )
        previous = first.progress.high.model_copy(update={"version": 3})
        item.watermark = previous.model_copy(update={"recent": {}, "recent_count": len(previous.recent)})
    s3, events = CapturedS3(), CapturedEvents()
    deps = _deps(items, previous, s3=s3, events=events)
    done = process_page(item, deps, now=NOW)
    digest = hashlib.sha256()
    for object_key, body in s3.objects:
        digest.update(object_key.encode() + b"\0" + body + b"\0")
    digest.update(json.dumps(events.entries, ensure_ascii=False).encode() + b"\0")
    digest.update(json.dumps(done.dump(), sort_keys=True).encode())
    assert done.progress.rows_read == len(rows)
    return digest.hexdigest()


def _deps(
    items: list[dict[str, Any]],
    previous: Watermark,
    *,
    s3: CapturedS3 | None = None,
    events: CapturedEvents | None = None,
) -> PageDeps:
    return PageDeps(
        client=OnePage(items),  # type: ignore[arg-type]
        lander=Lander("landing", s3=s3 or CapturedS3()),
        publisher=EventPublisher("bus", events=events or CapturedEvents(), workers=1),
        store=PreviousRun(previous),  # type: ignore[arg-type]
    )


# name: (data extension, rows, account zone, lower-case names, a previous run's look-back rows)
CASES: dict[str, tuple[str, Any, str, bool, bool]] = {
    "web-activity": ("Web_Activity", lambda: web_activity(700).rows, "-06:00", True, True),
    "contacts": ("Contacts", lambda: contacts(500).rows, "+05:30", False, False),
    "campaign": ("Campaign_Engagement", lambda: campaign_engagement(400).rows, "America/Chicago", True, True),
}
EXPECTED = {
    "web-activity": "dfcaf5359e148fdf57e8a90907221310f296db143c6f6452216e5dd2c539e7b5",
    "contacts": "d84ac3401580632162dcc5d65bad28ccfddaea635b84303d1afc7fef24df4f6e",
    "campaign": "b655930f94965ad8e62d44ee230b55192cd83eae0a98d466c326c4e1c39588c6",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_page_tasks_landed_lines_events_and_counts_are_unchanged(case: str) -> None:
    key, rows, zone, lower, look_back = CASES[case]
    assert run_page(key, rows(), zone=zone, lower=lower, look_back=look_back) == EXPECTED[case]


class RefusingS3:
    def put_object(self, **kwargs: Any) -> None:
        raise RuntimeError("S3 is down")


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_as_it_was_after_a_page_and_after_a_failed_one(enabled: bool) -> None:
    """The page task pauses the cyclic garbage collector while it works (tasks/page.py); whatever the page's
    outcome, the collector is left as it found it."""
    (source,) = parse_ingestion_config(example_ingestion_config()).sources
    de = next(d for d in source.data_extensions if d.key == "Web_Activity")
    item = WorkItem(
        run_id="run-1", started_at="2026-11-28T10:00:00Z",
        source=SourceRef(id=source.id, secret=source.secret), data_extension=de,
    )  # fmt: skip
    items = rowset(web_activity(50).rows, tuple(de.primary_key), lower=True, seed=1)
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        process_page(item.model_copy(deep=True), _deps(items, Watermark()), now=NOW)
        assert gc.isenabled() is enabled
        failing = _deps(items, Watermark())
        failing.lander = Lander("landing", s3=RefusingS3())
        with pytest.raises(RuntimeError):
            process_page(item.model_copy(deep=True), failing, now=NOW)
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()

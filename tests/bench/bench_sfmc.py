"""SFMC ingestion: rows per second through one page task, and its peak memory for a 2,500-row page and
for a 100,000-row data extension (which must not grow with the data extension's size).

The page task runs in this process exactly as in Lambda (HTTP to the fake SFMC, typing, mapping,
gzip JSON Lines, PutEvents batching); the fake SFMC serves from a separate process so its CPU and
memory are not counted. AWS calls go to stubs that take a fixed, AWS-like time per call (PutObject
30 ms, PutEvents 15 ms) or none at all, so the figures measure the task, not moto.

Baselines, measured in the same run:
- throughput: the same page published the naive way, one PutEvents call per row, sequentially;
- memory: the floor (the page's HTTP response parsed, nothing else) for one page; for the whole data
  extension, the naive way (every page read into memory, then processed).
"""

from __future__ import annotations

import gc
import multiprocessing
import time
import tracemalloc
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from tests.bench.run import Figure

SECTION = "SFMC ingestion (page task)"
COMMAND = "make bench (tests/bench/bench_sfmc.py)"
PAGE = 2500
LARGE = 100_000
PUT_OBJECT_LATENCY = 0.030
PUT_EVENTS_LATENCY = 0.015


def _serve(rows: int, conn: Connection) -> None:
    from local.fakes.sfmc import FakeSfmc, web_activity

    fake = FakeSfmc(token_ttl=86_400)
    fake.add(web_activity(rows))
    conn.send(fake.start())
    conn.recv()  # until the parent says stop
    fake.stop()


class FakeProcess:
    def __init__(self, rows: int) -> None:
        self._parent, child = multiprocessing.Pipe()
        self._process = multiprocessing.get_context("fork").Process(
            target=_serve, args=(rows, child), daemon=True
        )
        self._process.start()
        self.base_url: str = self._parent.recv()

    def close(self) -> None:
        self._parent.send("stop")
        self._process.join(10)


class StubTokens:
    def __init__(self, token: str, connection: dict[str, Any]) -> None:
        self.token, self._connection = token, connection

    def call_with_token(self, fn: Callable[[str], Any]) -> Any:
        return fn(self.token)

    def connection(self) -> dict[str, Any]:
        return self._connection


class SlowS3:
    def __init__(self, latency: float) -> None:
        self.latency, self.bytes = latency, 0

    def put_object(self, **kwargs: Any) -> None:
        time.sleep(self.latency)
        self.bytes += len(kwargs["Body"])


class SlowEvents:
    def __init__(self, latency: float) -> None:
        self.latency, self.entries, self.calls = latency, 0, 0

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        time.sleep(self.latency)
        self.entries += len(Entries)
        self.calls += 1
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "e"}] * len(Entries)}


def _setup(base_url: str) -> tuple[Any, Any]:
    from local.fakes.sfmc import example_ingestion_config
    from sfmc_ingestion import client as sfmc
    from sfmc_ingestion.config import parse_ingestion_config
    from sfmc_ingestion.models import SfmcConnection, SourceRef, WorkItem

    connection = SfmcConnection(
        client_id="sfmc-client", client_secret="sfmc-secret-value", auth_base_uri=base_url
    )
    grant = sfmc.fetch_token(connection.model_dump(by_alias=True), allow_loopback=True)
    document = {**connection.model_dump(by_alias=True), **grant.connection_updates}
    client = sfmc.SfmcClient(connection, StubTokens(grant.access_token, document), allow_loopback=True)  # type: ignore[arg-type]
    (source,) = parse_ingestion_config(example_ingestion_config()).sources
    de = next(d for d in source.data_extensions if d.key == "Web_Activity")
    item = WorkItem(
        run_id="bench",
        started_at="2026-11-28T10:00:00Z",
        source=SourceRef(id=source.id, secret=source.secret),
        data_extension=de.model_copy(update={"page_size": PAGE}),
    )
    return client, item


def _second_page(client: Any, item: Any) -> Any:
    """The item as the state machine hands it to the second page's task (links.next of page 1).

    Pages after the first are the steady state; the first page's cost is dominated by the fake
    building its server-side snapshot of 100,000 rows, which is not the task's work.
    """
    first = client.first_page(
        item.data_extension.key, page_size=PAGE, filter_expr=None, order_by="OccurredAt asc"
    )
    state = item.model_copy(deep=True)
    state.cursor.next, state.cursor.page = first.next_link, 1
    state.progress.rows_expected, state.progress.request_token = first.count, first.request_token
    return state


def _deps(client: Any, s3_latency: float, events_latency: float, workers: int = 4) -> Any:
    from sfmc_ingestion.landing import Lander
    from sfmc_ingestion.publishing import EventPublisher
    from sfmc_ingestion.tasks.page import PageDeps

    return PageDeps(
        client=client,
        lander=Lander("bench", s3=SlowS3(s3_latency)),
        publisher=EventPublisher("bus", events=SlowEvents(events_latency), workers=workers),
        store=None,  # type: ignore[arg-type]  # no previous watermark: never read
    )


def _one_page(client: Any, item: Any, deps: Any) -> float:
    from sfmc_ingestion.tasks.page import process_page

    started = time.perf_counter()
    done = process_page(item.model_copy(deep=True), deps)
    elapsed = time.perf_counter() - started
    assert done.progress.events_published == PAGE, done.progress
    return elapsed


def _naive_page(client: Any, item: Any, latency: float) -> float:
    """One PutEvents call per row, in sequence (what the batching replaces)."""
    from sfmc_ingestion.models import parse_time_zone
    from sfmc_ingestion.publishing import EventPublisher
    from sfmc_ingestion.rows import RowTransformer

    events = SlowEvents(latency)
    publisher = EventPublisher("bus", events=events, workers=1)
    started = time.perf_counter()
    page = client.next_page(item.cursor.next)
    transformer = RowTransformer(item.data_extension, item.source, parse_time_zone("-06:00"), "bench", "x")
    for raw in page.items:
        result = transformer.transform(raw)
        if result.event is not None:
            publisher.publish([publisher.entry(result.event)])
    elapsed = time.perf_counter() - started
    assert events.calls == PAGE
    return elapsed


def _peak(fn: Callable[[], Any]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


TRACED_PAGES = (1, 20, 40)  # tracemalloc slows a page ~7x: trace a sample, run the rest untraced


def _whole_data_extension(
    client: Any, item: Any, traced: tuple[int, ...] = TRACED_PAGES
) -> tuple[float, float, int]:
    """Every page of the large data extension through the task, as the Map iteration runs it.

    Returns (largest traced page peak, first page peak, pages); pages 1, 20 and 40 are traced.
    """
    from sfmc_ingestion.tasks.page import process_page

    deps = _deps(client, 0.0, 0.0)
    peaks: dict[int, float] = {}
    state = item.model_copy(deep=True)
    while not state.cursor.done:
        number = state.cursor.page + 1
        if number not in traced:
            state = process_page(state, deps)
            continue
        gc.collect()
        tracemalloc.start()
        try:
            state = process_page(state, deps)
            peaks[number] = tracemalloc.get_traced_memory()[1] / 2**20
        finally:
            tracemalloc.stop()
    assert state.progress.events_published == LARGE, state.progress
    return max(peaks.values(), default=0.0), peaks.get(1, 0.0), state.progress.pages


def _rss_growth(fn: Callable[[], Any]) -> float | None:
    """Peak resident memory added while `fn` runs (Linux: VmHWM reset through /proc/self/clear_refs)."""
    try:
        gc.collect()
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # resets the peak resident set size to the current one
        before = _status("VmRSS")
        fn()
        return (_status("VmHWM") - before) / 1024
    except OSError:
        return None


def _status(field: str) -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return float(line.split()[1])  # kB


def _naive_whole(client: Any, item: Any) -> None:
    """Read every page first, then process them all (the design the page loop avoids)."""
    from sfmc_ingestion.models import parse_time_zone
    from sfmc_ingestion.rows import RowTransformer

    page = client.first_page(
        item.data_extension.key, page_size=PAGE, filter_expr=None, order_by="OccurredAt asc"
    )
    rows = list(page.items)
    while page.next_link:
        page = client.next_page(page.next_link)
        rows.extend(page.items)
    transformer = RowTransformer(item.data_extension, item.source, parse_time_zone("-06:00"), "bench", "x")
    results = [transformer.transform(raw) for raw in rows]
    assert len(results) == LARGE


def run() -> list[Figure]:
    figures: list[Figure] = []
    fake = FakeProcess(LARGE)
    try:
        client, start = _setup(fake.base_url)
        item = _second_page(client, start)
        _one_page(client, item, _deps(client, 0.0, 0.0))  # warm-up: imports, connection
        cpu = min(_one_page(client, item, _deps(client, 0.0, 0.0)) for _ in range(3))
        aws_like = min(
            _one_page(client, item, _deps(client, PUT_OBJECT_LATENCY, PUT_EVENTS_LATENCY)) for _ in range(2)
        )
        naive = _naive_page(client, item, PUT_EVENTS_LATENCY)
        floor = min(_timed(lambda: client.next_page(item.cursor.next)) for _ in range(3))
        # CPU time of this process only (the fake SFMC serves from another one): what a Lambda pays.
        cpu_time = min(_cpu(lambda: _one_page(client, item, _deps(client, 0.0, 0.0))) for _ in range(5))
        floor_cpu = min(_cpu(lambda: client.next_page(item.cursor.next)) for _ in range(5))
        figures += [
            Figure(SECTION, "rows/s through one page task (AWS calls 30/15 ms)", PAGE / aws_like, PAGE / naive,
                   "one PutEvents per row, sequential", "rows/s", COMMAND, "higher is better"),
            Figure(SECTION, "rows/s through one page task (AWS calls free: CPU bound)", PAGE / cpu, PAGE / floor,
                   "fetch + parse the page only", "rows/s", COMMAND, "the task's own cost"),
            Figure(SECTION, "rows/s per CPU second, one page task (time.process_time, AWS calls free)",
                   PAGE / cpu_time, PAGE / floor_cpu, "fetch + parse the page only, CPU time", "rows/s",
                   COMMAND, ">= 50,000 rows/s", PAGE / cpu_time >= 50_000),
        ]  # fmt: skip
        page_peak = _peak(lambda: _one_page(client, item, _deps(client, 0.0, 0.0)))
        fetch_peak = _peak(lambda: client.next_page(item.cursor.next))
        # Resident memory first (nothing traced, arenas still small), then the traced pass.
        loop_rss = _rss_growth(lambda: _whole_data_extension(client, start, traced=()))
        naive_rss = _rss_growth(lambda: _naive_whole(client, start))
        largest, first, pages = _whole_data_extension(client, start)
        figures += [
            Figure(SECTION, f"peak memory, one {PAGE:,}-row page", page_peak, fetch_peak,
                   "the page's response parsed, nothing else", "MiB", COMMAND, "a few times the response"),
            Figure(SECTION, f"peak memory per page task over a {LARGE:,}-row data extension ({pages} pages; "
                   f"pages {', '.join(map(str, TRACED_PAGES))} traced)", largest, first,
                   "the first page of the same run", "MiB", COMMAND, "ratio ~1: does not grow with the size"),
        ]  # fmt: skip
        if loop_rss is not None and naive_rss is not None:
            figures.append(
                Figure(SECTION, f"resident memory added reading a {LARGE:,}-row data extension", loop_rss,
                       naive_rss, "read every page, then process", "MiB", COMMAND, "far below the baseline")
            )  # fmt: skip
    finally:
        fake.close()
    return figures


def notes() -> list[str]:
    return [
        "The page task's CPU per row (time.process_time, AWS calls free, a 2,500-row page of the Web_Activity"
        " data extension: 8 columns, a date and a number typed, 7 mapping rules): rows are typed and mapped "
        "by a function generated once per data extension and row shape (rows.py `_MapperSource`: each "
        "column's type and each rule decided when the text is made, values in local variables, names only "
        "as repr() literals); the cyclic garbage collector is paused for the page (its rows hold no cycles; "
        "it cost ~3.3 us a row on main, measured with gc.callbacks over 25 pages); each event's detail is "
        "serialised once by pydantic-core and its EventBridge size taken from those bytes; the landed JSON "
        "Lines are serialised once per row (the fields common to the page once per page) and gzip'd in one "
        "call at level 1; SFMC's `M/D/YYYY h:mm:ss AM` dates are converted once per local hour of a page "
        "(rows come ordered by date; in a zone at a whole-hour offset the minutes and seconds carry over to "
        "UTC); PutEvents requests go out on one task per worker; the look-back tracker takes a page's rows "
        "in one loop. Issue 18 (goal 7), this bench run from /work/main and from the branch alternated in "
        "the same minutes (load 5-14 on the 2 shared cores): main 39,949, 46,910 and 44,656 rows per CPU "
        "second, the generated mapper 60,077, 63,126 and 63,323 (x1.35-1.50); the landed objects and the "
        "published entries "
        "are byte-identical (tests/unit/sfmc_ingestion/test_page_output.py). Peak memory a page 8.9 -> 9.6 "
        "MiB: the page's HTTP response, which httpx holds in a reference cycle, is freed when the page ends "
        "rather than by a collection mid-page; still flat over 40 pages. What a row still costs "
        "(time.process_time per step, best of 25 passes, load ~8): typing and mapping ~5.6-6.5 us (the two "
        "SHA-256 digests ~0.9, the hour cache ~0.4), the page's fetch and parse ~2.0-2.4 us, the event's "
        "serialisation and entry ~2.0 us, the landed line ~2.4 us (pydantic-core ~1.0, gzip level 1 ~1.2), "
        "PutEvents batching ~1.3-1.5 us, the look-back tracker ~1.0 us.",
    ]


def _cpu(fn: Callable[[], Any]) -> float:
    started = time.process_time()
    fn()
    return time.process_time() - started


def _timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


if __name__ == "__main__":
    for figure in run():
        print(
            f"{figure.name}: {figure.ours:,.1f} {figure.unit} vs {figure.baseline:,.1f} ({figure.baseline_name})"
        )

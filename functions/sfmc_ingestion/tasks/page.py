"""Page task: one rowset page of one data extension -> typed rows -> S3 -> `Profile Updated` events.

Input and output are the same WorkItem (the Map iteration's state): the output's cursor says whether
another page follows. The task's only side effects are the landed object (deterministic key: a retry
overwrites it) and the published events (at least once), so the state machine may retry it freely;
the watermark is not touched here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import partial
from typing import Any

import httpx

from activation_core.collector import cycle_collection_paused
from activation_core.errors import PermanentError
from activation_core.locks import LeaseLock
from activation_core.oauth import TokenProvider
from activation_core.observability import logger
from sfmc_ingestion import client as sfmc
from sfmc_ingestion.deletions import KeyStore, KnownKey
from sfmc_ingestion.landing import Lander, encode, object_key
from sfmc_ingestion.models import Cursor, SfmcConnection, Watermark, WorkItem, parse_time_zone
from sfmc_ingestion.publishing import MAX_REQUEST_BYTES, EventPublisher
from sfmc_ingestion.rows import RowResult, RowTransformer, iso, parse_iso, to_filter_literal
from sfmc_ingestion.settings import IngestionSettings, ingestion_settings
from sfmc_ingestion.tasks.errors import translate_errors
from sfmc_ingestion.watermarks import DuplicateFilter, RecentRows, WatermarkStore

# A server whose links.next never ends must not page forever: a few pages beyond what `count` said.
PAGE_SLACK = 5
# Tokens live 20 minutes (apis.md 3.1); refresh one minute before, so one token serves ~19 minutes.
TOKEN_REFRESH_MARGIN = 60.0
# A 2,500-row page is a few MB that SFMC assembles server-side: allow more than the layer's default
# read timeout (tuned for small destination calls); connecting stays short.
ROWSET_TIMEOUT = httpx.Timeout(60.0, connect=3.0)


@dataclass
class PageDeps:
    client: sfmc.SfmcClient
    lander: Lander
    publisher: EventPublisher
    store: WatermarkStore
    keys: KeyStore | None = None  # deletion checks only


@dataclass
class _Split:
    """One page's rows sorted into what is landed, what is published and what is counted."""

    landed: list[dict[str, Any]]
    entries: list[dict[str, Any]]
    sizes: list[int]  # each entry's EventBridge size, from its one serialisation
    failed: int
    duplicate: int
    tracker: RecentRows


def process_page(item: WorkItem, deps: PageDeps, *, now: datetime | None = None) -> WorkItem:
    # Rows create no reference cycles; the page's RowTransformer is one (its mappers refer back to
    # it) and is freed by the first collection after the page: see activation_core.collector.
    with cycle_collection_paused():
        return _process_page(item, deps, now)


def _process_page(item: WorkItem, deps: PageDeps, now: datetime | None) -> WorkItem:
    de, source, progress = item.data_extension, item.source, item.progress
    zone = parse_time_zone(source.time_zone)
    page = _fetch(item, deps, zone)
    number = item.cursor.page + 1
    if item.mode == "keys":
        _record_keys(item, page, deps, zone)
        return _advance(item, page, number)
    split = _split(item, page, deps, zone)
    if split.landed:
        key = object_key(source.id, de.key, item.started_at, item.run_id, number)
        common = {
            "sourceId": source.id,
            "dataExtension": de.key,
            "runId": item.run_id,
            "page": number,
            "ingestedAt": iso((now or datetime.now(UTC)).replace(microsecond=0)),
        }
        deps.lander.put(key, encode(split.landed, common), len(split.landed))
        progress.objects += 1
    published = deps.publisher.publish(split.entries, split.sizes)

    progress.rows_read += len(page.items)
    progress.rows_landed += len(split.landed)
    progress.events_published += published
    progress.rows_failed += split.failed
    progress.rows_duplicate += split.duplicate
    progress.high = split.tracker.watermark() if de.incremental_column else Watermark()
    _advance(item, page, number)
    logger.info(
        "page done",
        extra={
            "data_extension": de.key,
            "page": number,
            "rows": len(page.items),
            "published": published,
            "failed": split.failed,
            "duplicates": split.duplicate,
            "done": item.cursor.done,
        },
    )
    return item


def _advance(item: WorkItem, page: sfmc.RowsetPage, number: int) -> WorkItem:
    """Count the page and point the cursor at the next one (in this execution or the next range's)."""
    item.progress.pages += 1
    done = not page.next_link or not page.items
    more = not done and number % max(1, item.source.pages_per_execution) != 0
    item.cursor = Cursor(next=None if done else page.next_link, page=number, done=done, more=more)
    return item


def _record_keys(item: WorkItem, page: sfmc.RowsetPage, deps: PageDeps, zone: tzinfo) -> None:
    """A deletion check's page: every primary key read, with the profile's identities, is recorded
    as seen by this check (deletions.py); nothing is landed or published."""
    if deps.keys is None:
        raise PermanentError("deletion_check_unavailable", "no key store for a deletion check")
    transformer = RowTransformer(item.data_extension, item.source, zone, item.run_id, item.started_at)
    seen: list[KnownKey] = []
    for raw in page.items:
        result = transformer.transform(raw)
        if any(e.startswith("missing_primary_key") for e in result.errors):
            continue  # no key: nothing to compare
        identities = result.event["profile"]["identities"] if result.ok and result.event else {}
        seen.append(KnownKey(result.pk_digest, identities))
    deps.keys.record(item.source.id, item.data_extension.key, item.run_id, seen)
    item.progress.rows_read += len(page.items)
    item.progress.keys_seen += len(seen)


def _fetch(item: WorkItem, deps: PageDeps, zone: tzinfo) -> sfmc.RowsetPage:
    """The next page: the first one by key (filter >= watermark, ordered), then `links.next`."""
    de, progress = item.data_extension, item.progress
    if item.cursor.next:
        page = deps.client.next_page(item.cursor.next)
    else:
        filter_expr = None
        fields: tuple[str, ...] = ()
        if item.mode == "keys":
            # Every row, in a stable order; only the columns the key and the mapping need.
            order_by = f"{de.primary_key[0]} asc"
            fields = tuple(dict.fromkeys([*de.primary_key, *(rule.column for rule in de.mapping)]))
        elif de.incremental_column:
            order_by = f"{de.incremental_column} asc"
            if item.watermark.value:
                # Look back: rows stamped a little before the watermark may have become visible since.
                since = parse_iso(item.watermark.value) - timedelta(seconds=de.look_back_seconds)
                literal = to_filter_literal(iso(since), zone, item.source.filter_date_format)
                filter_expr = sfmc.build_filter(de.incremental_column, literal)
        else:
            order_by = f"{de.primary_key[0]} asc"  # full load: a stable order for paging
        page = deps.client.first_page(
            de.key, page_size=de.page_size, filter_expr=filter_expr, order_by=order_by, fields=fields
        )
        progress.rows_expected = page.count
        progress.request_token = page.request_token
    if page.request_token and progress.request_token and page.request_token != progress.request_token:
        # Not one server-side result set: rows may have shifted between pages. Everything read is
        # processed, but the commit keeps the old watermark so the next run reads the range again.
        progress.consistent = False
    number = item.cursor.page + 1
    expected_pages = math.ceil(progress.rows_expected / de.page_size) if progress.rows_expected else 1
    if number > expected_pages + PAGE_SLACK:
        raise PermanentError(
            "sfmc_paging_runaway", f"page {number} of a result set announced as {expected_pages}"
        )
    return page


def _split(item: WorkItem, page: sfmc.RowsetPage, deps: PageDeps, zone: tzinfo) -> _Split:
    transformer = RowTransformer(item.data_extension, item.source, zone, item.run_id, item.started_at)
    duplicates = _duplicate_filter(item, deps.store)
    window = timedelta(seconds=item.data_extension.look_back_seconds)
    split = _Split([], [], [], 0, 0, RecentRows(item.progress.high, window))
    reasons = item.progress.failure_reasons
    # Bound once: a 2,500-row page looks each of them up 2,500 times otherwise.
    transform, prepare = transformer.transform, deps.publisher.prepare
    seen = None if duplicates.empty else duplicates.seen  # as a rule no previous run's rows to skip
    landed, entries, sizes = split.landed, split.entries, split.sizes
    marks: list[tuple[str | None, str]] = []  # every row's (incremental value, key digest), in order
    for raw in page.items:
        result = transform(raw)
        incremental, pk_digest, event = result.incremental, result.pk_digest, result.event
        marks.append((incremental, pk_digest))
        if seen is not None and seen(incremental, pk_digest):
            split.duplicate += 1  # processed by the previous run (it sits at the previous watermark)
            continue
        prepared = prepare(event) if event is not None and not result.errors else None
        if prepared is not None and prepared.size > MAX_REQUEST_BYTES:
            result.errors.append("event_too_large")
            prepared = None
        if prepared is None:
            split.failed += 1
            for reason in result.errors or ["unmapped"]:
                reasons[reason] = reasons.get(reason, 0) + 1
        else:
            entries.append(prepared.entry)
            sizes.append(prepared.size)
        landed.append(_landed_record(result))
    split.tracker.see_all(marks)  # the rows seen, duplicates included (they are in the window too)
    return split


def _duplicate_filter(item: WorkItem, store: WatermarkStore) -> DuplicateFilter:
    """The previous run's recent rows, loaded only when there are some (and still current)."""
    mark = item.watermark
    if not mark.value or mark.recent_count == 0 or not item.data_extension.incremental_column:
        return DuplicateFilter(Watermark())
    stored = store.read(item.source.id, item.data_extension.key)
    if stored.version != mark.version:
        # Another run committed since the plan: no de-duplication (duplicates are safe, loss is not).
        return DuplicateFilter(Watermark())
    return DuplicateFilter(stored)


def _landed_record(result: RowResult) -> dict[str, Any]:
    """A row's landed line after the fields common to the page (`process_page`: source, run, page)."""
    record: dict[str, Any] = {
        "status": "published" if not result.errors else "failed",
        "keys": result.keys,
        "row": result.row,
    }
    if result.event is not None and not result.errors:
        record["eventId"] = result.event["eventId"]
    else:
        record["errors"] = result.errors
        record["raw"] = result.raw  # as SFMC sent it, to see why it failed
    return record


# --- Lambda wiring -------------------------------------------------------------------------------------

_clients: dict[str, sfmc.SfmcClient] = {}  # per connection secret, kept warm across invocations
_http: list[httpx.Client] = []


def _rowset_http() -> httpx.Client:
    if not _http:
        # Never follow redirects: one could carry the bearer token to another host.
        _http.append(
            httpx.Client(
                timeout=ROWSET_TIMEOUT, follow_redirects=False, headers={"User-Agent": "activation-core"}
            )
        )
    return _http[0]


def build_client(secret: str, settings: IngestionSettings) -> sfmc.SfmcClient:
    cached = _clients.get(secret)
    if cached is not None:
        return cached
    tokens = TokenProvider(
        secret,
        partial(sfmc.fetch_token, allow_loopback=settings.allow_loopback_urls),
        lock=LeaseLock(settings.state_table_name),
        refresh_margin=TOKEN_REFRESH_MARGIN,
    )
    connection = SfmcConnection.model_validate(tokens.connection())
    client = sfmc.SfmcClient(
        connection, tokens, allow_loopback=settings.allow_loopback_urls, client=_rowset_http()
    )
    _clients[secret] = client
    return client


def reset_clients() -> None:
    """Forget warm clients (tests: a new container)."""
    _clients.clear()


def _where(event: dict[str, Any], *args: Any, **kwargs: Any) -> str:
    de = event.get("dataExtension", {}) if isinstance(event, dict) else {}
    page = (event.get("cursor") or {}).get("page", 0) + 1 if isinstance(event, dict) else "?"
    return f"data extension '{de.get('key', '?')}' page {page}"


@translate_errors(_where)
def run_page(event: dict[str, Any], deps: PageDeps, now: datetime | None = None) -> dict[str, Any]:
    """The task: a WorkItem in, the WorkItem after one more page out; typed errors for the state machine."""
    return process_page(WorkItem.model_validate(event), deps, now=now).dump()


def default_deps(event: dict[str, Any], settings: IngestionSettings) -> PageDeps:
    item = WorkItem.model_validate(event)
    return PageDeps(
        client=build_client(item.source.secret, settings),
        lander=Lander(settings.landing_bucket_name),
        publisher=EventPublisher(settings.event_bus_name, workers=settings.publish_workers),
        store=WatermarkStore(settings.state_table_name),
        keys=KeyStore(settings.state_table_name, retention_days=settings.deletion_key_retention_days),
    )


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = ingestion_settings()
    deps = translate_errors(_where)(default_deps)(event, settings)
    return run_page(event, deps)

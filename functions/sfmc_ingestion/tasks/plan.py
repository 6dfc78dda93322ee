"""Plan task: which data extensions this run reads, each with its watermark (the Map's items).

Input (from EventBridge Scheduler or the CLI): `{"trigger": "schedule" | "manual", "sources"?: [ids],
"dataExtensions"?: [keys], "force"?: bool, "checkDeletions"?: bool}` plus `runId` (the execution name) added by the state
machine. A scheduled run takes the data extensions that are due by their schedule; a manual run
takes the ones named (or all) whatever their schedule. A data extension with a `deletionCheck` also gets
a second item (`mode: keys`) when its check is due (or `checkDeletions` is asked): its primary keys
are compared with the previous check's, and deleted rows become exits (deletions.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from activation_core.observability import logger
from sfmc_ingestion.config import SourceConfigError, load_ingestion_config
from sfmc_ingestion.deletions import KeyStore
from sfmc_ingestion.models import (
    DataExtensionConfig,
    IngestionConfig,
    Progress,
    Schedule,
    SourceRef,
    Watermark,
    WorkItem,
)
from sfmc_ingestion.rows import iso, parse_iso
from sfmc_ingestion.settings import ingestion_settings
from sfmc_ingestion.tasks.errors import translate_errors
from sfmc_ingestion.watermarks import WatermarkStore

# The scheduler ticks hourly; a data extension due "every hour" must not miss a tick because its last
# run finished a few seconds after the tick.
DUE_SLACK = timedelta(minutes=10)


def is_due(schedule: Schedule, last_success_at: str | None, now: datetime) -> bool:
    if last_success_at is None:
        return True
    return parse_iso(last_success_at) + schedule.period() - DUE_SLACK <= now


@translate_errors(lambda event, *args, **kwargs: "plan")
def plan(
    event: dict[str, Any],
    *,
    config: IngestionConfig,
    store: WatermarkStore,
    now: datetime,
    run_id: str,
    keys: KeyStore | None = None,
) -> dict[str, Any]:
    request = event.get("input", event)
    trigger = str(request.get("trigger") or "schedule")
    check_deletions = bool(request.get("checkDeletions"))
    force = bool(request.get("force")) or trigger == "manual"
    wanted_sources = set(request.get("sources") or [])
    wanted_keys = {str(k).lower() for k in request.get("dataExtensions") or []}
    started_at = iso(now)  # sub-second: run records sort by it
    items: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    found: set[str] = set()
    concurrency: list[int] = []
    unknown_sources = wanted_sources - {s.id for s in config.sources}
    if unknown_sources:
        raise SourceConfigError(
            sorted(unknown_sources)[0], "sources", "no such source in the ingestion config"
        )
    for source in config.sources:
        if wanted_sources and source.id not in wanted_sources:
            continue
        if not source.enabled:
            skipped.extend(_skip(source.id, de.key, "source_disabled") for de in source.data_extensions)
            continue
        ref = SourceRef(
            id=source.id,
            secret=source.secret,
            time_zone=source.time_zone,
            filter_date_format=source.filter_date_format,
            pages_per_execution=source.pages_per_execution,
        )
        for de in source.data_extensions:
            if wanted_keys and de.key.lower() not in wanted_keys:
                continue
            found.add(de.key.lower())
            if not de.enabled:
                skipped.append(_skip(source.id, de.key, "disabled"))
                continue
            watermark = store.read(source.id, de.key)
            if not force and not is_due(de.schedule, watermark.last_success_at, now):
                skipped.append(_skip(source.id, de.key, "not_due"))
            else:
                items.append(_item(run_id, started_at, ref, de, watermark))
            if de.deletion_check is not None and keys is not None:
                checked_at = keys.checked_at(source.id, de.key)
                if check_deletions or is_due(de.deletion_check, checked_at, now):
                    items.append(_item(run_id, started_at, ref, de, Watermark(), mode="keys"))
            concurrency.append(source.max_concurrency)
    missing = wanted_keys - found
    if missing:
        raise SourceConfigError(
            "<ingestion config>", "dataExtensions", f"unknown data extension '{sorted(missing)[0]}'"
        )
    logger.info("run planned", extra={"run_id": run_id, "items": len(items), "skipped": len(skipped)})
    return {
        "runId": run_id,
        "startedAt": started_at,
        "trigger": trigger,
        "maxConcurrency": min(concurrency, default=1),
        "items": items,
        "skipped": skipped,
    }


def _skip(source_id: str, key: str, reason: str) -> dict[str, str]:
    return {"sourceId": source_id, "dataExtension": key, "reason": reason}


def _item(
    run_id: str,
    started_at: str,
    source: SourceRef,
    de: DataExtensionConfig,
    watermark: Watermark,
    *,
    mode: Literal["rows", "keys"] = "rows",
) -> dict[str, Any]:
    # Recent rows stay in the state table (the page task loads them when it needs them): the Map's
    # input must stay small whatever the number of data extensions.
    travelling = watermark.model_copy(update={"recent": {}})
    item = WorkItem(
        run_id=run_id,
        started_at=started_at,
        source=source,
        data_extension=de,
        watermark=travelling,
        progress=Progress(high=Watermark(value=watermark.value) if de.incremental_column else Watermark()),
        mode=mode,
    )
    return item.dump()


@logger.inject_lambda_context(clear_state=True)
@translate_errors(lambda event, *args, **kwargs: "plan")
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = ingestion_settings()
    # Read fresh on every run (a few per hour): a pushed config applies to the very next run.
    config = load_ingestion_config(settings.ingestion_config_parameter_name, 0, force=True)
    run_id = str(event.get("runId") or getattr(context, "aws_request_id", "") or "run")
    return plan(
        event,
        config=config,
        store=WatermarkStore(settings.state_table_name),
        now=datetime.now(UTC),
        run_id=run_id,
        keys=KeyStore(settings.state_table_name),
    )

"""Commit task: the end of one data extension's Map iteration.

- Every page succeeded: the watermark moves to the highest incremental value read (conditionally on
  the version the run started from), and the data extension's result is returned.
- A page failed (the state machine caught it and put it under `error`): the watermark stays where it
  was, so the next run reads the same rows again; the result says why, in the operator's words.

The result is small (the Map collects one per data extension for the summary).
"""

from __future__ import annotations

import json
from typing import Any

from activation_core.observability import logger
from sfmc_ingestion.models import Watermark, WorkItem
from sfmc_ingestion.settings import ingestion_settings
from sfmc_ingestion.tasks.errors import translate_errors
from sfmc_ingestion.watermarks import WatermarkStore

_CAUSE_LIMIT = 600


def describe_error(error: Any) -> tuple[str, str]:
    """(error name, cause) from a Step Functions Catch: `{"Error", "Cause"}` where Cause is the Lambda
    error payload as JSON text (its errorMessage is our task message) or plain text."""
    if not isinstance(error, dict):
        return "Unknown", ""
    name = str(error.get("Error") or "Unknown")
    cause = error.get("Cause") or ""
    try:
        payload = json.loads(cause) if isinstance(cause, str) and cause.startswith("{") else None
    except ValueError:
        payload = None
    if isinstance(payload, dict) and payload.get("errorMessage"):
        cause = str(payload["errorMessage"])
    elif isinstance(payload, dict) and ("Status" in payload or "status" in payload):
        # A pages execution that ended badly (timed out, aborted): its DescribeExecution output.
        status = payload.get("Status") or payload.get("status")
        inner = payload.get("Error") or payload.get("error")
        name = f"PagesExecution{str(status).title().replace('_', '')}"
        cause = f"{inner}: {payload.get('Cause') or payload.get('cause') or ''}" if inner else str(status)
    return name, str(cause)[:_CAUSE_LIMIT]


def result_of(item: WorkItem, status: str, **extra: Any) -> dict[str, Any]:
    progress = item.progress
    return {
        "sourceId": item.source.id,
        "dataExtension": item.data_extension.key,
        "status": status,
        "rowsExpected": progress.rows_expected,
        "rowsRead": progress.rows_read,
        "rowsLanded": progress.rows_landed,
        "eventsPublished": progress.events_published,
        "rowsFailed": progress.rows_failed,
        "rowsDuplicate": progress.rows_duplicate,
        "pages": progress.pages,
        "objects": progress.objects,
        "failureReasons": dict(progress.failure_reasons),
        "watermarkBefore": item.watermark.value,
        **extra,
    }


def _where(event: dict[str, Any], *args: Any, **kwargs: Any) -> str:
    return f"commit of '{(event.get('dataExtension') or {}).get('key', '?')}'"


@translate_errors(_where)
def commit(event: dict[str, Any], *, store: WatermarkStore) -> dict[str, Any]:
    item = WorkItem.model_validate(event)
    if event.get("error") is not None:
        name, cause = describe_error(event["error"])
        logger.warning(
            "data extension failed", extra={"data_extension": item.data_extension.key, "error": name}
        )
        return result_of(item, "failed", watermarkAfter=item.watermark.value, error=name, cause=cause)

    de = item.data_extension
    held = bool(de.incremental_column) and not item.progress.consistent
    if not de.incremental_column:
        high = Watermark()  # a full load has no watermark; only lastSuccessAt moves (the schedule)
    elif held:
        # Read the same range again next run, remembering nothing of it: every row is published again.
        high = Watermark(value=item.watermark.value)
    else:
        high = item.progress.high
    result = store.commit(
        item.source.id,
        de.key,
        started_from=item.watermark,
        high=high,
        run_id=item.run_id,
        started_at=item.started_at,
    )
    logger.info(
        "watermark committed",
        extra={
            "data_extension": de.key,
            "before": item.watermark.value,
            "after": result.after.value,
            "held": held,
        },
    )
    return result_of(
        item,
        "succeeded",
        watermarkAfter=result.after.value,
        watermarkHeld=held,
        watermarkMerged=result.merged,
    )


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return commit(event, store=WatermarkStore(ingestion_settings().state_table_name))

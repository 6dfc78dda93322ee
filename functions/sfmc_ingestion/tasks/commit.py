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

from activation_core.errors import PermanentError
from activation_core.models.events import PROFILE_MEMBERSHIP_CHANGED
from activation_core.observability import logger
from sfmc_ingestion.deletions import KeyStore, KnownKey
from sfmc_ingestion.models import Watermark, WorkItem
from sfmc_ingestion.publishing import EventPublisher
from sfmc_ingestion.rows import digest
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
        "mode": item.mode,
        "rowsDeleted": 0,
        "exitsPublished": 0,
        **extra,
    }


def _where(event: dict[str, Any], *args: Any, **kwargs: Any) -> str:
    return f"commit of '{(event.get('dataExtension') or {}).get('key', '?')}'"


@translate_errors(_where)
def commit(
    event: dict[str, Any],
    *,
    store: WatermarkStore,
    keys: KeyStore | None = None,
    publisher: EventPublisher | None = None,
) -> dict[str, Any]:
    item = WorkItem.model_validate(event)
    if event.get("error") is not None:
        name, cause = describe_error(event["error"])
        logger.warning(
            "data extension failed", extra={"data_extension": item.data_extension.key, "error": name}
        )
        return result_of(item, "failed", watermarkAfter=item.watermark.value, error=name, cause=cause)
    if item.mode == "keys":
        if keys is None or publisher is None:
            raise PermanentError(
                "deletion_check_unavailable", "no key store or publisher for a deletion check"
            )
        return finish_deletion_check(item, keys, publisher)

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


def exit_detail(item: WorkItem, key: KnownKey) -> dict[str, Any]:
    """A deleted row's profile leaves the data extension's audiences (the event contract's `exited`)."""
    at = item.started_at
    source, de_key = item.source.id, item.data_extension.key
    return {
        "schemaVersion": "1",
        "eventId": "sfmc-exit-" + digest([source, de_key, key.pk_digest, item.run_id]),
        "occurredAt": at,
        "profile": {"identities": key.identities, "attributes": {}, "consents": {}},
        "audiences": [
            {**a.model_dump(), "status": "exited", "updatedAt": at} for a in item.data_extension.audiences
        ],
        "origin": {"system": "sfmc", "sourceId": source, "dataExtension": de_key, "runId": item.run_id},
    }


def finish_deletion_check(item: WorkItem, keys: KeyStore, publisher: EventPublisher) -> dict[str, Any]:
    """Every key was read: the ones the check did not see were deleted -> exits, then forgotten.

    Only a complete, consistent read may conclude that a key is gone: if the pages came from more than
    one result set, or fewer rows were read than SFMC counted, nothing is concluded (the next check
    reads again) rather than publish a false exit.
    """
    source, de, progress = item.source.id, item.data_extension, item.progress
    complete = progress.consistent and (
        progress.rows_expected is None or progress.rows_read >= progress.rows_expected
    )
    if not complete:
        logger.warning("deletion check inconclusive", extra={"data_extension": de.key})
        return result_of(item, "succeeded", watermarkAfter=item.watermark.value, deletionCheckHeld=True)
    deleted = published = 0
    for page in keys.unseen(source, de.key, item.run_id):
        exits = [k for k in page if k.identities and de.audiences]  # no identity or audience: nothing to exit
        entries = [
            publisher.entry(exit_detail(item, k), detail_type=PROFILE_MEMBERSHIP_CHANGED) for k in exits
        ]
        published += publisher.publish(entries)
        keys.forget(source, de.key, [k.pk_digest for k in page])
        deleted += len(page)
    keys.mark_checked(source, de.key, item.started_at, item.run_id)
    logger.info(
        "deletion check done",
        extra={"data_extension": de.key, "keys": progress.keys_seen, "deleted": deleted, "exits": published},
    )
    return result_of(
        item, "succeeded", watermarkAfter=item.watermark.value, rowsDeleted=deleted, exitsPublished=published
    )


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = ingestion_settings()
    return commit(
        event,
        store=WatermarkStore(settings.state_table_name),
        keys=KeyStore(settings.state_table_name),
        publisher=EventPublisher(settings.event_bus_name, workers=settings.publish_workers),
    )

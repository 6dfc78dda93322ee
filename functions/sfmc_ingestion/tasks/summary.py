"""Summary task (SFMC-05): the run's record, metrics and summary event, per data extension.

Records rows read, landed, published and failed, with the watermark before and after, in the state
table (read them with `python -m sfmc_ingestion status`), emits them as CloudWatch metrics (EMF) and
publishes an `SFMC Ingestion Run Completed` event on the bus. Returns the run's status: FAILED when
any data extension (or the plan) failed, which the state machine turns into a failed execution
(alarm on ExecutionsFailed).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from botocore.exceptions import BotoCoreError, ClientError

from activation_core import aws
from activation_core.observability import logger, metrics
from sfmc_ingestion.rows import EVENT_SOURCE, iso
from sfmc_ingestion.settings import ingestion_settings
from sfmc_ingestion.tasks.commit import describe_error
from sfmc_ingestion.tasks.errors import translate_errors
from sfmc_ingestion.watermarks import WatermarkStore

SUMMARY_DETAIL_TYPE = "SFMC Ingestion Run Completed"
METRICS = {
    "rowsRead": "RowsRead",
    "rowsLanded": "RowsLanded",
    "eventsPublished": "EventsPublished",
    "rowsFailed": "RowsFailed",
    "rowsDuplicate": "RowsDuplicate",
    "rowsDeleted": "RowsDeleted",
    "exitsPublished": "ExitsPublished",
}


def summarize(event: dict[str, Any], *, now: datetime) -> dict[str, Any]:
    plan = event.get("plan") or {}
    request: dict[str, Any] = event["input"] if isinstance(event.get("input"), dict) else event
    results = [r for r in plan.get("items", []) if isinstance(r, dict) and "status" in r]
    record: dict[str, Any] = {
        "runId": plan.get("runId") or event.get("runId") or "unknown",
        "startedAt": plan.get("startedAt") or iso(now.replace(microsecond=0)),
        "finishedAt": iso(now.replace(microsecond=0)),
        "trigger": plan.get("trigger") or request.get("trigger") or "schedule",
        "dataExtensions": results,
        "skipped": plan.get("skipped", []),
        "totals": {key: sum(int(r.get(key) or 0) for r in results) for key in METRICS},
    }
    failed = [r for r in results if r.get("status") != "succeeded"]
    if event.get("planError") is not None:
        name, cause = describe_error(event["planError"])
        record["error"], record["cause"] = name, cause
        failed.append({"dataExtension": "<plan>", "error": name})
    record["failed"] = len(failed)
    record["status"] = "FAILED" if failed else "SUCCEEDED"
    return record


def emit_metrics(record: dict[str, Any]) -> None:
    """One EMF document per data extension (dimension DataExtension) and the run's totals."""
    for result in record["dataExtensions"]:
        for key, name in METRICS.items():
            with single_metric(
                name=name, unit=MetricUnit.Count, value=int(result.get(key) or 0), namespace=metrics.namespace
            ) as metric:
                metric.add_dimension("Source", str(result.get("sourceId", "?")))
                metric.add_dimension("DataExtension", str(result.get("dataExtension", "?")))
        with single_metric(
            name="DataExtensionFailed",
            unit=MetricUnit.Count,
            value=0 if result.get("status") == "succeeded" else 1,
            namespace=metrics.namespace,
        ) as metric:
            metric.add_dimension("Source", str(result.get("sourceId", "?")))
            metric.add_dimension("DataExtension", str(result.get("dataExtension", "?")))
    metrics.add_metric(name="IngestionRunFailed", unit=MetricUnit.Count, value=1 if record["failed"] else 0)


def publish_summary(record: dict[str, Any], bus_name: str, events: Any | None = None) -> bool:
    """Best effort: the run record is the source of truth; a lost summary event must not fail the run."""
    client = events or aws.client("events")
    detail = json.dumps(record, separators=(",", ":"), default=str)
    try:
        response = client.put_events(
            Entries=[
                {
                    "Source": EVENT_SOURCE,
                    "DetailType": SUMMARY_DETAIL_TYPE,
                    "Detail": detail,
                    "EventBusName": bus_name,
                }
            ]
        )
    except (BotoCoreError, ClientError) as exc:
        logger.warning("summary event not published", extra={"error": type(exc).__name__})
        return False
    return not response.get("FailedEntryCount")


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
@translate_errors(lambda event, *args, **kwargs: "summary")
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = ingestion_settings()
    metrics.add_dimension("Service", "sfmc-ingestion")
    record = summarize(event, now=datetime.now(UTC))
    WatermarkStore(settings.state_table_name).put_run(record)
    emit_metrics(record)
    published = publish_summary(record, settings.event_bus_name)
    logger.info(
        "run summary",
        extra={"run_id": record["runId"], "status": record["status"], "failed": record["failed"]},
    )
    return {
        "runId": record["runId"],
        "status": record["status"],
        "failed": record["failed"],
        "totals": record["totals"],
        "summaryEventPublished": published,
    }

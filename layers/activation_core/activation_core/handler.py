"""Builds the thin Lambda entry point of a destination: parse, run the pipeline, report."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from activation_core import deadline
from activation_core.batch import BatchContext, reject_all, run_batch
from activation_core.config_store import load_instances
from activation_core.guards import OrderGuard
from activation_core.observability import capture_lambda_handler, logger, metrics
from activation_core.pipeline import Destination, Guards, Pipeline, RecordResult
from activation_core.settings import function_settings
from activation_core.waiting import WaitingChanges

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


def destination_handler(destination: Destination) -> LambdaHandler:
    """The Lambda handler of a destination; the pipeline is built on the first invocation and kept warm."""
    pipeline: Pipeline | None = None

    def decide(records: Sequence[Mapping[str, Any]]) -> dict[str, RecordResult]:
        nonlocal pipeline
        if pipeline is None:
            settings = function_settings()
            pipeline = Pipeline(
                destination,
                settings,
                lambda: load_instances(settings.config_parameter_name, settings.config_cache_seconds),
                Guards(
                    order=OrderGuard(
                        settings.state_table_name,
                        settings.destination_type,
                        retention_days=settings.order_guard_retention_days,
                    )
                ),
                WaitingChanges(settings.state_table_name, settings.destination_type),
            )
        return pipeline.process(records)

    return _entry(decide)


def not_implemented_handler() -> LambdaHandler:
    """For a destination whose connector is not built yet: each record is rejected to the DLQ, honestly."""
    decide = reject_all("not_implemented", "this destination is not implemented yet; replay the DLQ later")

    return _entry(decide)


def _entry(decide: Callable[[Sequence[Mapping[str, Any]]], dict[str, RecordResult]]) -> LambdaHandler:
    @logger.inject_lambda_context(clear_state=True)
    @capture_lambda_handler
    @metrics.log_metrics
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        settings = function_settings()
        metrics.add_dimension("Destination", settings.destination_type)
        batch = BatchContext(
            settings.destination_type,
            settings.dead_letter_queue_url,
            settings.state_table_name,
            settings.max_receive_count,
        )
        deadline.begin(context)
        try:
            return run_batch(event, context, decide, batch)
        finally:
            deadline.end()

    return cast(LambdaHandler, lambda_handler)  # Powertools' decorators are typed loosely

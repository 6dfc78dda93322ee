"""Erasure requests for what the SFMC source itself holds of a person: its deletion-check keys.

A `Profile Erasure Requested` event reaches this function through its own queue (template.yaml,
SfmcErasureQueue). The person's deletion-check keys (deletions.py: the identities kept so that a
deleted row can become an exit) are forgotten in every data extension that may hold some: those of
the ingestion config with a `deletionCheck`, and any whose check completed before (a data extension
since removed from the config). The answer is recorded in the erasure ledger under the stack's own
type (`stack` / `sfmc-deletion-check-keys`: `erased` with a count, or `not_found`), listed by
`activation erasure status`.

SFMC is the source, not a destination: while the person's row stays in the data extension, the next
run publishes it again and the next check records its key again. Erase it in SFMC first
(docs/operations.md, "Erasure requests").

A request that cannot be carried out (the state table or the config unavailable) is retried by SQS;
its last receive records `failed` with the error type, and the message moves to the DLQ (alarmed).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from activation_core import aws, erasure
from activation_core.models.events import PROFILE_ERASURE_REQUESTED, ErasureRequestDetail, EventEnvelope
from activation_core.observability import logger
from sfmc_ingestion.config import load_ingestion_config
from sfmc_ingestion.deletions import KeyStore
from sfmc_ingestion.settings import ingestion_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

STORE = "sfmc-deletion-check-keys"  # the ledger's instance column for this store


class ErasureNotCarriedOut(Exception):
    """A request this invocation could not carry out; names the error type only (never a value)."""


@dataclass(frozen=True)
class ErasureDeps:
    keys: KeyStore
    # (source, data extension) of the config's data extensions with a deletion check.
    configured: Callable[[], set[tuple[str, str]]]
    dynamodb: Any
    state_table: str
    max_receive_count: int = 0


def erase(detail: ErasureRequestDetail, deps: ErasureDeps) -> erasure.ErasureOutcome:
    """Forget the person's deletion-check keys everywhere; the ledger's answer."""
    digests = erasure.identity_digests(detail.profile.identities)
    places = deps.configured() | deps.keys.data_extensions()
    erased = sum(deps.keys.erase(source, de_key, digests) for source, de_key in sorted(places))
    logger.info("deletion-check keys erased", extra={"keys": erased, "data_extensions": len(places)})
    if erased:
        return _outcome(detail.request_id, "erased", "erased", f"{erased} deletion-check keys forgotten")
    return _outcome(
        detail.request_id, "not_found", "erasure_not_found", "no deletion-check key of the person"
    )


def handle(record: SQSRecord, deps: ErasureDeps) -> None:
    envelope = EventEnvelope.model_validate_json(record.body)
    if envelope.detail_type != PROFILE_ERASURE_REQUESTED:
        return  # the rule routes only erasure requests; anything else is not ours to act on
    detail = ErasureRequestDetail.model_validate(envelope.detail)
    try:
        outcome = erase(detail, deps)
    except Exception as exc:
        if (
            deps.max_receive_count
            and int(record.attributes.approximate_receive_count) >= deps.max_receive_count
        ):
            failed = _outcome(detail.request_id, "failed", "retries_exhausted", type(exc).__name__)
            erasure.record(deps.dynamodb, deps.state_table, [failed])
        raise
    erasure.record(deps.dynamodb, deps.state_table, [outcome])


def _outcome(request_id: str, outcome: str, reason: str, detail: str) -> erasure.ErasureOutcome:
    return erasure.ErasureOutcome(request_id, erasure.STACK, STORE, outcome, reason, detail, time.time())


def configured_data_extensions(parameter_name: str, max_age: int) -> set[tuple[str, str]]:
    config = load_ingestion_config(parameter_name, max_age)
    return {
        (source.id, de.key)
        for source in config.sources
        for de in source.data_extensions
        if de.deletion_check is not None
    }


def default_deps() -> ErasureDeps:
    settings = ingestion_settings()
    return ErasureDeps(
        keys=KeyStore(settings.state_table_name),
        configured=lambda: configured_data_extensions(
            settings.ingestion_config_parameter_name, settings.config_cache_seconds
        ),
        dynamodb=aws.client("dynamodb"),
        state_table=settings.state_table_name,
        max_receive_count=settings.max_receive_count,
    )


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # Imported here, not at cold start: Powertools' batch utility builds every parser model on import
    # (tests/unit/test_regression_guard.py); erasure requests are rare.
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    deps = default_deps()

    def record_handler(record: SQSRecord) -> None:
        try:
            handle(record, deps)
        except Exception as exc:
            # A validation error's text would carry the request's identities: only the type is kept.
            logger.error("erasure request not carried out", extra={"error_type": type(exc).__name__})
            raise ErasureNotCarriedOut(type(exc).__name__) from None

    return dict(
        process_partial_response(
            event=event,
            record_handler=record_handler,
            processor=BatchProcessor(event_type=EventType.SQS),
            context=context,
        )
    )

"""Erasure requests for what the SFMC source itself holds of a person: its deletion-check keys.

A `Profile Erasure Requested` event reaches this function through its own queue (template.yaml,
SfmcErasureQueue). The person's deletion-check keys (deletions.py: the identities kept so that a
deleted row can become an exit) are forgotten in every data extension that may hold some: those of
the ingestion config with a `deletionCheck`, and any whose check completed before (a data extension
since removed from the config). The answer is recorded in the erasure ledger under the stack's own
type (`stack` / `sfmc-deletion-check-keys`: `erased` with a count, or `not_found`), listed by
`activation erasure status`; the queue handling and the answer are the layer's (activation_core.erasure).

SFMC is the source, not a destination: while the person's row stays in the data extension, the next
run publishes it again and the next check records its key again. Erase it in SFMC first
(docs/operations.md, "Erasure requests").

A request that cannot be carried out (the state table or the config unavailable) is retried by SQS;
its last receive records `failed` with the error type, and the message moves to the DLQ (alarmed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from activation_core import aws, erasure
from activation_core.models.events import ErasureRequestDetail
from activation_core.observability import logger
from sfmc_ingestion.config import load_ingestion_config
from sfmc_ingestion.deletions import KeyStore
from sfmc_ingestion.settings import ingestion_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

STORE = "sfmc-deletion-check-keys"  # the ledger's instance column for this store


@dataclass(frozen=True)
class ErasureDeps:
    keys: KeyStore
    # (source, data extension) of the config's data extensions with a deletion check.
    configured: Callable[[], set[tuple[str, str]]]
    dynamodb: Any
    state_table: str
    max_receive_count: int = 0


def erase(detail: ErasureRequestDetail, deps: ErasureDeps) -> int:
    """Forget the person's deletion-check keys everywhere; how many were forgotten."""
    digests = erasure.identity_digests(detail.profile.identities)
    places = deps.configured() | deps.keys.data_extensions()
    erased = sum(deps.keys.erase(source, de_key, digests) for source, de_key in sorted(places))
    logger.info("deletion-check keys erased", extra={"keys": erased, "data_extensions": len(places)})
    return erased


def eraser(deps: ErasureDeps) -> erasure.StoreEraser:
    return erasure.StoreEraser(
        store=STORE,
        items="deletion-check keys",
        erase=lambda detail: erase(detail, deps),
        dynamodb=deps.dynamodb,
        state_table=deps.state_table,
        max_receive_count=deps.max_receive_count,
    )


def handle(record: SQSRecord, deps: ErasureDeps) -> None:
    erasure.carry_out(record, eraser(deps))


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
    return erasure.handle_batch(event, context, eraser(default_deps()))

"""The erasure ledger: what each destination instance did with a data subject's erasure request.

One item per (request, destination type, instance) in the state table: `pk=erasure#<type>#<request id>`
(the type in the key lets each function write only its own, `dynamodb:LeadingKeys`), `sk=<instance>`,
with the outcome, its reason and detail, and when it was recorded. The first final outcome stays (a
redelivered request then finds nothing to delete, which must not overwrite "erased"); `failed` is not
final (the request sits in a DLQ): the answer of its replay replaces it. Items hold no
personal value (the request id, names and outcome codes) and expire after `RETENTION_DAYS`, the time
they are kept as proof that the request was carried out.

What the stack itself holds of a person (not a vendor) is answered under the type `STACK`, one line
per store (e.g. a source's deletion-check keys). A store that must find a person's items again keeps,
with each, the `identity_digests` of the identities it holds: an erasure request's digests match them
without the request's values being compared, logged or stored.

Every such store answers the same way (`StoreEraser`, `carry_out`, `handle_batch`): a function of its
own behind its own queue, which records `erased` with a count or `not_found`, and `failed` with the
error type on the request's last receive (the message then moves to the DLQ, alarmed).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from activation_core.guards import normalise_identity
from activation_core.models.events import PROFILE_ERASURE_REQUESTED, ErasureRequestDetail, EventEnvelope
from activation_core.observability import logger
from activation_core.outcomes import Kind, Outcome

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

RETENTION_DAYS = 3 * 365
_PREFIX = "erasure#"
# The ledger type of the stack's own stores (their lines sit beside the destinations').
STACK = "stack"


def identity_digests(identities: Mapping[str, object]) -> set[str]:
    """One non-reversible digest per identity (namespace and normalised value): two sets of
    identities name the same person when their digests intersect."""
    return {
        hashlib.sha256(f"{name}\x1f{normalise_identity(name, value)}".encode()).hexdigest()[:32]
        for name, value in identities.items()
        if value is not None and str(value).strip()
    }


@dataclass(frozen=True, slots=True)
class ErasureOutcome:
    """One destination instance's answer to one erasure request."""

    request_id: str
    destination_type: str
    instance_id: str
    outcome: str  # erased | not_found | unsupported | failed
    reason: str
    detail: str
    recorded_at: float


def classify(outcome: Outcome) -> str:
    """The operator's word for an outcome: erased, not_found, unsupported or failed."""
    if outcome.kind is Kind.DELIVERED:
        return "erased"
    if outcome.reason == "erasure_unsupported":
        return "unsupported"
    if outcome.kind is Kind.SKIPPED:
        return "not_found"
    return "failed"


def partition(destination_type: str, request_id: str) -> str:
    return f"{_PREFIX}{destination_type}#{request_id}"


def record(dynamodb: Any, table: str, entries: Iterable[ErasureOutcome], *, now: float | None = None) -> None:
    """Keep the first final outcome of each (request, instance); a `failed` one until the next answer."""
    now = time.time() if now is None else now
    for entry in entries:
        try:
            dynamodb.put_item(
                TableName=table,
                Item={
                    "pk": {"S": partition(entry.destination_type, entry.request_id)},
                    "sk": {"S": entry.instance_id},
                    "outcome": {"S": entry.outcome},
                    "reason": {"S": entry.reason},
                    "detail": {"S": entry.detail},
                    "recordedAt": {"N": str(int(entry.recorded_at))},
                    "ttl": {"N": str(int(now + RETENTION_DAYS * 86400))},
                },
                # A `failed` answer is not final: the replayed request's answer replaces it.
                ConditionExpression="attribute_not_exists(pk) OR outcome = :failed",
                ExpressionAttributeValues={":failed": {"S": "failed"}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise


def read(
    dynamodb: Any, table: str, request_id: str, destination_types: Sequence[str]
) -> list[ErasureOutcome]:
    """Every recorded outcome of a request, across the destination types."""
    found: list[ErasureOutcome] = []
    for destination_type in destination_types:
        pages = dynamodb.get_paginator("query").paginate(
            TableName=table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": partition(destination_type, request_id)}},
        )
        for page in pages:
            for item in page.get("Items", []):
                found.append(
                    ErasureOutcome(
                        request_id=request_id,
                        destination_type=destination_type,
                        instance_id=item["sk"]["S"],
                        outcome=item["outcome"]["S"],
                        reason=item["reason"]["S"],
                        detail=item.get("detail", {}).get("S", ""),
                        recorded_at=float(item["recordedAt"]["N"]),
                    )
                )
    return found


class ErasureNotCarriedOut(Exception):
    """A request this invocation could not carry out; names the error type only (never a value)."""


@dataclass(frozen=True)
class StoreEraser:
    """One store of the stack that forgets a person on request, and where its answer goes."""

    store: str  # the ledger's instance column, e.g. "snapshot-memberships"
    items: str  # what `erase` counts, plural, for the answer's detail, e.g. "audience memberships"
    erase: Callable[[ErasureRequestDetail], int]  # how many items of the person it forgot
    dynamodb: Any
    state_table: str
    max_receive_count: int = 0


def stack_outcome(request_id: str, store: str, outcome: str, reason: str, detail: str) -> ErasureOutcome:
    return ErasureOutcome(request_id, STACK, store, outcome, reason, detail, time.time())


def carry_out(message: SQSRecord, eraser: StoreEraser) -> None:
    """Erase the person of one queued request from the store and record the answer."""
    envelope = EventEnvelope.model_validate_json(message.body)
    if envelope.detail_type != PROFILE_ERASURE_REQUESTED:
        return  # the rule routes only erasure requests; anything else is not ours to act on
    detail = ErasureRequestDetail.model_validate(envelope.detail)
    try:
        count = eraser.erase(detail)
    except Exception as exc:
        if (
            eraser.max_receive_count
            and int(message.attributes.approximate_receive_count) >= eraser.max_receive_count
        ):
            failed = stack_outcome(
                detail.request_id, eraser.store, "failed", "retries_exhausted", type(exc).__name__
            )
            record(eraser.dynamodb, eraser.state_table, [failed])
        raise
    if count:
        answer = stack_outcome(
            detail.request_id, eraser.store, "erased", "erased", f"{eraser.items} forgotten: {count}"
        )
    else:
        answer = stack_outcome(
            detail.request_id,
            eraser.store,
            "not_found",
            "erasure_not_found",
            f"no {eraser.items} of the person",
        )
    record(eraser.dynamodb, eraser.state_table, [answer])


def handle_batch(event: dict[str, Any], context: Any, eraser: StoreEraser) -> dict[str, Any]:
    """An erasure function's SQS batch: each request carried out alone, failed ones reported back."""
    # Imported here, not at cold start: Powertools' batch utility builds every parser model on import
    # (tests/unit/test_regression_guard.py), and every destination imports this module.
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    def record_handler(record: SQSRecord) -> None:  # Powertools passes it by this name
        try:
            carry_out(record, eraser)
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

"""SQS glue: outcomes -> DLQ, partial batch response, ledger and metrics.

Rejected records go to the DLQ at once with the reason as message attributes; retries are reported
as batch item failures (the partial batch response Powertools' BatchProcessor would build); every
outcome is counted.
"""

from __future__ import annotations

import base64
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from activation_core import aws, erasure, naming
from activation_core.chunking import packed
from activation_core.collector import cycle_collection_paused
from activation_core.observability import logger, metrics
from activation_core.outcomes import BatchSummary, Kind, Outcome
from activation_core.pipeline import REDELIVERED, RecordResult
from activation_core.settled import SettledMessages
from activation_core.vendor_counts import VENDOR_COUNTS, VendorCounts
from activation_core.waiting import ORIGIN_ATTRIBUTE, REQUEUES_ATTRIBUTE, origin_of

# SQS refuses a visibility that ends more than 12 hours after the message was received.
# A record was received at most its mapping's batching window before the invocation began and the
# invocation runs at most its timeout: the margin covers both (a template test keeps every destination's
# timeout + window under it), so the longest wait asked for is always accepted.
SQS_MAX_VISIBILITY = 43_200
VISIBILITY_RECEIPT_MARGIN = 900
_LONGEST_DELAY_AFTER_RECEIPT = SQS_MAX_VISIBILITY - VISIBILITY_RECEIPT_MARGIN
_SQS_MAX_DELAY = 900
_ATTRIBUTE_LIMIT = 1000
# SendMessageBatch: at most 10 entries and a total payload (bodies + attribute names, types and values)
# of 256 KiB, the limit SQS documented until 2025 (1 MiB since): the lower bound holds on every queue.
_BATCH_ENTRIES = 10
_BATCH_BYTES = 262_144
# Waiting is not failing (issue 14): a record told to wait (`Outcome.waiting`: a rate limit, the shared
# budget, a vendor's reset or quota) goes back to its queue as a new message delayed until then, and
# this one is deleted, so waiting never uses up the queue's receives (maxReceiveCount). The copy
# carries how many receives of its earlier copies failed for real, so only real failures count
# towards the DLQ. A record waits at most MAX_WAIT_SECONDS in all (from its first wait), then it
# fails as usual.
MAX_WAIT_SECONDS = 4 * 86_400
DEFAULT_WAIT_SECONDS = 30  # told to wait without a time (a 429 without Retry-After)
FAILURES_ATTRIBUTE = "activationFailures"
WAITING_SINCE_ATTRIBUTE = "activationWaitingSince"


class RetryRecord(Exception):
    """Raised inside BatchProcessor's record handler so the record is reported as a batch item failure."""


def partial_batch_response(
    records: Sequence[Mapping[str, Any]], results: Mapping[str, RecordResult]
) -> dict[str, Any]:
    """`{"batchItemFailures": [...]}`: every record whose outcome is a retry (and that was not
    requeued), in batch order.

    Built here rather than by Powertools' BatchProcessor: importing `utilities.batch` once pydantic is
    loaded builds every Powertools parser model, the largest share of a handler's cold import.
    """
    failures = [
        {"itemIdentifier": record["messageId"]}
        for record in records
        if _still_failing(results[str(record.get("messageId"))])
    ]
    return {"batchItemFailures": failures}


def _still_failing(result: RecordResult) -> bool:
    return result.outcome.kind is Kind.RETRY and not result.requeued


def _empty_batch_response(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """An event without records: Powertools' answer (it raises), imported only on this path."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    def record_handler(record: Any) -> None:
        raise RetryRecord("no record")

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(
        process_partial_response(
            event=dict(event), record_handler=record_handler, processor=processor, context=context
        )
    )


@dataclass(frozen=True, slots=True)
class BatchContext:
    destination_type: str
    dead_letter_queue_url: str
    state_table_name: str
    # The queue's maxReceiveCount: on the last receive a retry goes to the DLQ with its reason
    # (SQS's own redrive would move it without one). 0 leaves it all to SQS.
    max_receive_count: int = 0


def exhaust_retries(
    records: Sequence[Mapping[str, Any]], results: Mapping[str, RecordResult], max_receive_count: int
) -> None:
    """A record whose receives failed for real `max_receive_count` times in all (this one included,
    and those of the copies it was requeued from) is rejected with the reason it kept failing for."""
    if max_receive_count <= 0:
        return
    for record in records:
        result = results[str(record.get("messageId"))]
        outcome = result.outcome
        failed = failures_of(record) + 1
        if _still_failing(result) and failed >= max_receive_count:
            result.outcome = Outcome.rejected(
                f"retries_exhausted:{outcome.reason}",
                f"after {failed} receives that failed: {outcome.detail}",
            )


def _dlq_entry(
    record: Mapping[str, Any], outcome: Outcome, destination_type: str, index: int
) -> dict[str, Any]:
    def text(value: str) -> dict[str, str]:
        return {"DataType": "String", "StringValue": (value or "-")[:_ATTRIBUTE_LIMIT]}

    attrs = record.get("attributes") or {}
    return {
        "Id": str(index),
        "MessageBody": record.get("body") or "<empty body>",
        "MessageAttributes": {
            "reason": text(outcome.reason),
            "detail": text(outcome.detail),
            "destinationType": text(destination_type),
            "sourceMessageId": text(str(record.get("messageId", ""))),
            "receiveCount": text(str(attrs.get("ApproximateReceiveCount", "1"))),
            "rejectedAt": text(str(int(time.time()))),
        },
    }


def _entry_bytes(entry: Mapping[str, Any]) -> int:
    """An entry's payload as SQS counts it: body, and each attribute's name, type and value."""
    size = len(str(entry["MessageBody"]).encode())
    for name, value in entry.get("MessageAttributes", {}).items():
        data = value.get("StringValue")
        raw = data.encode() if data is not None else bytes(value.get("BinaryValue") or b"")
        size += len(name.encode()) + len(value["DataType"].encode()) + len(raw)
    return size


def sized_batches(entries: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """SendMessageBatch calls within both of its limits (count and total size), in order; an entry too
    large to share a call gets one of its own (SQS's per-message limit then decides)."""
    return packed(
        entries, [_entry_bytes(entry) for entry in entries], max_count=_BATCH_ENTRIES, max_bytes=_BATCH_BYTES
    )


def send_rejections_to_dlq(
    records: Sequence[Mapping[str, Any]], results: dict[str, RecordResult], ctx: BatchContext, sqs: Any
) -> None:
    """Send rejected records to the DLQ; one that cannot be sent becomes a retry (nothing lost)."""
    rejected = [r for r in records if results[str(r.get("messageId"))].outcome.kind is Kind.REJECTED]
    entries = [
        _dlq_entry(r, results[str(r.get("messageId"))].outcome, ctx.destination_type, i)
        for i, r in enumerate(rejected)
    ]
    for batch in sized_batches(entries):
        try:
            response = sqs.send_message_batch(QueueUrl=ctx.dead_letter_queue_url, Entries=batch)
            failed_ids = {int(f["Id"]) for f in response.get("Failed", [])}
        except Exception as exc:
            logger.warning("DLQ send failed", extra={"error_type": type(exc).__name__})
            failed_ids = {int(e["Id"]) for e in batch}
        for i in failed_ids:
            message_id = str(rejected[i].get("messageId"))
            results[message_id].outcome = Outcome.retry(
                "dlq_unavailable", "could not send the rejection to the DLQ"
            )


def queue_url_of(queue_arn: str) -> str:
    """The queue URL an ARN names, without a GetQueueUrl call (and without the permission for it)."""
    _, partition, _, region, account, name = queue_arn.split(":", 5)
    domain = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    return f"https://sqs.{region}.{domain}/{account}/{name}"


def _number_attribute(record: Mapping[str, Any], name: str) -> int:
    attribute = (record.get("messageAttributes") or {}).get(name) or {}
    try:
        return max(0, int(attribute.get("stringValue") or 0))
    except (TypeError, ValueError):
        return 0


def requeues_of(record: Mapping[str, Any]) -> int:
    """How many times this record was already sent back to its queue (0 for an original message)."""
    return _number_attribute(record, REQUEUES_ATTRIBUTE)


def failures_of(record: Mapping[str, Any]) -> int:
    """Receives of this record that failed for real before this one: those of the copies it was
    requeued from, and the earlier receives of this copy (a waiting receive is requeued, never retried
    in place, so every earlier receive of a message failed)."""
    return _number_attribute(record, FAILURES_ATTRIBUTE) + _receive_count(record) - 1


def _requeued_attributes(record: Mapping[str, Any], waiting_since: int) -> dict[str, Any]:
    """The record's message attributes in SendMessage form, with the requeue count incremented and the
    real failures so far carried over."""
    attributes: dict[str, Any] = {}
    for name, value in (record.get("messageAttributes") or {}).items():
        data_type = str(value.get("dataType") or "String")
        if value.get("stringValue") is not None:
            attributes[name] = {"DataType": data_type, "StringValue": str(value["stringValue"])}
        elif value.get("binaryValue") is not None:
            attributes[name] = {"DataType": data_type, "BinaryValue": base64.b64decode(value["binaryValue"])}
    for name, number in (
        (REQUEUES_ATTRIBUTE, requeues_of(record) + 1),
        (FAILURES_ATTRIBUTE, failures_of(record)),
        (WAITING_SINCE_ATTRIBUTE, waiting_since),
    ):
        attributes[name] = {"DataType": "Number", "StringValue": str(number)}
    attributes[ORIGIN_ATTRIBUTE] = {"DataType": "String", "StringValue": origin_of(record)}
    return attributes


@dataclass(frozen=True, slots=True)
class _Waiting:
    """A record told to wait, with its result (marked requeued once its copy is sent)."""

    record: Mapping[str, Any]
    result: RecordResult


def requeue_waiting(
    records: Sequence[Mapping[str, Any]], results: Mapping[str, RecordResult], sqs: Any
) -> None:
    """A record told to wait is sent back to its queue as a new message delayed until then (at most
    SQS's 15 min), in SendMessageBatch calls within SQS's limits; the copy is sent before this message is reported done, so a failed
    send leaves it failing as before (hidden until then by `delay_throttled`; nothing lost)."""
    now = int(time.time())
    waiting: list[_Waiting] = []
    for record in records:
        result = results[str(record.get("messageId"))]
        if not _still_failing(result) or not result.outcome.waiting:
            continue
        since = _number_attribute(record, WAITING_SINCE_ATTRIBUTE) or now
        if now - since <= MAX_WAIT_SECONDS:
            waiting.append(_Waiting(record, result))
    by_queue: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(waiting):
        by_queue[queue_url_of(str(item.record.get("eventSourceARN", "")))].append(i)
    for url, indexes in by_queue.items():
        entries = [_requeue_entry(waiting[i].record, waiting[i].result.outcome, i, now) for i in indexes]
        for batch in sized_batches(entries):
            try:
                response = sqs.send_message_batch(QueueUrl=url, Entries=batch)
                sent = {int(e["Id"]) for e in response.get("Successful", [])}
            except Exception as exc:  # they stay failures: delayed in place, then SQS's redrive or the DLQ
                logger.warning("could not requeue waiting records", extra={"error_type": type(exc).__name__})
                continue
            for i in sent:
                waiting[i].result.requeued = True


def _requeue_entry(record: Mapping[str, Any], outcome: Outcome, index: int, now: int) -> dict[str, Any]:
    wait = DEFAULT_WAIT_SECONDS if outcome.retry_after is None else outcome.retry_after
    return {
        "Id": str(index),
        "MessageBody": record.get("body") or "",
        "DelaySeconds": min(_SQS_MAX_DELAY, max(0, int(wait + 0.999))),
        "MessageAttributes": _requeued_attributes(
            record, _number_attribute(record, WAITING_SINCE_ATTRIBUTE) or now
        ),
    }


def delay_throttled(
    records: Sequence[Mapping[str, Any]], results: Mapping[str, RecordResult], sqs: Any
) -> None:
    """Hide records the vendor told us to retry later until that time, instead of hammering the API."""
    for record in records:
        result = results[str(record.get("messageId"))]
        outcome = result.outcome
        if not _still_failing(result) or not outcome.retry_after:
            continue
        try:
            sqs.change_message_visibility(
                QueueUrl=queue_url_of(str(record.get("eventSourceARN", ""))),
                ReceiptHandle=record["receiptHandle"],
                VisibilityTimeout=min(_LONGEST_DELAY_AFTER_RECEIPT, max(1, int(outcome.retry_after + 0.999))),
            )
        except Exception as exc:  # the queue's own visibility timeout still applies
            logger.warning("could not delay a throttled record", extra={"error_type": type(exc).__name__})


def record_erasures(results: Mapping[str, RecordResult], ctx: BatchContext, dynamodb: Any) -> None:
    """Each instance's final answer to an erasure request, listable per request id (the erasure ledger).
    A retry is not final; on the last receive the DLQ reason is the answer (`failed`)."""
    now = time.time()
    entries: list[erasure.ErasureOutcome] = []
    for result in results.values():
        if result.erasure_request is None:
            continue
        for answer in result.per_instance:
            outcome = answer.outcome
            if outcome.kind is Kind.RETRY:
                if result.outcome.kind is not Kind.REJECTED:
                    continue
                outcome = result.outcome
            entries.append(
                erasure.ErasureOutcome(
                    result.erasure_request,
                    ctx.destination_type,
                    answer.instance_id,
                    erasure.classify(outcome),
                    outcome.reason,
                    outcome.detail,
                    now,
                )
            )
    if not entries:
        return
    try:
        erasure.record(dynamodb, ctx.state_table_name, entries, now=now)
    except Exception as exc:  # the vendor call is done; the counters still count it
        logger.error("erasure outcomes not recorded", extra={"error_type": type(exc).__name__})


def summarize(results: Mapping[str, RecordResult]) -> BatchSummary:
    summary = BatchSummary()
    for result in results.values():
        summary.add(result.outcome)
    return summary


def record_ledger(
    results: Mapping[str, RecordResult], ctx: BatchContext, dynamodb: Any, received: Collection[str]
) -> bool:
    """Count outcomes per destination type, per instance and per audience in the state table (COM-08),
    in the type's own partition (`naming.ledger_key`: its role may write no other type's).

    Final outcomes are counted once; a retry counts as an attempt; a redelivery (SQS delivered a
    message again whose outcome was counted: `is_redelivery`) counts as `redelivered`, outside
    received = delivered + skipped + DLQ. `received` counts the message ids in `received`
    (`newly_received`: no earlier receive of theirs reached this point), at the destination and at
    each instance and audience the record reached.

    True when the destination's own counters were written (its `received` among them).
    """
    counters: dict[str, Counter[str]] = defaultdict(Counter)
    for message_id, result in results.items():
        first = message_id in received
        again = is_redelivery(result)
        counters[ctx.destination_type]["received"] += int(first)
        for o in result.per_instance:
            counters[f"{ctx.destination_type}#{o.instance_id}"]["received"] += int(first)
        counters[ctx.destination_type][_counter_name(result.outcome, again)] += 1
        if result.requeued:
            counters[ctx.destination_type]["requeued"] += 1
        if result.outcome.kind is not Kind.DELIVERED and not again:
            counters[ctx.destination_type][_reason_counter(result.outcome)] += 1
        for o in result.per_instance:
            counters[f"{ctx.destination_type}#{o.instance_id}"][_counter_name(o.outcome, again)] += 1
            for audience_id in o.audience_ids:
                audience_key = f"{ctx.destination_type}#{o.instance_id}#{audience_id}"
                counters[audience_key]["received"] += int(first)
                counters[audience_key][_counter_name(o.outcome, again)] += 1
    ledger, snapshot_ledger = (
        naming.ledger_key(ctx.destination_type),
        naming.snapshot_ledger_key(ctx.destination_type),
    )
    updates = [_LedgerUpdate(ledger, key, counts) for key, counts in counters.items()]
    updates += [
        _LedgerUpdate(snapshot_ledger, key, counts) for key, counts in _snapshot_counters(results).items()
    ]
    # One item per key, so the updates are independent: on threads they take about one round trip,
    # not 2 + instances + audiences of them one after another at the end of every batch.
    written = aws.in_parallel(lambda u: _add_to_ledger(u.pk, u.key, u.counts, ctx, dynamodb), updates)
    return all(
        ok for u, ok in zip(updates, written, strict=True) if (u.pk, u.key) == (ledger, ctx.destination_type)
    )


@dataclass(frozen=True)
class _LedgerUpdate:
    pk: str
    key: str
    counts: Counter[str]


def _snapshot_counters(results: Mapping[str, RecordResult]) -> dict[str, Counter[str]]:
    """Outcomes of snapshot changes per (audience, snapshot, instance): what reconciliation reads.
    Items `pk=snapshot-outcomes#<type>`, `sk=<audience>#<snapshot>#<instance>` (naming.snapshot_ledger_key)."""
    counters: dict[str, Counter[str]] = defaultdict(Counter)
    for result in results.values():
        if result.snapshot_id is None or is_redelivery(result):
            continue
        for o in result.per_instance:
            # A record that ran out of receives is rejected as a whole, whatever the instance said last.
            outcome = (
                result.outcome
                if result.outcome.kind is Kind.REJECTED and o.outcome.kind is Kind.RETRY
                else o.outcome
            )
            # An instance that stopped activating the audience (or was disabled) skips with no audience
            # of its own: counted under the snapshot's, so every change sent ends with an outcome.
            for audience_id in o.audience_ids or result.snapshot_audiences:
                key = f"{audience_id}#{result.snapshot_id}#{o.instance_id}"
                counters[key][_counter_name(outcome)] += 1
                if outcome.kind in (Kind.SKIPPED, Kind.REJECTED):
                    counters[key][_reason_counter(outcome)] += 1
    return counters


def first_arrivals(records: Sequence[Mapping[str, Any]]) -> set[str]:
    """Message ids received for the first time by their count (1, and not a requeued copy): taken as
    never counted, without a look-up (the happy path reads nothing). A requeued copy arrives with a
    receive count of 1 again, but its record was counted when it first came."""
    return {str(r.get("messageId")) for r in records if _receive_count(r) <= 1 and not requeues_of(r)}


def _receive_count(record: Mapping[str, Any]) -> int:
    try:
        return int((record.get("attributes") or {}).get("ApproximateReceiveCount", "1") or 1)
    except (TypeError, ValueError):
        return 1


def _add_to_ledger(pk: str, key: str, counts: Counter[str], ctx: BatchContext, dynamodb: Any) -> bool:
    names = {f"#c{i}": name for i, name in enumerate(counts)}
    values = {f":v{i}": {"N": str(counts[name])} for i, name in enumerate(counts)}
    expression = "ADD " + ", ".join(f"#c{i} :v{i}" for i in range(len(counts)))
    try:
        dynamodb.update_item(
            TableName=ctx.state_table_name,
            Key={"pk": {"S": pk}, "sk": {"S": key}},
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
    except Exception as exc:  # monitoring must never fail delivery
        logger.warning("ledger update failed", extra={"error_type": type(exc).__name__})
        return False
    return True


def is_redelivery(result: RecordResult) -> bool:
    """SQS delivered a message again whose outcome was already counted: found settled before it was
    decided (activation_core.settled), or every instance skipped it and the order guard recognised its
    lineage on at least one (`redelivered`). Skips before the guard (consent, an audience not
    activated) depend on the event alone, so they were final the first time too; an instance that
    delivers now makes it a first settlement (counted as usual)."""
    return result.outcome.kind is Kind.SKIPPED and (
        result.outcome.reason == REDELIVERED
        or any(o.outcome.reason == REDELIVERED for o in result.per_instance)
    )


@dataclass(frozen=True, slots=True)
class ReceivedBefore:
    """What earlier receives left of a batch's records: those settled before (`skipped:redelivered`
    without a decision), and the message ids counted `received` before (those, requeued copies, and the
    records marked by `remember_received`)."""

    redelivered: dict[str, RecordResult]
    counted: frozenset[str]


def received_before(
    records: Sequence[Mapping[str, Any]], arrivals: Collection[str], settled: SettledMessages
) -> ReceivedBefore:
    """Look up the records that may have been received before (all but first arrivals, which are not
    looked up): one BatchGetItem per 50 of them, settled lineages and `received` marks together."""
    maybe = {str(r.get("messageId")): r for r in records if str(r.get("messageId")) not in arrivals}
    if not maybe:
        return ReceivedBefore({}, frozenset())
    copies = {message_id for message_id, record in maybe.items() if requeues_of(record)}
    seen = settled.seen(
        [origin_of(r) for r in maybe.values()],
        received=[origin_of(r) for message_id, r in maybe.items() if message_id not in copies],
    )
    redelivered = {
        message_id: RecordResult(
            Outcome.skipped(REDELIVERED, "this message was settled and counted before"),
            receive_count=_receive_count(record),
        )
        for message_id, record in maybe.items()
        if origin_of(record) in seen.settled
    }
    counted = copies | {m for m, r in maybe.items() if origin_of(r) in seen.received}
    return ReceivedBefore(redelivered, frozenset(counted))


def newly_received(
    records: Sequence[Mapping[str, Any]], results: Mapping[str, RecordResult], before: ReceivedBefore
) -> set[str]:
    """The message ids this batch counts `received`: every record that no earlier receive counted and
    that is not a redelivery of a message counted elsewhere (its guard lineage, or another invocation
    settling it first). A receive count is not evidence: a message whose first receive never reached
    the handler (a cold start that timed out) comes with a count of 2 and was never counted."""
    return {
        message_id
        for record in records
        if (message_id := str(record.get("messageId"))) not in before.counted
        and not is_redelivery(results[message_id])
        # A retry that reached no instance (invalid config, a failed decision) waits for a receive
        # that does: counted now, its instances' and audiences' `received` would never be.
        and (results[message_id].per_instance or not _still_failing(results[message_id]))
    }


def remember_received(
    records: Sequence[Mapping[str, Any]],
    results: Mapping[str, RecordResult],
    received: Collection[str],
    settled: SettledMessages,
) -> None:
    """Mark the lineages counted `received` now whose outcome is not final (a retry, a requeued
    wait): their next receive must not count them again. A settled one is known by its settlement."""
    pending = []
    for record in records:
        message_id = str(record.get("messageId"))
        result = results[message_id]
        if message_id in received and (result.requeued or _still_failing(result)):
            pending.append(origin_of(record))
    settled.mark_received(pending)


def _remembered_by_settling(result: RecordResult) -> bool:
    """A final outcome the order guard does not remember (anything but a delivered change, which moved
    the guard with its lineage; an erasure does not)."""
    kind = result.outcome.kind
    if kind is Kind.RETRY or result.requeued or is_redelivery(result):
        return False
    return kind is not Kind.DELIVERED or result.erasure_request is not None


def settle(
    records: Sequence[Mapping[str, Any]], results: Mapping[str, RecordResult], settled: SettledMessages
) -> None:
    """Record the lineages of final outcomes the order guard does not remember (once the DLQ has taken
    a rejection). A lineage already settled (another invocation held the message at the same time),
    or settled by an earlier record of this batch (two copies of one requeue), is `redelivered`."""
    mine: dict[str, str] = {}
    in_batch: set[str] = set()
    again: list[str] = []
    for record in records:
        message_id = str(record.get("messageId"))
        result = results[message_id]
        lineage = origin_of(record)
        final = result.outcome.kind is not Kind.RETRY and not is_redelivery(result)
        if final and lineage and lineage in in_batch:
            again.append(message_id)
            continue
        if final:
            in_batch.add(lineage)
        if _remembered_by_settling(result):
            mine[message_id] = lineage
    first_elsewhere = settled.settle(mine.values()) if mine else set()
    again += [message_id for message_id, lineage in mine.items() if lineage in first_elsewhere]
    for message_id in again:
        results[message_id].outcome = Outcome.skipped(
            REDELIVERED, "this message was settled by another copy or invocation"
        )


def _counter_name(outcome: Outcome, redelivery: bool = False) -> str:
    if redelivery:
        return REDELIVERED
    return outcome.kind.value if outcome.kind is not Kind.RETRY else "retried"


def _reason_counter(outcome: Outcome) -> str:
    return f"reason:{_counter_name(outcome)}:{outcome.reason}"


def _publish_metrics(summary: BatchSummary, before: VendorCounts) -> None:
    vendor = VENDOR_COUNTS.snapshot().since(before)
    metrics.add_metric("ApiCalls", MetricUnit.Count, vendor.calls)
    metrics.add_metric("VendorThrottles", MetricUnit.Count, vendor.throttled)
    metrics.add_metric("TokenRequests", MetricUnit.Count, vendor.token_requests)
    metrics.add_metric("RecordsReceived", MetricUnit.Count, summary.received)
    metrics.add_metric("RecordsDelivered", MetricUnit.Count, summary.delivered)
    metrics.add_metric("RecordsSkipped", MetricUnit.Count, summary.skipped)
    metrics.add_metric("RecordsRejected", MetricUnit.Count, summary.rejected)
    metrics.add_metric("RecordsRetried", MetricUnit.Count, summary.retry)


@cycle_collection_paused()  # one batch's allocations start no full collection: activation_core.collector
def run_batch(
    event: Mapping[str, Any],
    context: Any,
    decide: Callable[[Sequence[Mapping[str, Any]]], dict[str, RecordResult]],
    ctx: BatchContext,
) -> dict[str, Any]:
    """Decide every record's outcome, act on it, and return the partial batch response."""
    records: list[Mapping[str, Any]] = list(event.get("Records") or [])
    vendor_counts = VENDOR_COUNTS.snapshot()
    dynamodb = aws.client("dynamodb")
    arrivals = first_arrivals(records)
    settled = SettledMessages(ctx.state_table_name, ctx.destination_type, dynamodb=dynamodb)
    before = received_before(records, arrivals, settled)
    undecided = [r for r in records if str(r.get("messageId")) not in before.redelivered]
    try:
        results = decide(undecided) if undecided or not records else {}
    except Exception as exc:  # whatever broke, the batch retries rather than vanishes
        logger.exception("batch decision failed", extra={"error_type": type(exc).__name__})
        results = {}
    results.update(before.redelivered)
    for record in records:
        message_id = str(record.get("messageId"))
        if message_id not in results:
            results[message_id] = RecordResult(
                Outcome.retry("internal_error", "no decision for this record"),
                receive_count=_receive_count(record),
            )
    sqs = aws.client("sqs")
    requeue_waiting(records, results, sqs)
    exhaust_retries(records, results, ctx.max_receive_count)
    send_rejections_to_dlq(records, results, ctx, sqs)
    delay_throttled(records, results, sqs)
    record_erasures(results, ctx, dynamodb)
    settle(records, results, settled)
    received = newly_received(records, results, before)

    response = partial_batch_response(records, results) if records else _empty_batch_response(event, context)
    summary = summarize(results)
    # The ledger first: a mark without its count would keep every later receive from counting it.
    if record_ledger(results, ctx, dynamodb, received):
        remember_received(records, results, received, settled)
    _publish_metrics(summary, vendor_counts)
    logger.info("batch done", extra={"summary": summary.as_dict(), "destination": ctx.destination_type})
    return dict(response)


def reject_all(reason: str, detail: str) -> Callable[[Sequence[Mapping[str, Any]]], dict[str, RecordResult]]:
    """A decision that rejects every record (a destination that is not built yet)."""

    def decide(records: Sequence[Mapping[str, Any]]) -> dict[str, RecordResult]:
        return {
            str(r.get("messageId")): RecordResult(
                Outcome.rejected(reason, detail), receive_count=_receive_count(r)
            )
            for r in records
        }

    return decide

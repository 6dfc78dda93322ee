"""SQS glue: rejected records reach the DLQ with their reason, retries become batch item failures,
and the ledger keeps the books (received = delivered + skipped + rejected + retry)."""

import gc
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import boto3
import httpx
import pytest
from moto import mock_aws

from activation_core import aws, batch, http, naming, settled
from activation_core.batch import BatchContext, reject_all, run_batch
from activation_core.errors import ThrottledError
from activation_core.observability import metrics
from activation_core.outcomes import Outcome
from activation_core.pipeline import InstanceOutcome, RecordResult
from activation_core.waiting import ORIGIN_ATTRIBUTE, REQUEUES_ATTRIBUTE
from tests.support import create_state_table, sqs_record


@pytest.fixture
def queues() -> Iterator[dict[str, str]]:
    with mock_aws():
        aws.reset_clients()
        sqs = boto3.client("sqs")
        dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        source = sqs.create_queue(QueueName="test-queue")["QueueUrl"]
        create_state_table(boto3.client("dynamodb"), "state")
        yield {"dlq": dlq, "source": source}
        aws.reset_clients()


def decided(outcomes: dict[str, Outcome]) -> Any:
    def decide(records: Sequence[Mapping[str, Any]]) -> dict[str, RecordResult]:
        return {
            str(r["messageId"]): RecordResult(
                outcomes[str(r["messageId"])],
                [InstanceOutcome("inst", ("aud-1",), outcomes[str(r["messageId"])])],
                int(r["attributes"]["ApproximateReceiveCount"]),
            )
            for r in records
        }

    return decide


def ledger(key: str) -> dict[str, int]:
    item = (
        boto3.client("dynamodb")
        .get_item(
            TableName="state", Key={"pk": {"S": naming.ledger_key(key.partition("#")[0])}, "sk": {"S": key}}
        )
        .get("Item", {})
    )
    return {k: int(v["N"]) for k, v in item.items() if "N" in v}


def dlq_messages(url: str) -> list[dict[str, Any]]:
    return (
        boto3.client("sqs")
        .receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        .get("Messages", [])
    )


def test_com_09_rejections_go_to_the_dlq_with_reason_and_retries_are_reported(queues: dict[str, str]) -> None:
    ctx = BatchContext("rainfocus", queues["dlq"], "state")
    outcomes = {
        "m-1": Outcome.delivered(),
        "m-2": Outcome.rejected("invalid_field:countryid", "'countryid' must be an ISO 3166-1 alpha-2 code"),
        "m-3": Outcome.retry("http_503"),
        "m-4": Outcome.skipped("consent"),
    }
    event = {"Records": [sqs_record({"n": i}, f"m-{i}") for i in range(1, 5)]}
    response = run_batch(event, None, decided(outcomes), ctx)

    assert response == {"batchItemFailures": [{"itemIdentifier": "m-3"}]}
    (message,) = dlq_messages(queues["dlq"])
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["reason"] == "invalid_field:countryid"
    assert attributes["sourceMessageId"] == "m-2"
    assert attributes["destinationType"] == "rainfocus"
    assert message["Body"] == '{"n": 2}'  # the original event, replayable as it was

    totals = ledger("rainfocus")
    assert totals["received"] == 4
    assert (
        totals["received"] == totals["delivered"] + totals["skipped"] + totals["rejected"] + totals["retried"]
    )
    assert totals["reason:rejected:invalid_field:countryid"] == 1
    assert ledger("rainfocus#inst#aud-1")["delivered"] == 1


def test_com_09_an_unreachable_dlq_turns_a_rejection_into_a_retry(queues: dict[str, str]) -> None:
    ctx = BatchContext("rainfocus", queues["dlq"] + "-missing", "state")
    event = {"Records": [sqs_record({"n": 1}, "m-1")]}
    response = run_batch(event, None, decided({"m-1": Outcome.rejected("x")}), ctx)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}


def test_a_crashing_decision_retries_the_whole_batch(queues: dict[str, str]) -> None:
    def explode(records: Sequence[Mapping[str, Any]]) -> dict[str, RecordResult]:
        raise RuntimeError("bug")

    event = {"Records": [sqs_record({"n": i}, f"m-{i}") for i in range(3)]}
    response = run_batch(event, None, explode, BatchContext("rainfocus", queues["dlq"], "state"))
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == ["m-0", "m-1", "m-2"]


def test_throttled_records_are_hidden_until_the_vendor_reset_time(queues: dict[str, str]) -> None:
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=queues["source"], MessageBody="{}")
    (received,) = sqs.receive_message(QueueUrl=queues["source"], VisibilityTimeout=0)["Messages"]
    record = sqs_record("{}", received["MessageId"])
    record["receiptHandle"] = received["ReceiptHandle"]
    outcome = {received["MessageId"]: Outcome.retry("http_429", retry_after=900)}
    run_batch(
        {"Records": [record]}, None, decided(outcome), BatchContext("rainfocus", queues["dlq"], "state")
    )
    # Visible again at once without the delay (VisibilityTimeout=0 above); hidden with it.
    assert sqs.receive_message(QueueUrl=queues["source"]).get("Messages", []) == []


def test_received_counts_first_receives_only(queues: dict[str, str]) -> None:
    ctx = BatchContext("rainfocus", queues["dlq"], "state")
    run_batch({"Records": [sqs_record({}, "m-1", 1)]}, None, decided({"m-1": Outcome.retry("timeout")}), ctx)
    run_batch({"Records": [sqs_record({}, "m-1", 2)]}, None, decided({"m-1": Outcome.delivered()}), ctx)
    totals = ledger("rainfocus")
    assert (totals["received"], totals["delivered"], totals["retried"]) == (1, 1, 1)


def test_com_07_each_batch_publishes_its_vendor_calls_and_throttles(queues: dict[str, str]) -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(200)])
    vendor = httpx.Client(transport=httpx.MockTransport(lambda request: next(answers)))

    def call_vendor(records: Sequence[Mapping[str, Any]]) -> dict[str, RecordResult]:
        http.send("POST", "https://vendor.example/api", client=vendor, sleep=lambda seconds: None)
        return decided({"m-1": Outcome.delivered()})(records)

    metrics.clear_metrics()
    run_batch(
        {"Records": [sqs_record({}, "m-1")]}, None, call_vendor, BatchContext("x", queues["dlq"], "state")
    )
    published = {name: metric["Value"] for name, metric in metrics.metric_set.items()}
    metrics.clear_metrics()
    assert (published["ApiCalls"], published["VendorThrottles"], published["TokenRequests"]) == (
        [2.0],
        [1.0],
        [0.0],
    )


class InvocationKilled(BaseException):
    """What a Lambda timeout does to a handler: it stops, nothing after it runs."""


def killed(records: Sequence[Mapping[str, Any]]) -> dict[str, RecordResult]:
    """A decision during which Lambda ends the invocation."""
    raise InvocationKilled


def test_com_09_a_record_whose_first_invocation_died_is_still_received_once(queues: dict[str, str]) -> None:
    ctx = BatchContext("rainfocus", queues["dlq"], "state")
    with pytest.raises(InvocationKilled):
        run_batch({"Records": [sqs_record({}, "m-1", 1)]}, None, killed, ctx)
    run_batch({"Records": [sqs_record({}, "m-1", 2)]}, None, decided({"m-1": Outcome.delivered()}), ctx)
    totals = ledger("rainfocus")
    assert (totals["received"], totals["delivered"]) == (1, 1)  # balanced: nothing unaccounted


def test_not_implemented_destinations_reject_every_record(queues: dict[str, str]) -> None:
    event = {"Records": [sqs_record({"n": i}, f"m-{i}") for i in range(3)]}
    response = run_batch(
        event, None, reject_all("not_implemented", "later"), BatchContext("marketo", queues["dlq"], "state")
    )
    assert response == {"batchItemFailures": []}
    assert {m["MessageAttributes"]["reason"]["StringValue"] for m in dlq_messages(queues["dlq"])} == {
        "not_implemented"
    }


def test_com_09_the_last_allowed_receive_goes_to_the_dlq_with_the_reason_it_kept_failing(
    queues: dict[str, str],
) -> None:
    ctx = BatchContext("rainfocus", queues["dlq"], "state", max_receive_count=5)
    event = {"Records": [sqs_record({"n": 1}, "m-4", 4), sqs_record({"n": 2}, "m-5", 5)]}
    outcomes = {"m-4": Outcome.retry("http_503", "busy"), "m-5": Outcome.retry("http_503", "busy")}
    response = run_batch(event, None, decided(outcomes), ctx)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-4"}]}
    (message,) = dlq_messages(queues["dlq"])
    assert message["MessageAttributes"]["reason"]["StringValue"] == "retries_exhausted:http_503"
    assert "after 5 receives" in message["MessageAttributes"]["detail"]["StringValue"]


def requeued_copy() -> dict[str, Any]:
    """The copy requeue_waiting sent, as the event source mapping would deliver it."""
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName="test-queue")["QueueUrl"]
    (message,) = sqs.receive_message(
        QueueUrl=url, MessageAttributeNames=["All"], WaitTimeSeconds=0, VisibilityTimeout=0
    ).get("Messages", [])
    copy = sqs_record(message["Body"], message["MessageId"], 1)
    copy["messageAttributes"] = {
        name: {"stringValue": value["StringValue"], "dataType": value["DataType"]}
        for name, value in message.get("MessageAttributes", {}).items()
    }
    return copy


def test_com_09_a_record_waiting_for_a_quota_on_its_last_receive_is_requeued_not_dead_lettered(
    queues: dict[str, str],
) -> None:
    ctx = BatchContext("outreach", queues["dlq"], "state", max_receive_count=5)
    waiting = {"m-5": Outcome.retry("rate_budget_exhausted", "hourly quota", retry_after=30, waiting=True)}
    response = run_batch({"Records": [sqs_record({"n": 1}, "m-5", 5)]}, None, decided(waiting), ctx)
    assert response == {"batchItemFailures": []}  # this message is done with: a copy waits in the queue
    assert dlq_messages(queues["dlq"]) == []
    attributes = boto3.client("sqs").get_queue_attributes(QueueUrl=queues["source"], AttributeNames=["All"])
    assert attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"  # until the quota frees

    # A copy whose wait is over arrives with a receive count of 1 but is not received a second time.
    almost_free = {
        "m-6": Outcome.retry("rate_budget_exhausted", "hourly quota", retry_after=0.0001, waiting=True)
    }
    run_batch({"Records": [sqs_record({"n": 2}, "m-6", 5)]}, None, decided(almost_free), ctx)
    copy = requeued_copy()
    assert json.loads(copy["body"]) == {"n": 2}
    assert copy["messageAttributes"][REQUEUES_ATTRIBUTE]["stringValue"] == "1"
    # The copy keeps its first message's id: the order guard knows it as the same message (COM-08).
    assert copy["messageAttributes"][ORIGIN_ATTRIBUTE]["stringValue"] == "m-6"
    run_batch({"Records": [copy]}, None, decided({copy["messageId"]: Outcome.delivered()}), ctx)
    # No earlier receive of m-5 or m-6 left a trace (none reached the end of a batch): both are counted
    # `received` here, whatever their receive count; the copy of m-6 is not counted again.
    totals = ledger("outreach")
    assert (totals["received"], totals["requeued"], totals["delivered"]) == (2, 2, 1)


def test_com_09_a_record_that_waited_too_long_goes_to_the_dlq_with_its_reason(queues: dict[str, str]) -> None:
    ctx = BatchContext("outreach", queues["dlq"], "state", max_receive_count=5)
    record = sqs_record({"n": 1}, "m-5", 5)
    since = int(time.time()) - batch.MAX_WAIT_SECONDS - 1
    record["messageAttributes"] = {
        batch.WAITING_SINCE_ATTRIBUTE: {"stringValue": str(since), "dataType": "Number"}
    }
    waiting = {"m-5": Outcome.retry("rate_budget_exhausted", "hourly quota", retry_after=60, waiting=True)}
    run_batch({"Records": [record]}, None, decided(waiting), ctx)
    (message,) = dlq_messages(queues["dlq"])
    assert message["MessageAttributes"]["reason"]["StringValue"] == "retries_exhausted:rate_budget_exhausted"


def test_a_failed_record_told_when_to_retry_is_only_hidden(queues: dict[str, str]) -> None:
    # A failure with a time to come back (a 503 with Retry-After) is not a wait: it uses a receive.
    ctx = BatchContext("outreach", queues["dlq"], "state", max_receive_count=5)
    waiting = {"m-4": Outcome.retry("http_503", "busy", retry_after=60)}
    response = run_batch({"Records": [sqs_record({"n": 1}, "m-4", 4)]}, None, decided(waiting), ctx)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-4"}]}
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName="test-queue")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (
        attributes["ApproximateNumberOfMessages"] == attributes["ApproximateNumberOfMessagesDelayed"] == "0"
    )


def test_a_wait_longer_than_sqs_allows_stays_within_12_hours_of_the_receipt(queues: dict[str, str]) -> None:
    """SQS refuses a visibility ending more than 12 h after the receipt (moto too): a Marketo daily
    quota reset 20 h away hides the record for the longest wait SQS accepts, not for one it refuses."""
    sqs = aws.client("sqs")
    asked: list[int] = []
    sqs.meta.events.register(
        "provide-client-params.sqs.ChangeMessageVisibility",
        lambda params, **_: asked.append(params["VisibilityTimeout"]),
    )
    sqs.send_message(QueueUrl=queues["source"], MessageBody="{}")
    (received,) = sqs.receive_message(QueueUrl=queues["source"], VisibilityTimeout=0)["Messages"]
    record = sqs_record("{}", received["MessageId"])
    record["receiptHandle"] = received["ReceiptHandle"]
    outcome = {received["MessageId"]: Outcome.retry("marketo_607", retry_after=20 * 3600)}
    run_batch({"Records": [record]}, None, decided(outcome), BatchContext("marketo", queues["dlq"], "state"))
    assert len(asked) == 1
    assert asked[0] <= batch.SQS_MAX_VISIBILITY - batch.VISIBILITY_RECEIPT_MARGIN
    assert sqs.receive_message(QueueUrl=queues["source"]).get("Messages", []) == []


def test_com_09_dlq_sends_are_split_by_total_size_as_well_as_count() -> None:
    from activation_core.batch import _dlq_entry, sized_batches

    bodies = ["x" * 100_000] * 10 + ["small"] * 15
    entries = [
        _dlq_entry({"messageId": f"m-{i}", "body": b}, Outcome.rejected("r", "d"), "t", i)
        for i, b in enumerate(bodies)
    ]
    batches = sized_batches(entries)
    assert [e["Id"] for chunk in batches for e in chunk] == [str(i) for i in range(25)]
    for chunk in batches:
        assert len(chunk) <= 10
        total = sum(
            len(e["MessageBody"]) + sum(len(k) + len(v["DataType"]) + len(v["StringValue"])
            for k, v in e["MessageAttributes"].items())
            for e in chunk
        )  # fmt: skip
        assert total <= 256 * 1024


# ---------------------------------------------------------------- issue 14 item 6: waiting is not failing
def next_receive(record: dict[str, Any], response: dict[str, Any]) -> dict[str, Any] | None:
    """What SQS delivers next for this record: the same message again if it was reported failing, the
    copy it was requeued as otherwise (None: it is done)."""
    if response["batchItemFailures"]:
        again = sqs_record(
            json.loads(record["body"]),
            record["messageId"],
            int(record["attributes"]["ApproximateReceiveCount"]) + 1,
        )
        again["messageAttributes"] = record["messageAttributes"]
        return again
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName="test-queue")["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"]).get("Messages", [])
    if not messages:
        return None
    (message,) = messages
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])  # as the next invocation will
    copy = sqs_record(message["Body"], message["MessageId"], 1)
    copy["messageAttributes"] = {
        name: {"stringValue": value["StringValue"], "dataType": value["DataType"]}
        for name, value in message.get("MessageAttributes", {}).items()
    }
    return copy


def result_of_dlq(ctx: BatchContext) -> bool:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=ctx.dead_letter_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return attributes["Attributes"]["ApproximateNumberOfMessages"] != "0"


def follow(outcomes: list[Outcome], ctx: BatchContext) -> list[str]:
    """Run one record through `outcomes`, one receive each, as SQS would deliver it; what happened."""
    record: dict[str, Any] | None = sqs_record({"n": 1}, "m-1", 1)
    seen: list[str] = []
    for outcome in outcomes:
        assert record is not None, f"the record ended early: {seen}"
        response = run_batch({"Records": [record]}, None, decided({record["messageId"]: outcome}), ctx)
        if result_of_dlq(ctx):
            return [*seen, "dlq"]
        seen.append(outcome.kind.value)
        record = next_receive(record, response)
    return seen


def test_com_09_a_record_that_waits_more_often_than_max_receive_count_is_still_delivered(
    queues: dict[str, str],
) -> None:
    ctx = BatchContext("outreach", queues["dlq"], "state", max_receive_count=3)
    wait = Outcome.from_error(ThrottledError("rate_budget_exhausted", "hourly quota", retry_after=0.0001))
    failure = Outcome.retry("http_503", "busy")
    # Four waits and two real failures: only the two failures count against the 3 receives allowed.
    assert follow([wait, wait, wait, wait, failure, failure, Outcome.delivered()], ctx)[-1] == "delivered"
    assert dlq_messages(queues["dlq"]) == []


def test_com_09_real_failures_still_reach_the_dlq_after_max_receive_count_whatever_the_waits(
    queues: dict[str, str],
) -> None:
    ctx = BatchContext("outreach", queues["dlq"], "state", max_receive_count=3)
    wait = Outcome.from_error(ThrottledError("http_429", "slow down", retry_after=0.0001))
    failure = Outcome.retry("http_503", "busy")
    assert follow([failure, wait, failure, wait, failure], ctx) == ["retry"] * 4 + ["dlq"]
    (message,) = dlq_messages(queues["dlq"])
    assert message["MessageAttributes"]["reason"]["StringValue"] == "retries_exhausted:http_503"


def test_com_09_a_wait_without_a_reset_time_is_requeued_not_counted(queues: dict[str, str]) -> None:
    ctx = BatchContext("outreach", queues["dlq"], "state", max_receive_count=3)
    wait = Outcome.from_error(ThrottledError("http_429", "slow down"))  # no Retry-After header
    response = run_batch({"Records": [sqs_record({"n": 1}, "m-3", 3)]}, None, decided({"m-3": wait}), ctx)
    assert response == {"batchItemFailures": []} and dlq_messages(queues["dlq"]) == []
    attributes = boto3.client("sqs").get_queue_attributes(QueueUrl=queues["source"], AttributeNames=["All"])
    assert attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"


# ---------------------------------------------------------------- COM-08: redelivery of a settled message
def counting(outcomes: dict[str, Outcome], decisions: list[str]) -> Any:
    """`decided`, noting every message id it is asked to decide."""
    decide = decided(outcomes)

    def note(records: Sequence[Mapping[str, Any]]) -> dict[str, RecordResult]:
        decisions.extend(str(r["messageId"]) for r in records)
        return dict(decide(records))

    return note


def dynamodb_calls() -> list[str]:
    calls: list[str] = []
    aws.client("dynamodb").meta.events.register(
        "before-call.dynamodb", lambda model, **_: calls.append(model.name)
    )
    return calls


def test_com_08_a_settled_skip_or_rejection_delivered_again_by_sqs_is_counted_once(
    queues: dict[str, str],
) -> None:
    """Outcomes the order guard does not record (a consent skip, `stale`, a rejection): SQS delivers the
    message again (a failed delete, a visibility timeout that ran out), and it is counted `redelivered`,
    outside received = delivered + skipped + DLQ; a rejection is not sent to the DLQ twice."""
    ctx = BatchContext("rainfocus", queues["dlq"], "state", max_receive_count=5)
    outcomes = {
        "m-1": Outcome.skipped("consent", "consent 'marketing' is 'n'"),
        "m-2": Outcome.skipped("stale", "a newer event was applied"),
        "m-3": Outcome.rejected("invalid_field:countryid", "not a country"),
    }
    decisions: list[str] = []
    first = {"Records": [sqs_record({"n": i}, f"m-{i}", 1) for i in (1, 2, 3)]}
    again = {"Records": [sqs_record({"n": i}, f"m-{i}", 2) for i in (1, 2, 3)]}
    run_batch(first, None, counting(outcomes, decisions), ctx)
    response = run_batch(again, None, counting(outcomes, decisions), ctx)

    assert response == {"batchItemFailures": []}
    assert decisions == ["m-1", "m-2", "m-3"]  # the redeliveries were settled before any decision
    assert len(dlq_messages(queues["dlq"])) == 1
    totals = ledger("rainfocus")
    assert (totals["received"], totals["skipped"], totals["rejected"], totals["redelivered"]) == (3, 2, 1, 3)
    assert totals["reason:skipped:consent"] == totals["reason:skipped:stale"] == 1
    assert totals["received"] == totals["skipped"] + totals["rejected"]  # the books balance


def test_com_08_two_copies_of_one_requeue_settle_once(queues: dict[str, str]) -> None:
    """SendMessageBatch retried by the SDK after SQS took it: two copies of one waiting record, both
    carrying the lineage of the first message. The first settles (skipped `superseded`), the second is
    `redelivered`."""
    ctx = BatchContext("outreach", queues["dlq"], "state")
    copies = []
    for copy_id in ("copy-a", "copy-b"):
        copy = sqs_record({"n": 1}, copy_id, 1)
        copy["messageAttributes"] = {
            ORIGIN_ATTRIBUTE: {"stringValue": "m-1", "dataType": "String"},
            REQUEUES_ATTRIBUTE: {"stringValue": "1", "dataType": "Number"},
        }
        copies.append(copy)
    skip = Outcome.skipped("superseded", "a newer change sets every field")
    for copy in copies:
        run_batch({"Records": [copy]}, None, decided({copy["messageId"]: skip}), ctx)
    totals = ledger("outreach")
    assert (totals["skipped"], totals["redelivered"]) == (1, 1)

    for copy in copies:  # the two copies of another message in one batch
        copy["messageAttributes"][ORIGIN_ATTRIBUTE]["stringValue"] = "m-2"
    run_batch({"Records": copies}, None, decided(dict.fromkeys(["copy-a", "copy-b"], skip)), ctx)
    totals = ledger("outreach")
    assert (totals["skipped"], totals["redelivered"]) == (2, 2)


def test_com_08_an_erasure_delivered_again_is_counted_once(queues: dict[str, str]) -> None:
    """An erasure moves no order guard (it deletes the person's): its settlement is remembered apart."""
    ctx = BatchContext("rainfocus", queues["dlq"], "state")
    decisions: list[str] = []
    erased = counting({"m-1": Outcome.delivered("erased")}, decisions)

    def erasure(records: Sequence[Mapping[str, Any]]) -> dict[str, RecordResult]:
        results = erased(records)
        for result in results.values():
            result.erasure_request = "dsr-1"
        return results

    run_batch({"Records": [sqs_record({}, "m-1", 1)]}, None, erasure, ctx)
    run_batch({"Records": [sqs_record({}, "m-1", 2)]}, None, erasure, ctx)
    assert decisions == ["m-1"]
    totals = ledger("rainfocus")
    assert (totals["received"], totals["delivered"], totals["redelivered"]) == (1, 1, 1)


def test_com_08_of_two_invocations_settling_one_message_at_once_one_counts(queues: dict[str, str]) -> None:
    """A message's visibility ran out while its first invocation still ran: a second invocation gets it,
    neither sees the other settled before it decides; the one whose settlement is second counts it
    `redelivered`."""
    ctx = BatchContext("rainfocus", queues["dlq"], "state")
    skip = Outcome.skipped("consent", "consent 'marketing' is 'n'")

    def overlapped(records: Sequence[Mapping[str, Any]]) -> dict[str, RecordResult]:
        # the second invocation runs and settles meanwhile
        run_batch({"Records": [sqs_record({"n": 1}, "m-1", 2)]}, None, decided({"m-1": skip}), ctx)
        return dict(decided({"m-1": skip})(records))

    run_batch({"Records": [sqs_record({"n": 1}, "m-1", 1)]}, None, overlapped, ctx)
    totals = ledger("rainfocus")
    assert (totals["received"], totals["skipped"], totals["redelivered"]) == (1, 1, 1)
    assert totals["reason:skipped:consent"] == 1


def test_com_08_the_happy_path_writes_nothing_more_and_a_settled_skip_one_conditional_put(
    queues: dict[str, str],
) -> None:
    """Delivered first arrivals: no read and no write besides the ledger's (the order guard carries their
    lineage). A skip or rejection adds one conditional put; records received before add one read."""
    ctx = BatchContext("rainfocus", queues["dlq"], "state")
    calls = dynamodb_calls()
    delivered = {f"m-{i}": Outcome.delivered() for i in range(20)}
    run_batch({"Records": [sqs_record({"n": i}, f"m-{i}") for i in range(20)]}, None, decided(delivered), ctx)
    assert set(calls) == {"UpdateItem"}  # the ledger's, as before
    calls.clear()

    mixed = {"s-1": Outcome.skipped("consent"), "s-2": Outcome.delivered()}
    run_batch({"Records": [sqs_record({}, "s-1"), sqs_record({}, "s-2")]}, None, decided(mixed), ctx)
    assert calls.count("PutItem") == 1 and "GetItem" not in calls and "BatchGetItem" not in calls
    calls.clear()

    retried = {f"r-{i}": Outcome.delivered() for i in range(3)}
    run_batch({"Records": [sqs_record({}, f"r-{i}", 2) for i in range(3)]}, None, decided(retried), ctx)
    assert calls.count("BatchGetItem") == 1 and "PutItem" not in calls


def test_com_08_a_settled_message_is_remembered_by_its_lineage_for_longer_than_sqs_keeps_it(
    queues: dict[str, str],
) -> None:
    ctx = BatchContext("rainfocus", queues["dlq"], "state")
    before = time.time()
    run_batch({"Records": [sqs_record({}, "m-1")]}, None, decided({"m-1": Outcome.skipped("consent")}), ctx)
    key = {"pk": {"S": "settled#rainfocus#m-1"}, "sk": {"S": "message"}}
    item = boto3.client("dynamodb").get_item(TableName="state", Key=key)["Item"]
    expires = int(item["ttl"]["N"]) - before
    assert settled.QUEUE_RETENTION_SECONDS <= expires <= settled.RETENTION_SECONDS + 5
    assert set(item) == {"pk", "sk", "ttl"}  # a message id and a time: nothing of the event


@pytest.mark.parametrize("enabled", [True, False])
def test_a_batch_runs_with_the_cycle_collector_paused_and_leaves_it_as_found(
    queues: dict[str, str], enabled: bool
) -> None:
    """No full collection mid-batch (activation_core.collector); the collector's state is restored, even
    when the batch is interrupted."""
    seen: list[bool] = []

    class Interrupted(BaseException):  # what run_batch does not catch (it turns exceptions into retries)
        pass

    def decide(records: Sequence[Mapping[str, Any]]) -> dict[str, RecordResult]:
        seen.append(gc.isenabled())
        if len(seen) > 1:
            raise Interrupted
        return decided({"m-1": Outcome.delivered()})(records)

    event = {"Records": [sqs_record({"n": 1}, "m-1")]}
    context = BatchContext("rainfocus", queues["dlq"], "state")
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        assert run_batch(event, None, decide, context) == {"batchItemFailures": []}
        assert seen == [False] and gc.isenabled() is enabled
        with pytest.raises(Interrupted):
            run_batch(event, None, decide, context)
        assert seen == [False, False] and gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


# ------------------------------------------- COM-08: every message counted `received` exactly once
def test_com_08_a_message_whose_first_receive_never_reached_the_handler_is_received_once(
    queues: dict[str, str],
) -> None:
    """The event source mapping received it, the invocation never ran the handler (a cold start that
    timed out): its first receive the handler sees has a count of 2, and it is still counted once."""
    ctx = BatchContext("rainfocus", queues["dlq"], "state")
    run_batch({"Records": [sqs_record({}, "m-1", 2)]}, None, decided({"m-1": Outcome.delivered()}), ctx)
    totals = ledger("rainfocus")
    assert (totals["received"], totals["delivered"]) == (1, 1)
    assert ledger("rainfocus#inst")["received"] == ledger("rainfocus#inst#aud-1")["received"] == 1


def test_com_08_a_record_retried_on_every_receive_until_delivered_is_received_once(
    queues: dict[str, str],
) -> None:
    """Partial batch failures: the record fails on its first two receives (the first of which never
    reached the handler) and is delivered on the fourth; another record of the first batch is delivered
    there. Each counts `received` once, at every level of the ledger."""
    ctx = BatchContext("rainfocus", queues["dlq"], "state", max_receive_count=5)
    first = {"Records": [sqs_record({}, "m-1", 2), sqs_record({}, "m-2", 1)]}
    failing = {"m-1": Outcome.retry("http_503"), "m-2": Outcome.delivered()}
    assert run_batch(first, None, decided(failing), ctx) == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    run_batch({"Records": [sqs_record({}, "m-1", 3)]}, None, decided({"m-1": Outcome.retry("http_503")}), ctx)
    run_batch({"Records": [sqs_record({}, "m-1", 4)]}, None, decided({"m-1": Outcome.delivered()}), ctx)
    totals = ledger("rainfocus")
    assert (totals["received"], totals["delivered"], totals["retried"]) == (2, 2, 2)
    assert ledger("rainfocus#inst")["received"] == ledger("rainfocus#inst#aud-1")["received"] == 2


def test_com_08_a_record_whose_invocation_died_then_retried_is_received_once(queues: dict[str, str]) -> None:
    ctx = BatchContext("rainfocus", queues["dlq"], "state")
    with pytest.raises(InvocationKilled):
        run_batch({"Records": [sqs_record({}, "m-1", 1)]}, None, killed, ctx)
    run_batch({"Records": [sqs_record({}, "m-1", 2)]}, None, decided({"m-1": Outcome.retry("timeout")}), ctx)
    run_batch(
        {"Records": [sqs_record({}, "m-1", 3)]}, None, decided({"m-1": Outcome.skipped("consent")}), ctx
    )
    totals = ledger("rainfocus")
    assert (totals["received"], totals["skipped"], totals["retried"]) == (1, 1, 1)


def test_com_08_a_retry_whose_ledger_write_failed_is_received_once_later(
    queues: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ledger write of the retrying receive failed (logged, delivery goes on): that receive was not
    counted, so nothing may mark it counted; the next receive counts it."""
    ctx = BatchContext("rainfocus", queues["dlq"], "state")
    with monkeypatch.context() as patched:
        patched.setattr(batch, "_add_to_ledger", lambda *_: False)
        retry = decided({"m-1": Outcome.retry("http_503")})
        run_batch({"Records": [sqs_record({}, "m-1", 1)]}, None, retry, ctx)
    run_batch({"Records": [sqs_record({}, "m-1", 2)]}, None, decided({"m-1": Outcome.delivered()}), ctx)
    totals = ledger("rainfocus")
    assert (totals["received"], totals["delivered"]) == (1, 1)


def test_com_08_a_retry_that_reached_no_instance_is_received_at_every_level_once(
    queues: dict[str, str],
) -> None:
    """A receive retried before any instance decided (an invalid config, a failed decision) is not
    counted yet: the receive that reaches the instance counts it at the destination, the instance and
    the audience alike."""
    ctx = BatchContext("rainfocus", queues["dlq"], "state")

    def no_instance(records: Sequence[Mapping[str, Any]]) -> dict[str, RecordResult]:
        return {str(r["messageId"]): RecordResult(Outcome.retry("invalid_config"), [], 1) for r in records}

    run_batch({"Records": [sqs_record({}, "m-1", 1)]}, None, no_instance, ctx)
    run_batch({"Records": [sqs_record({}, "m-1", 2)]}, None, decided({"m-1": Outcome.delivered()}), ctx)
    assert ledger("rainfocus")["received"] == 1
    assert ledger("rainfocus#inst")["received"] == ledger("rainfocus#inst#aud-1")["received"] == 1


def test_com_08_a_waiting_record_whose_delete_failed_is_received_once(queues: dict[str, str]) -> None:
    """A record told to wait is requeued and this message deleted; the delete fails, so SQS delivers the
    original again (count 2) besides the copy. Neither is counted `received` a second time."""
    ctx = BatchContext("outreach", queues["dlq"], "state")
    wait = Outcome.retry("rate_budget_exhausted", "hourly quota", retry_after=0.0001, waiting=True)
    run_batch({"Records": [sqs_record({"n": 1}, "m-1", 1)]}, None, decided({"m-1": wait}), ctx)
    copy = requeued_copy()
    run_batch({"Records": [sqs_record({"n": 1}, "m-1", 2)]}, None, decided({"m-1": Outcome.delivered()}), ctx)
    run_batch({"Records": [copy]}, None, decided({copy["messageId"]: Outcome.delivered()}), ctx)
    totals = ledger("outreach")
    assert (totals["received"], totals["requeued"]) == (1, 1)


def test_com_08_marking_retried_records_costs_a_write_per_25_and_their_next_receive_one_read_per_50(
    queues: dict[str, str],
) -> None:
    """Issue 18 counts requests per record: 30 records retried after a partial failure add 2
    BatchWriteItem requests (no PutItem per record); their next receive reads them in 1 BatchGetItem (two
    keys each), and delivered then writes nothing besides the ledger (the order guard's commit is the
    pipeline's, not counted here)."""
    ctx = BatchContext("rainfocus", queues["dlq"], "state")
    ids = [f"r-{i}" for i in range(30)]
    calls = dynamodb_calls()
    retry = dict.fromkeys(ids, Outcome.retry("http_503"))
    run_batch({"Records": [sqs_record({}, m, 1) for m in ids]}, None, decided(retry), ctx)
    assert sorted(set(calls)) == ["BatchWriteItem", "UpdateItem"]
    assert calls.count("BatchWriteItem") == 2
    calls.clear()
    delivered = dict.fromkeys(ids, Outcome.delivered())
    run_batch({"Records": [sqs_record({}, m, 2) for m in ids]}, None, decided(delivered), ctx)
    assert sorted(set(calls)) == ["BatchGetItem", "UpdateItem"]
    assert calls.count("BatchGetItem") == 1
    totals = ledger("rainfocus")
    assert (totals["received"], totals["delivered"], totals["retried"]) == (30, 30, 30)

"""SQS -> Lambda event source mappings with AWS semantics, replacing moto's inline dispatch.

moto 5.2.5 invokes a mapped function inside SendMessage, one record at a time, with fake
attributes, and ignores `batchItemFailures`. This poller reads the real mappings from moto,
receives real batches and deletes only what AWS would delete:
- a FunctionError fails the whole batch;
- with ReportBatchItemFailures, the listed ids fail; an invalid response fails the whole batch;
- without it, success deletes the whole batch.
`fast_retry=True` makes the *failed* messages visible again at once (ChangeMessageVisibility 0), so
retries, ApproximateReceiveCount and the redrive to the DLQ happen without waiting out the queue's
visibility timeout. A visibility the handler itself set on a failed message (a 429 reset time, the
next allowed token mint) is honoured: the poller compares each message's visibility deadline in
moto's backend (the server runs in this process) before and after the invocation.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config
from moto.sqs.models import Queue, sqs_backends

log = logging.getLogger(__name__)
_QUEUE_COUNTS = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")


def detach_moto_inline_esm() -> None:
    """Make moto's Queue forget its mappings, so SendMessage no longer invokes Lambda by itself."""
    Queue.lambda_event_source_mappings = property(lambda self: {}, lambda self, value: None)  # type: ignore[assignment]


def moto_inline_esm_detached() -> bool:
    return isinstance(Queue.__dict__.get("lambda_event_source_mappings"), property)


class SqsEsmPoller:
    """Polls every enabled SQS mapping in moto and invokes its function through moto's Invoke API."""

    def __init__(self, endpoint_url: str, *, region: str = "us-east-1", fast_retry: bool = True) -> None:
        detach_moto_inline_esm()
        kwargs: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "region_name": region,
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }
        self._sqs = boto3.client("sqs", config=Config(retries={"total_max_attempts": 1}), **kwargs)
        # Invoke blocks while the handler runs: allow the longest Lambda timeout.
        config = Config(retries={"total_max_attempts": 1}, read_timeout=905, max_pool_connections=32)
        self._lambda = boto3.client("lambda", config=config, **kwargs)
        self.region = region
        self.fast_retry = fast_retry
        self._urls: dict[str, str] = {}
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="esm")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def mappings(self) -> list[dict[str, Any]]:
        """Enabled SQS event source mappings, as moto reports them."""
        result: list[dict[str, Any]] = []
        for page in self._lambda.get_paginator("list_event_source_mappings").paginate():
            result += page["EventSourceMappings"]
        return [m for m in result if ":sqs:" in m["EventSourceArn"] and m.get("State") == "Enabled"]

    def poll_once(self, wait_seconds: int = 0) -> int:
        """One receive + invoke + delete round on every mapping (concurrently); messages processed."""
        return sum(self._pool.map(lambda m: self._poll_mapping(m, wait_seconds), self.mappings()))

    def drain(self, max_rounds: int = 50, until: Callable[[], bool] | None = None) -> int:
        """Poll until every mapped queue is empty (or `until()` is true, or max_rounds per mapping);
        messages processed.

        Each mapping polls on its own thread, as each AWS event source mapping does, so a slow
        destination does not hold back the others. Rounds that find nothing while messages are still
        in flight long-poll for 1 s, so a visibility timeout or a delay can pass without sleeps here.
        """
        return sum(self._pool.map(lambda m: self._drain_mapping(m, max_rounds, until), self.mappings()))

    def _drain_mapping(
        self, mapping: dict[str, Any], max_rounds: int, until: Callable[[], bool] | None
    ) -> int:
        total = 0
        for _ in range(max_rounds):
            processed = self._poll_mapping(mapping, 0)
            total += processed
            if until is not None and until():
                break
            if not processed:
                if self._pending_on(mapping) == 0:
                    break
                total += self._poll_mapping(mapping, 1)
        return total

    def pending(self) -> int:
        """Messages visible, in flight or delayed on all mapped queues."""
        return sum(self._pending_on(m) for m in self.mappings())

    def _pending_on(self, mapping: dict[str, Any]) -> int:
        attrs = self._sqs.get_queue_attributes(
            QueueUrl=self._url(mapping["EventSourceArn"]),
            AttributeNames=[*_QUEUE_COUNTS, "ApproximateNumberOfMessagesDelayed"],
        )["Attributes"]
        return sum(int(v) for v in attrs.values())

    def run_in_background(self, wait_seconds: int = 1) -> None:
        """Poll continuously in a daemon thread (for demos); stop() ends it."""
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    if not self.poll_once(wait_seconds=wait_seconds):
                        self._stop.wait(0.2)
                except Exception:
                    log.exception("esm poller round failed")
                    self._stop.wait(1)

        self._thread = threading.Thread(target=loop, name="sqs-esm-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def close(self) -> None:
        self.stop()
        self._pool.shutdown(wait=True)

    # --- one mapping ---------------------------------------------------------------------------

    def _url(self, queue_arn: str) -> str:
        if queue_arn not in self._urls:
            _, _, _, _, account, name = queue_arn.split(":")
            self._urls[queue_arn] = self._sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)[
                "QueueUrl"
            ]
        return self._urls[queue_arn]

    def _poll_mapping(self, mapping: dict[str, Any], wait_seconds: int) -> int:
        url = self._url(mapping["EventSourceArn"])
        batch_size = int(mapping.get("BatchSize") or 10)
        messages: list[dict[str, Any]] = []
        while len(messages) < batch_size:  # MaximumBatchingWindowInSeconds is ignored: take what is there
            got = self._sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(10, batch_size - len(messages)),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0 if messages else wait_seconds,
            ).get("Messages", [])
            if not got:
                break
            messages += got
        if not messages:
            return 0
        deadlines = _visibility_deadlines(mapping["EventSourceArn"], messages)
        event = {"Records": [self._record(m, mapping["EventSourceArn"]) for m in messages]}
        response = self._lambda.invoke(
            FunctionName=mapping["FunctionArn"], Payload=json.dumps(event).encode()
        )
        payload = response["Payload"].read()
        failed = self._failed_ids(mapping, messages, response.get("FunctionError"), payload)
        done = [m for m in messages if m["MessageId"] not in failed]
        retry = [m for m in messages if m["MessageId"] in failed]
        for chunk in _chunks(done):
            self._sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        if self.fast_retry:
            # Only messages whose deadline the handler left alone; a deadline it set is honoured.
            after = _visibility_deadlines(mapping["EventSourceArn"], retry)
            retry = [m for m in retry if after.get(m["ReceiptHandle"]) == deadlines.get(m["ReceiptHandle"])]
            for chunk in _chunks(retry):
                self._sqs.change_message_visibility_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                        for i, m in enumerate(chunk)
                    ],
                )
        return len(messages)

    @staticmethod
    def _failed_ids(
        mapping: dict[str, Any], messages: list[dict[str, Any]], error: str | None, payload: bytes
    ) -> set[str]:
        """AWS semantics for which messages of a batch failed."""
        every = {m["MessageId"] for m in messages}
        if error:
            return every
        if "ReportBatchItemFailures" not in (mapping.get("FunctionResponseTypes") or []):
            return set()
        reported = _reported_failures(payload)
        # An invalid response or an empty/null/unknown itemIdentifier fails the whole batch.
        return every if reported is None or not reported <= every else reported

    def _record(self, m: dict[str, Any], queue_arn: str) -> dict[str, Any]:
        record: dict[str, Any] = {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": dict(m.get("Attributes", {})),
            "messageAttributes": {k: _lambda_attr(v) for k, v in m.get("MessageAttributes", {}).items()},
            "md5OfBody": m["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": self.region,
        }
        if "MD5OfMessageAttributes" in m:
            record["md5OfMessageAttributes"] = m["MD5OfMessageAttributes"]
        return record


def _visibility_deadlines(queue_arn: str, messages: list[dict[str, Any]]) -> dict[str, float]:
    """Receipt handle -> the time the message becomes visible again, read from moto's backend
    (SQS has no API for it)."""
    _, _, _, region, account, name = queue_arn.split(":")
    queue = sqs_backends[account][region].queues.get(name)
    if queue is None:
        return {}
    wanted = {m["ReceiptHandle"] for m in messages}
    return {str(m.receipt_handle): m.visible_at for m in list(queue._messages) if m.receipt_handle in wanted}


def _reported_failures(payload: bytes) -> set[str] | None:
    """Ids listed in a ReportBatchItemFailures response; None when the response is invalid."""
    try:
        response = json.loads(payload) if payload.strip() else None
    except ValueError:
        return None
    if response is None:
        return set()
    items = response.get("batchItemFailures") if isinstance(response, dict) else "invalid"
    if items is None:
        return set()
    if not isinstance(items, list):
        return None
    ids = [item.get("itemIdentifier") if isinstance(item, dict) else None for item in items]
    return {i for i in ids if isinstance(i, str)} if all(isinstance(i, str) and i for i in ids) else None


def _lambda_attr(attr: dict[str, Any]) -> dict[str, Any]:
    """SQS API message attribute -> the camelCase shape Lambda puts in the event."""
    out: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": attr["DataType"]}
    if "StringValue" in attr:
        out["stringValue"] = attr["StringValue"]
    if "BinaryValue" in attr:
        out["binaryValue"] = base64.b64encode(attr["BinaryValue"]).decode()
    return out


def _chunks(items: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [items[i : i + 10] for i in range(0, len(items), 10)]

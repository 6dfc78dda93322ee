"""AWS limits the local stack does not enforce (moto accepts what AWS refuses), checked against the
documented rule on the translated template. docs/decisions.md (2026-12-07) lists each limit and the
check that guards it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from activation_core.batch import SQS_MAX_VISIBILITY, VISIBILITY_RECEIPT_MARGIN
from tests.support import parameter_bound
from tests.support import properties_of_type as of_type

TEMPLATE = Path(__file__).resolve().parents[3] / "template.yaml"
SQS_MAX_DELAY_SECONDS = 900
SQS_MAX_RETENTION_SECONDS = 14 * 24 * 3600
SQS_MAX_MESSAGE_BYTES = 256 * 1024
EVENTBRIDGE_MAX_EVENT_BYTES = 256 * 1024


def test_a_delayed_record_is_received_and_run_within_the_visibility_margin(resources: dict[str, Any]) -> None:
    """SQS: a message's visibility may end at most 12 h after it was received. The functions ask for
    at most 12 h minus VISIBILITY_RECEIPT_MARGIN, so the margin must cover the time between the receipt
    (the batching window) and the end of the invocation (the function timeout)."""
    functions = of_type(resources, "AWS::Lambda::Function")
    mappings = of_type(resources, "AWS::Lambda::EventSourceMapping")
    assert mappings
    for mapping in mappings.values():
        function = functions[mapping["FunctionName"]["Ref"]]
        window = mapping.get("MaximumBatchingWindowInSeconds", 0)
        assert function["Timeout"] + window <= VISIBILITY_RECEIPT_MARGIN < SQS_MAX_VISIBILITY


def test_every_queue_stays_within_sqs_limits(resources: dict[str, Any]) -> None:
    for name, queue in of_type(resources, "AWS::SQS::Queue").items():
        assert 0 <= queue.get("VisibilityTimeout", 30) <= SQS_MAX_VISIBILITY, name
        assert 0 <= queue.get("DelaySeconds", 0) <= SQS_MAX_DELAY_SECONDS, name
        retention = queue.get("MessageRetentionPeriod", 345600)
        assert parameter_bound(retention, "MinValue") >= 60, name
        assert parameter_bound(retention, "MaxValue") <= SQS_MAX_RETENTION_SECONDS, name
        # EventBridge delivers events of up to 256 KB: a queue taking less would drop them.
        assert queue.get("MaximumMessageSize", SQS_MAX_MESSAGE_BYTES) >= EVENTBRIDGE_MAX_EVENT_BYTES, name

"""CloudWatch alarm evaluation for the local stack, for the alarms on SQS queue depth.

moto stores alarms (describe_alarms, set_alarm_state) but never evaluates them, never notifies their
actions, and its SQS publishes no metrics. This does, for the metrics that are a queue's own
attributes, what CloudWatch does (CloudWatch User Guide, "Using Amazon CloudWatch alarms" and "Amazon
SQS metrics"): AWS/SQS `ApproximateNumberOfMessagesVisible` (`...NotVisible`, `...Delayed`) per
`QueueName` is published from the queue's attribute `ApproximateNumberOfMessages` (and the like); it is compared with the alarm's threshold by its
operator, the alarm moves to ALARM or OK (`SetAlarmState`), and on a change the alarm's actions for
the new state get CloudWatch's notification (the documented JSON: AlarmName, NewStateValue,
OldStateValue, NewStateReason, StateChangeTime, Region, AlarmArn, Trigger) published to their SNS
topics. Alarms on other metrics, or needing several datapoints, are left alone (returned as skipped). One evaluation is one period:
call it when the local stack would have published the next datapoint (tests: after a drain).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# AWS/SQS metric -> the queue attribute it is published from ("Available CloudWatch metrics for Amazon SQS").
QUEUE_ATTRIBUTE_METRICS = {
    "ApproximateNumberOfMessagesVisible": "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible": "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed": "ApproximateNumberOfMessagesDelayed",
}
_COMPARE = {
    "GreaterThanThreshold": lambda value, threshold: value > threshold,
    "GreaterThanOrEqualToThreshold": lambda value, threshold: value >= threshold,
    "LessThanThreshold": lambda value, threshold: value < threshold,
    "LessThanOrEqualToThreshold": lambda value, threshold: value <= threshold,
}


@dataclass(frozen=True)
class Evaluation:
    alarm_name: str
    value: float | None  # None: not an alarm this evaluator can read (skipped)
    old_state: str
    new_state: str
    notified: tuple[str, ...]  # topic ARNs a notification was published to


def evaluate_queue_alarms(cloudwatch: Any, sqs: Any, sns: Any) -> list[Evaluation]:
    """Evaluate every metric alarm once against the queues' current depth; notify state changes."""
    evaluations = []
    for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm"]):
        for alarm in page["MetricAlarms"]:
            evaluations.append(_evaluate(alarm, cloudwatch, sqs, sns))
    return evaluations


def _evaluate(alarm: dict[str, Any], cloudwatch: Any, sqs: Any, sns: Any) -> Evaluation:
    name, old = alarm["AlarmName"], alarm["StateValue"]
    dimensions = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
    compare = _COMPARE.get(alarm.get("ComparisonOperator", ""))
    readable = (
        alarm.get("Namespace") == "AWS/SQS"
        and alarm.get("MetricName") in QUEUE_ATTRIBUTE_METRICS
        and "QueueName" in dimensions
        and compare is not None
        # One evaluation is one period: alarms needing several datapoints are beyond this evaluator.
        and alarm.get("EvaluationPeriods", 1) == 1
        and alarm.get("DatapointsToAlarm", 1) == 1
    )
    if not readable or compare is None:
        return Evaluation(name, None, old, old, ())
    url = sqs.get_queue_url(QueueName=dimensions["QueueName"])["QueueUrl"]
    metric = alarm["MetricName"]
    attribute = QUEUE_ATTRIBUTE_METRICS[metric]
    value = float(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[attribute])["Attributes"][attribute])
    threshold = float(alarm["Threshold"])
    new = "ALARM" if compare(value, threshold) else "OK"
    if new == old:
        return Evaluation(name, value, old, new, ())
    reason = (
        f"Threshold Crossed: 1 datapoint [{value:g}] was "
        f"{'' if new == 'ALARM' else 'not '}{alarm['ComparisonOperator']} the threshold ({threshold:g})."
    )
    cloudwatch.set_alarm_state(AlarmName=name, StateValue=new, StateReason=reason)
    actions = alarm.get("AlarmActions", []) if new == "ALARM" else alarm.get("OKActions", [])
    topics = (
        tuple(a for a in actions if a.startswith("arn:aws:sns:")) if alarm.get("ActionsEnabled", True) else ()
    )
    message = json.dumps(
        {
            "AlarmName": name,
            "AlarmDescription": alarm.get("AlarmDescription"),
            "AlarmArn": alarm.get("AlarmArn"),
            "NewStateValue": new,
            "OldStateValue": old,
            "NewStateReason": reason,
            "StateChangeTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
            "Region": cloudwatch.meta.region_name,
            "Trigger": {
                "MetricName": metric,
                "Namespace": alarm["Namespace"],
                "StatisticType": "Statistic",
                "Statistic": str(alarm.get("Statistic", "")).upper(),
                "Dimensions": [{"name": k, "value": v} for k, v in dimensions.items()],
                "Period": alarm.get("Period"),
                "EvaluationPeriods": alarm.get("EvaluationPeriods"),
                "ComparisonOperator": alarm["ComparisonOperator"],
                "Threshold": threshold,
                "TreatMissingData": alarm.get("TreatMissingData", "missing"),
            },
        }
    )
    for topic in topics:
        sns.publish(TopicArn=topic, Subject=f'{new}: "{name}"'[:100], Message=message)
    return Evaluation(name, value, old, new, topics)

"""Close the moto 5.2.5 CloudFormation / Step Functions gaps that matter for this template.

Each patch is small and upstreamable; `UPSTREAM` keeps moto's own objects so the test suite can
check that each gap is still there (a moto upgrade that fixes one makes a test say "drop the patch").
See /work/shared/reference/local-stack.md for the measurements behind every item.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import uuid
import warnings
from collections.abc import Callable
from datetime import datetime
from typing import Any

from moto.awslambda.models import LambdaFunction, LayerVersion
from moto.cloudformation import parsing
from moto.cloudformation.exceptions import UnformattedGetAttTemplateException
from moto.cloudwatch.models import Dimension, Metric, MetricDataQuery, MetricStat, cloudwatch_backends
from moto.core.common_models import CloudFormationModel
from moto.dynamodb.models import DynamoDBBackend
from moto.events.models import EventBus, Rule
from moto.s3.models import FakeBucket, s3_backends
from moto.scheduler.models import scheduler_backends
from moto.secretsmanager.models import secretsmanager_backends
from moto.sqs.models import sqs_backends
from moto.stepfunctions import responses as sfn_responses
from moto.stepfunctions.models import StateMachine
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
    StateTaskServiceSfn,
)
from moto.stepfunctions.parser.models import StepFunctionsParserBackend

UPSTREAM: dict[str, Any] = {}
NEW_CFN_TYPES = (
    "AWS::SecretsManager::Secret",
    "AWS::CloudWatch::Alarm",
    "AWS::Scheduler::Schedule",
    "AWS::SQS::QueuePolicy",
)
# Every QueuePolicy deployed: (logical id, queue urls, policy) - also applied as the queues' Policy attribute.
QUEUE_POLICIES: list[dict[str, Any]] = []
_applied = False


def make_dynamodb_writes_atomic(setattr_: Callable[[Any, str, Any], None] = setattr) -> None:
    """moto checks a write's condition and then stores the item without a lock; DynamoDB serialises
    conditional writes per item. Without this, two racing invocations could both win a lease."""
    guard = threading.RLock()

    def serialised(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with guard:
                return method(*args, **kwargs)

        return wrapper

    for name in ("put_item", "update_item", "delete_item", "get_item"):
        setattr_(DynamoDBBackend, name, serialised(getattr(DynamoDBBackend, name)))


def apply() -> None:
    """Patch moto in-process (idempotent). Must run in the process that hosts the moto server."""
    global _applied
    if _applied:
        return
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # Known and accepted: the landing bucket's TLS-only policy has no moto model and no effect on
    # 127.0.0.1 (README, "The local stack"); the template test still checks it exists.
    warnings.filterwarnings("ignore", message=".*AWS::S3::BucketPolicy.*")
    make_dynamodb_writes_atomic()
    UPSTREAM.update(
        {
            "EventBus.physical_resource_id": getattr(EventBus, "physical_resource_id", None),
            "LayerVersion.physical_resource_id": getattr(LayerVersion, "physical_resource_id", None),
            "LayerVersion.cloudformation_name_type": LayerVersion.cloudformation_name_type(),
            "LambdaFunction.create_from_cloudformation_json": LambdaFunction.create_from_cloudformation_json,
            "StateMachine.create_from_cloudformation_json": StateMachine.create_from_cloudformation_json,
            "StateMachine.delete_from_cloudformation_json": StateMachine.delete_from_cloudformation_json,
            "StepFunctionsParserBackend.start_execution": StepFunctionsParserBackend.start_execution,
            "FakeBucket.create_from_cloudformation_json": FakeBucket.create_from_cloudformation_json,
            "Rule.send_to_targets": Rule.send_to_targets,
            "StateTaskServiceSfn._normalise_parameters": StateTaskServiceSfn._normalise_parameters,
            "StateTaskServiceSfn._normalise_response": StateTaskServiceSfn._normalise_response,
            "cfn_types": {
                m.cloudformation_type()
                for m in CloudFormationModel.__subclasses__()
                if m.__module__.startswith("moto.")
            },
        }
    )
    bus: Any = EventBus
    layer: Any = LayerVersion
    function: Any = LambdaFunction
    machine: Any = StateMachine
    sfn_backend: Any = StepFunctionsParserBackend
    # Ref must give a string: the bus name / the layer version ARN (moto returns the Python object).
    bus.physical_resource_id = property(lambda self: self.name)
    layer.physical_resource_id = property(lambda self: self.arn)
    # `LayerName` was ignored (moto looked for a "LayerVersion" property): layers got generated names.
    layer.cloudformation_name_type = staticmethod(lambda: "LayerName")
    function.create_from_cloudformation_json = classmethod(_function_with_layers)
    machine.create_from_cloudformation_json = classmethod(_create_state_machine)
    machine.delete_from_cloudformation_json = classmethod(_delete_state_machine)
    sfn_backend.start_execution = _start_execution_named
    bucket_model: Any = FakeBucket
    rule: Any = Rule
    bucket_model.create_from_cloudformation_json = classmethod(_bucket_with_notifications)
    rule.send_to_targets = _send_to_targets_and_state_machines
    sfn_task: Any = StateTaskServiceSfn
    sfn_task._normalise_parameters = _sfn_task_parameters
    sfn_task._normalise_response = _sfn_task_response
    for cache in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cache.cache_clear()  # our models below are new direct subclasses of CloudFormationModel
    _applied = True


# --- Lambda: Layers ------------------------------------------------------------------------------


def _function_with_layers(
    cls: type[LambdaFunction],
    /,
    resource_name: str,
    cfn: dict[str, Any],
    account_id: str,
    region: str,
    **kw: Any,
) -> LambdaFunction:
    """moto's CFN Function drops `Layers`; attach them after creation like update_configuration does."""
    upstream = UPSTREAM["LambdaFunction.create_from_cloudformation_json"]
    fn: LambdaFunction = upstream.__func__(cls, resource_name, cfn, account_id, region, **kw)
    if layers := cfn["Properties"].get("Layers"):
        fn.layers = fn._get_layers_data(layers)
    return fn


# --- Step Functions ------------------------------------------------------------------------------


def _create_state_machine(
    cls: type[StateMachine],
    /,
    resource_name: str,
    cfn: dict[str, Any],
    account_id: str,
    region: str,
    **kw: Any,
) -> StateMachine:
    """Read `Definition` or `DefinitionString`, apply `DefinitionSubstitutions`, use the executing backend."""
    props = cfn["Properties"]
    definition = props.get("DefinitionString", "")
    if isinstance(props.get("Definition"), dict):
        definition = json.dumps(props["Definition"])
    subs = {
        k: v if isinstance(v, str) else json.dumps(v)
        for k, v in props.get("DefinitionSubstitutions", {}).items()
    }
    definition = re.sub(r"\$\{([^}]+)\}", lambda m: subs.get(m.group(1), m.group(0)), definition)
    tags = [{"key": t["Key"], "value": t["Value"]} for t in props.get("Tags", [])]
    backend = sfn_responses.get_backend(account_id, region)  # honours {"execute_state_machine": true}
    return backend.create_state_machine(
        props.get("StateMachineName", resource_name),
        definition,
        props.get("RoleArn", ""),
        tags=tags,
        sm_type=props.get("StateMachineType", "STANDARD"),
    )


def _delete_state_machine(
    cls: type[StateMachine], /, resource_name: str, cfn: Any, account_id: str, region: str
) -> None:
    sfn_responses.get_backend(account_id, region).delete_state_machine(resource_name)


def _start_execution_named(
    self: StepFunctionsParserBackend, state_machine_arn: str, name: str | None = None, *a: Any, **kw: Any
) -> Any:
    """Without `name`, moto names every execution `None` (then ExecutionAlreadyExists); AWS uses a UUID."""
    upstream = UPSTREAM["StepFunctionsParserBackend.start_execution"]
    return upstream(self, state_machine_arn, name or str(uuid.uuid4()), *a, **kw)


# --- S3 -> EventBridge -> Step Functions (audience snapshots) ----------------------------------------


def _bucket_with_notifications(
    cls: type[FakeBucket], /, resource_name: str, cfn: dict[str, Any], account_id: str, region: str, **kw: Any
) -> FakeBucket:
    """moto's CFN Bucket drops `NotificationConfiguration`: S3 never sent its events to EventBridge."""
    upstream = UPSTREAM["FakeBucket.create_from_cloudformation_json"]
    bucket: FakeBucket = upstream.__func__(cls, resource_name, cfn, account_id, region, **kw)
    notifications = cfn.get("Properties", {}).get("NotificationConfiguration") or {}
    if _bool((notifications.get("EventBridgeConfiguration") or {}).get("EventBridgeEnabled", False)):
        s3_backends[account_id]["global"].put_bucket_notification_configuration(
            bucket.name, {"EventBridgeConfiguration": {}}
        )
    return bucket


_RULE_TARGETS_LOCK = threading.Lock()


def _is_state_machine(arn: str) -> bool:
    return ":states:" in arn and ":stateMachine:" in arn


def _send_to_targets_and_state_machines(self: Rule, event: Any, transform_input: bool = True) -> None:
    """moto's rules raise NotImplementedError on a Step Functions target; AWS starts an execution with
    the (transformed) event. S3's own events come with transform_input=False in moto; AWS applies the
    InputTransformer to them too."""
    machines = [t for t in self.targets if _is_state_machine(t["Arn"])]
    if not machines:
        UPSTREAM["Rule.send_to_targets"](self, event, transform_input)
        return
    others = [t for t in self.targets if not _is_state_machine(t["Arn"])]
    if others:
        with _RULE_TARGETS_LOCK:  # upstream iterates self.targets: hand it the ones it supports
            everything, self.targets = self.targets, others
            try:
                UPSTREAM["Rule.send_to_targets"](self, event, transform_input)
            finally:
                self.targets = everything
    if not self.event_pattern.matches_event(event):
        return
    for target in machines:
        arn = target["Arn"]
        transformer = target.get("InputTransformer") or {}
        payload = _transform(transformer, event) if transformer else event
        account, region = arn.split(":")[4], arn.split(":")[3]
        sfn_responses.get_backend(account, region).start_execution(
            arn, str(uuid.uuid4()), json.dumps(payload)
        )


def _transform(transformer: dict[str, Any], event: Any) -> Any:
    """EventBridge's InputTransformer as AWS documents it: a placeholder outside quotes becomes the JSON
    value (a string gets its quotes), inside quotes the bare text. moto inserts bare text everywhere,
    so `{"bucket": <bucket>}` is not JSON there."""
    from jsonpath_ng.ext import parse as jsonpath  # type: ignore[attr-defined]

    values: dict[str, Any] = {}
    for name, path in (transformer.get("InputPathsMap") or {}).items():
        found = jsonpath(path).find(event)
        values[name] = found[0].value if found else None
    template = str(transformer.get("InputTemplate") or "")

    def substitute(match: re.Match[str]) -> str:
        inside_string = template[: match.start()].replace('\\"', "").count('"') % 2 == 1
        value = values.get(match.group(1))
        if inside_string:
            return str(value) if not isinstance(value, dict | list) else json.dumps(value)
        return json.dumps(value)

    return json.loads(re.sub(r"<([A-Za-z0-9_.-]+)>", substitute, template))


def _sfn_task_parameters(
    self: StateTaskServiceSfn,
    parameters: dict[str, Any],
    boto_service_name: str | None = None,
    service_action_name: str | None = None,
) -> None:
    """`arn:aws:states:::states:startExecution[.sync[:2]]`: ASL names parameters as the API does
    (`StateMachineArn`, `Input`, `Name`); moto hands them to botocore unchanged, whose members are
    `stateMachineArn`, `input`, `name` (a KeyError, so every nested execution failed)."""
    UPSTREAM["StateTaskServiceSfn._normalise_parameters"](
        self, parameters, boto_service_name, service_action_name
    )  # Input as JSON text
    for key in list(parameters):
        member = key[:1].lower() + key[1:]
        if member != key:
            parameters[member] = parameters.pop(key)


def _sfn_task_response(
    self: StateTaskServiceSfn,
    response: Any,
    boto_service_name: str | None = None,
    service_action_name: str | None = None,
) -> None:
    """The task's result as Step Functions gives it: `ExecutionArn`, `Output`, `Status`, ... with dates
    as epoch milliseconds (moto left botocore's `executionArn`, `output` and datetimes, so the sync
    resolver's own `["ExecutionArn"]` failed)."""
    if not isinstance(response, dict):
        return
    for key in list(response):
        value = response.pop(key)
        if isinstance(value, datetime):
            value = int(value.timestamp() * 1000)
        response[key[:1].upper() + key[1:]] = value


# --- Resource types moto's CloudFormation silently skips -----------------------------------------


class _Record:
    """Mixin: a deployed resource seen by CloudFormation (Ref = physical id, GetAtt from `attrs`)."""

    ATTRS: tuple[str, ...] = ()
    CFN_TYPE = ""  # e.g. "AWS::CloudWatch::Alarm"
    NAME_PROPERTY = ""  # the property that names the resource (CloudFormation generates one if unset)

    # moto finds models among CloudFormationModel's direct subclasses, so each model names both bases;
    # these two come first in their MRO.
    @classmethod
    def cloudformation_type(cls) -> str:
        return cls.CFN_TYPE

    @classmethod
    def cloudformation_name_type(cls) -> str:
        return cls.NAME_PROPERTY

    def __init__(self, physical_id: str, attrs: dict[str, Any], **state: Any) -> None:
        self.physical_id = physical_id
        self.attrs = attrs
        self.state = state

    @property
    def physical_resource_id(self) -> str:
        return self.physical_id

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.ATTRS

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name not in self.attrs:
            raise UnformattedGetAttTemplateException()
        return self.attrs[attribute_name]


class SecretsManagerSecret(_Record, CloudFormationModel):
    """AWS::SecretsManager::Secret; Ref = ARN; SecretString or GenerateSecretString; KmsKeyId."""

    ATTRS = ("Id",)
    CFN_TYPE = "AWS::SecretsManager::Secret"
    NAME_PROPERTY = "Name"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kw: Any,
    ) -> SecretsManagerSecret:
        props = cloudformation_json["Properties"]
        backend = secretsmanager_backends[account_id][region_name]
        value = props.get("SecretString")
        if (gen := props.get("GenerateSecretString")) is not None:
            password = json.loads(
                backend.get_random_password(
                    password_length=int(gen.get("PasswordLength", 32)),
                    exclude_characters=gen.get("ExcludeCharacters", ""),
                    exclude_numbers=_bool(gen.get("ExcludeNumbers")),
                    exclude_punctuation=_bool(gen.get("ExcludePunctuation")),
                    exclude_uppercase=_bool(gen.get("ExcludeUppercase")),
                    exclude_lowercase=_bool(gen.get("ExcludeLowercase")),
                    include_space=_bool(gen.get("IncludeSpace")),
                    require_each_included_type=_bool(gen.get("RequireEachIncludedType", True)),
                )
            )["RandomPassword"]
            value = password
            if "SecretStringTemplate" in gen:
                value = json.dumps(
                    {**json.loads(gen["SecretStringTemplate"]), gen["GenerateStringKey"]: password}
                )
        backend.create_secret(
            name=resource_name,
            secret_string=value,
            secret_binary=None,
            description=props.get("Description"),
            tags=props.get("Tags"),
            kms_key_id=props.get("KmsKeyId"),
            client_request_token=None,
            replica_regions=props.get("ReplicaRegions", []),
            force_overwrite=False,
        )
        arn = backend.describe_secret(resource_name).arn
        return cls(arn, {"Id": arn}, region=region_name)

    def delete(self, account_id: str, region_name: str) -> None:
        secretsmanager_backends[account_id][region_name].delete_secret(self.physical_id, None, True)


class CloudWatchAlarm(_Record, CloudFormationModel):
    """AWS::CloudWatch::Alarm (never evaluated by moto, but visible in describe_alarms)."""

    ATTRS = ("Arn",)
    CFN_TYPE = "AWS::CloudWatch::Alarm"
    NAME_PROPERTY = "AlarmName"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kw: Any,
    ) -> CloudWatchAlarm:
        p = cloudformation_json["Properties"]
        alarm = cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=resource_name,
            namespace=p.get("Namespace"),
            metric_name=p.get("MetricName"),
            metric_data_queries=[_metric_query(q) for q in p["Metrics"]] if "Metrics" in p else None,
            comparison_operator=p.get("ComparisonOperator"),
            evaluation_periods=int(p["EvaluationPeriods"]),
            datapoints_to_alarm=int(p["DatapointsToAlarm"]) if "DatapointsToAlarm" in p else None,
            period=int(p["Period"]) if "Period" in p else None,  # type: ignore[arg-type]
            threshold=float(p["Threshold"]) if "Threshold" in p else None,  # type: ignore[arg-type]
            statistic=p.get("Statistic"),
            extended_statistic=p.get("ExtendedStatistic"),
            description=p.get("AlarmDescription"),
            dimensions=p.get("Dimensions", []),
            alarm_actions=p.get("AlarmActions", []),
            ok_actions=p.get("OKActions", []),
            insufficient_data_actions=p.get("InsufficientDataActions", []),
            unit=p.get("Unit"),
            actions_enabled=_bool(p.get("ActionsEnabled", True)),
            treat_missing_data=p.get("TreatMissingData"),
            evaluate_low_sample_count_percentile=p.get("EvaluateLowSampleCountPercentile"),
            threshold_metric_id=p.get("ThresholdMetricId"),
            tags=p.get("Tags"),
        )
        return cls(resource_name, {"Arn": alarm.alarm_arn})

    def delete(self, account_id: str, region_name: str) -> None:
        cloudwatch_backends[account_id][region_name].delete_alarms([self.physical_id])


def _metric_query(q: dict[str, Any]) -> MetricDataQuery:
    """A CFN `Metrics` entry -> moto's MetricDataQuery (what its put_metric_alarm response code builds)."""
    stat = q.get("MetricStat")
    metric_stat = None
    if stat:
        m = stat["Metric"]
        dims = [Dimension(d["Name"], d["Value"]) for d in m.get("Dimensions", [])]
        metric = Metric(m["MetricName"], m.get("Namespace"), dims)
        metric_stat = MetricStat(metric, stat.get("Period"), stat.get("Stat"), stat.get("Unit"))
    optional = {"label": "Label", "period": "Period", "return_data": "ReturnData", "expression": "Expression"}
    kwargs: dict[str, Any] = {arg: q.get(key) for arg, key in optional.items()}
    return MetricDataQuery(q["Id"], metric_stat=metric_stat, **kwargs)


class SchedulerSchedule(_Record, CloudFormationModel):
    """AWS::Scheduler::Schedule (CRUD only: moto never fires it)."""

    ATTRS = ("Arn",)
    CFN_TYPE = "AWS::Scheduler::Schedule"
    NAME_PROPERTY = "Name"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kw: Any,
    ) -> SchedulerSchedule:
        p = cloudformation_json["Properties"]
        schedule = scheduler_backends[account_id][region_name].create_schedule(
            description=p.get("Description"),
            end_date=p.get("EndDate"),
            flexible_time_window=p.get("FlexibleTimeWindow", {"Mode": "OFF"}),
            group_name=p.get("GroupName"),
            kms_key_arn=p.get("KmsKeyArn"),
            name=resource_name,
            schedule_expression=p["ScheduleExpression"],
            schedule_expression_timezone=p.get("ScheduleExpressionTimezone"),
            start_date=p.get("StartDate"),
            state=p.get("State"),
            target=p["Target"],
            action_after_completion=None,
        )
        return cls(resource_name, {"Arn": schedule.arn}, group=p.get("GroupName"))

    def delete(self, account_id: str, region_name: str) -> None:
        scheduler_backends[account_id][region_name].delete_schedule(self.state["group"], self.physical_id)


class SqsQueuePolicy(_Record, CloudFormationModel):
    """AWS::SQS::QueuePolicy: applied as each queue's `Policy` attribute and recorded in QUEUE_POLICIES."""

    CFN_TYPE = "AWS::SQS::QueuePolicy"  # unnamed: NAME_PROPERTY stays ""

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kw: Any,
    ) -> SqsQueuePolicy:
        p = cloudformation_json["Properties"]
        policy = (
            p["PolicyDocument"] if isinstance(p["PolicyDocument"], str) else json.dumps(p["PolicyDocument"])
        )
        for url in p["Queues"]:
            sqs_backends[account_id][region_name].set_queue_attributes(
                url.rsplit("/", 1)[-1], {"Policy": policy}
            )
        QUEUE_POLICIES.append(
            {"LogicalId": kw.get("LogicalId"), "Queues": p["Queues"], "PolicyDocument": policy}
        )
        return cls(resource_name, {})

    def delete(self, account_id: str, region_name: str) -> None:
        """Deleting the policy resource leaves the queues alone (they usually go with the stack)."""


def _bool(value: Any) -> bool:
    return value is True or str(value).lower() == "true"

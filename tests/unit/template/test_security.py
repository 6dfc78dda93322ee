"""Least privilege and encryption at rest, proven on the translated template (every resource, not
only the ones named here, so a new destination or source is covered the day it is added)."""

from __future__ import annotations

import json
import re
from fnmatch import fnmatch, fnmatchcase
from pathlib import Path
from typing import Any

import pytest

from activation_core import naming
from local.harness import DESTINATION_TYPES
from tests.support import parameter_bound
from tests.support import properties_of_type as of_type

TEMPLATE = Path(__file__).resolve().parents[3] / "template.yaml"
DATA_SERVICES = ("sqs", "dynamodb", "secretsmanager", "ssm", "s3", "kms", "events", "states", "sns")


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_no_wildcard_action_or_resource_on_data_services(resources: dict[str, Any]) -> None:
    offending = []
    for name, role in of_type(resources, "AWS::IAM::Role").items():
        for statement in statements(role):
            actions = [a for a in as_list(statement.get("Action", [])) if isinstance(a, str)]
            on_data = [a for a in actions if a.split(":")[0] in DATA_SERVICES]
            if not on_data:
                continue
            if any(a.endswith(":*") or a == "*" for a in on_data) or "*" in as_list(
                statement.get("Resource")
            ):
                offending.append((name, statement.get("Sid", ""), on_data))
    assert offending == []


def test_each_function_reads_only_its_own_secrets_and_queues(resources: dict[str, Any]) -> None:
    roles = of_type(resources, "AWS::IAM::Role")
    # Every destination of the manifest has its function (a missing one fails here, it is not skipped).
    assert {naming.logical_id(t, "FunctionRole") for t in DESTINATION_TYPES} <= set(roles)
    for name, role in roles.items():
        if not name.endswith("FunctionRole"):
            continue
        own = naming.type_of_prefix(name.removesuffix("FunctionRole"))
        text = json.dumps(statements(role))
        for other in DESTINATION_TYPES:
            if other != own:
                assert f"/{other}/" not in text, (name, other)
                assert naming.logical_id(other, "DeadLetterQueue") not in text, (name, other)
                assert naming.logical_id(other, "Queue") not in text, (name, other)


def test_every_queue_is_encrypted_and_every_dlq_keeps_14_days(resources: dict[str, Any]) -> None:
    queues = of_type(resources, "AWS::SQS::Queue")
    assert queues
    for name, queue in queues.items():
        assert queue.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in queue, name
        if name.endswith("DeadLetterQueue"):
            assert parameter_bound(queue["MessageRetentionPeriod"]) == 14 * 24 * 3600, name


def test_every_table_bucket_topic_and_secret_is_encrypted(resources: dict[str, Any]) -> None:
    for name, table in of_type(resources, "AWS::DynamoDB::Table").items():
        assert table.get("SSESpecification", {}).get("SSEEnabled") is True, name
    for name, bucket in of_type(resources, "AWS::S3::Bucket").items():
        assert bucket.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration"), name
        assert bucket.get("PublicAccessBlockConfiguration", {}).get("BlockPublicAcls") is True, name
    for name in of_type(resources, "AWS::SNS::Topic"):
        # A customer-managed key: an AWS-managed one (alias/aws/sns) cannot let CloudWatch publish.
        assert _key_of_topic(resources, name), name
    # Secrets Manager always encrypts (with aws/secretsmanager unless KmsKeyId is set): nothing to assert
    # beyond the secrets never being created with a literal value in the template.
    for name, secret in of_type(resources, "AWS::SecretsManager::Secret").items():
        assert "SecretString" not in secret, name


def test_every_dlq_has_an_alarm(resources: dict[str, Any]) -> None:
    dlqs = {n for n in of_type(resources, "AWS::SQS::Queue") if n.endswith("DeadLetterQueue")}
    watched = {
        a["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for a in of_type(resources, "AWS::CloudWatch::Alarm").values()
        if a.get("Namespace") == "AWS/SQS"
    }
    assert dlqs and dlqs <= watched


def test_each_function_times_out_before_its_queue_shows_the_message_again(resources: dict[str, Any]) -> None:
    functions = of_type(resources, "AWS::Lambda::Function")
    queues = of_type(resources, "AWS::SQS::Queue")
    for mapping in of_type(resources, "AWS::Lambda::EventSourceMapping").values():
        function = functions[mapping["FunctionName"]["Ref"]]
        queue = queues[mapping["EventSourceArn"]["Fn::GetAtt"][0]]
        assert function["Timeout"] < queue["VisibilityTimeout"]


# Who publishes to a topic, by the resource that names it as a target: an alarm's actions are
# published by CloudWatch, a rule's targets by EventBridge, a schedule's by EventBridge Scheduler.
PUBLISHERS = {
    "AWS::CloudWatch::Alarm": (
        "cloudwatch.amazonaws.com",
        ("AlarmActions", "OKActions", "InsufficientDataActions"),
    ),
    "AWS::Events::Rule": ("events.amazonaws.com", ("Targets",)),
    "AWS::Scheduler::Schedule": ("scheduler.amazonaws.com", ("Target",)),
}
KMS_USE_FOR_PUBLISHING = ("kms:Decrypt", "kms:GenerateDataKey")


def _ref(value: Any) -> str | None:
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
    return None


def _key_of_topic(resources: dict[str, Any], topic: str) -> str | None:
    """The customer-managed AWS::KMS::Key resource that encrypts the topic (None: none or AWS-managed)."""
    key = _ref(resources[topic]["Properties"].get("KmsMasterKeyId"))
    if key is not None and resources[key]["Type"] == "AWS::KMS::Alias":
        key = _ref(resources[key]["Properties"]["TargetKeyId"])
    return key if key is not None and resources[key]["Type"] == "AWS::KMS::Key" else None


def _topics_targeted(resources: dict[str, Any], props: dict[str, Any], fields: tuple[str, ...]) -> list[str]:
    refs = []
    for field in fields:
        for target in as_list(props.get(field, [])):
            value = target.get("Arn") if isinstance(target, dict) and "Arn" in target else target
            name = _ref(value)
            if name is not None and resources.get(name, {}).get("Type") == "AWS::SNS::Topic":
                refs.append(name)
    return refs


def _service_may(policy: dict[str, Any], service: str, action: str) -> bool:
    for statement in as_list(policy["Statement"]):
        principals = as_list(statement.get("Principal", {}).get("Service", []))
        allowed = [a for a in as_list(statement.get("Action", [])) if fnmatch(action, a)]
        if (
            statement["Effect"] == "Allow"
            and service in principals
            and allowed
            and statement["Resource"] == "*"
        ):
            return True
    return False


def test_com_07_every_alarm_publishes_to_a_topic_whose_key_cloudwatch_may_use(
    resources: dict[str, Any],
) -> None:
    """AWS refuses what moto accepts: a publisher without kms:Decrypt/GenerateDataKey* on the topic's
    key cannot publish, so no alarm would ever reach anyone (alias/aws/sns allows no service)."""
    alarms = of_type(resources, "AWS::CloudWatch::Alarm")
    assert alarms
    checked = 0
    for kind, (service, fields) in PUBLISHERS.items():
        for name, props in of_type(resources, kind).items():
            topics = _topics_targeted(resources, props, fields)
            if kind == "AWS::CloudWatch::Alarm":
                assert topics, f"{name} notifies no topic"
            for topic in topics:
                key = _key_of_topic(resources, topic)
                assert key is not None, f"{name} -> {topic}: not encrypted with a customer-managed key"
                key_props = resources[key]["Properties"]
                assert key_props["EnableKeyRotation"] is True, key
                for action in KMS_USE_FOR_PUBLISHING:
                    assert _service_may(key_props["KeyPolicy"], service, action), (name, topic, key, action)
                checked += 1
    assert checked >= len(alarms)


# AWS-managed policies a role may carry: CloudWatch Logs and X-Ray writes only (no data service).
ALLOWED_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}
DESTINATIONS = DESTINATION_TYPES  # the manifest
STACK = "stk"
# The state-table partition keys each destination writes (formats from the code that writes them:
# erasure, oauth.TokenProvider, rate_budget, bombora.lists; the ledgers, order guards and waiting
# changes from activation_core.naming, which the layer's stores call). None is shared between types.
# Every destination records erasures and may hold a token lock (its secret named or an ARN).
TOKEN_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret"


# Keys only some destinations write; each names its owner between '#' or '-' separators.
def typed_state_keys(destination_type: str) -> list[str]:
    """The keys the layer's stores build for one instance of a type (a real-looking entity hash)."""
    entity = "3f2a9c0d" * 8
    return [
        naming.ledger_key(destination_type),
        naming.snapshot_ledger_key(destination_type),
        naming.order_key(destination_type, "inst-1", entity),
        naming.waiting_key(destination_type, "inst-1", entity),
    ]


VENDOR_STATE_KEYS = [
    "bombora#lists#acct-1",
    "lock#bombora-list#acct-1#aud-1",
    "rate#marketo#123-ABC-456",
    "slots#marketo#123-ABC-456",
    "rate#outreach#conn",
]
OWN_STATE_KEYS = {
    t: [
        f"erasure#{t}#dsr-1",
        f"settled#{t}#0b8e5c1e-5f0a-4c3a-9d1e-2f6a7b8c9d0e",
        *(k for k in VENDOR_STATE_KEYS if t in re.split(r"[#-]", k)),
        *typed_state_keys(t),
    ]
    for t in DESTINATIONS
}
# Token leases: a destination that mints tokens holds its own; one with a static credential none.
LEASE_KEYS = {
    t: [f"lock#token#{STACK}/{t}/conn", f"lock#token#{TOKEN_SECRET_ARN}:{STACK}/{t}/conn-AbCdEf"]
    for t in DESTINATIONS
}
OTHER_STATE_KEYS = [
    "sfmc#watermark",
    "sfmc#runs",
    f"lock#token#{STACK}/sfmc/conn",
    "snapshot",
    "snapshot-run",
    "lock#snapshot#aud-1",
]


def test_no_role_carries_a_managed_policy_on_data(resources: dict[str, Any]) -> None:
    """SAM's SQS event source attaches AWSLambdaSQSQueueExecutionRole (receive/delete on every queue):
    the translated template, managed policies included, must carry none beyond logs and tracing."""
    for name, role in of_type(resources, "AWS::IAM::Role").items():
        assert set(role.get("ManagedPolicyArns", [])) <= ALLOWED_MANAGED_POLICIES, name


@pytest.mark.parametrize("destination", DESTINATIONS)
def test_each_destination_consumes_only_its_own_queue_and_sends_only_to_its_own_dlq(
    resources: dict[str, Any], destination: str
) -> None:
    name = naming.logical_prefix(destination)
    own = {
        json.dumps({"Fn::GetAtt": [f"{name}Queue", "Arn"]}),
        json.dumps({"Fn::GetAtt": [f"{name}DeadLetterQueue", "Arn"]}),
    }
    sqs_statements = [
        s
        for s in statements(resources[f"{name}FunctionRole"]["Properties"])
        if "sqs" in json.dumps(s.get("Action"))
    ]
    consumed = {a for s in sqs_statements for a in as_list(s["Action"])}
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"} <= consumed
    for statement in sqs_statements:
        for resource in as_list(statement["Resource"]):
            text = json.dumps(resource)
            assert text in own or f"{name}DeadLetterQueue" in text, (destination, statement.get("Sid"))


def _resolve(value: Any) -> str:
    if isinstance(value, dict) and "Fn::Sub" in value:
        return str(value["Fn::Sub"]).replace("${AWS::StackName}", STACK)
    return str(value)


def _leading_key_patterns(statement: dict[str, Any]) -> list[str] | None:
    condition = statement.get("Condition", {}).get("ForAllValues:StringLike", {})
    if "dynamodb:LeadingKeys" not in condition:
        return None
    return [_resolve(v) for v in as_list(condition["dynamodb:LeadingKeys"])]


def _table_statements(role: dict[str, Any], table: str) -> list[dict[str, Any]]:
    target = json.dumps({"Fn::GetAtt": [table, "Arn"]})
    return [s for s in statements(role) if target in json.dumps(s.get("Resource"))]


def test_every_table_statement_is_limited_to_leading_keys(resources: dict[str, Any]) -> None:
    for name, role in of_type(resources, "AWS::IAM::Role").items():
        for table in ("StateTable",):
            for statement in _table_statements(role, table):
                assert _leading_key_patterns(statement), (name, statement.get("Sid"))


@pytest.mark.parametrize("destination", DESTINATIONS)
def test_each_destination_writes_only_its_own_state_keys(resources: dict[str, Any], destination: str) -> None:
    role = resources[f"{naming.logical_prefix(destination)}FunctionRole"]["Properties"]
    (statement,) = _table_statements(role, "StateTable")
    patterns = _leading_key_patterns(statement) or []

    def allowed(key: str) -> bool:  # IAM StringLike: * and ? wildcards, case-sensitive
        return any(fnmatchcase(key, pattern) for pattern in patterns)

    from local.harness import MANIFEST

    spec = MANIFEST.get(destination)
    leases = LEASE_KEYS[destination] if spec is not None and spec.credentials == "oauth" else []
    assert all(allowed(k) for k in OWN_STATE_KEYS[destination] + leases)
    others = [k for d, keys in OWN_STATE_KEYS.items() if d != destination for k in keys] + OTHER_STATE_KEYS
    others += [k for d, keys in LEASE_KEYS.items() if d != destination or not leases for k in keys]
    assert [k for k in others if allowed(k)] == []


STATE_TABLE_ARN = f"arn:aws:dynamodb:us-east-1:123456789012:table/{STACK}-state"


def _state_statement(resources: dict[str, Any], destination: str) -> dict[str, Any]:
    """The destination role's state-table statement, resolved as AWS would see it deployed."""
    role = resources[f"{naming.logical_prefix(destination)}FunctionRole"]["Properties"]
    (statement,) = _table_statements(role, "StateTable")
    condition = {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": _leading_key_patterns(statement)}}
    return {**statement, "Resource": STATE_TABLE_ARN, "Condition": condition}


def test_a_marketo_role_cannot_write_an_outreach_order_guard_ledger_or_waiting_key(
    resources: dict[str, Any],
) -> None:
    """The security review: the guard and ledger keys carried the instance, not the type, so every
    destination role could write every `order#*` key and every ledger row. Evaluated as IAM does
    (local.iam_audit, the e2e audit's evaluator: `dynamodb:LeadingKeys` under ForAllValues:StringLike,
    `*` any run of characters, case-sensitive; a request naming several keys needs every one to match),
    the keys the layer builds for an outreach instance are refused to marketo's role, its own allowed."""
    from local.iam_audit import Request, allowed

    marketo = [_state_statement(resources, "marketo")]

    def marketo_may(action: str, *keys: str) -> bool:
        return allowed(marketo, Request(f"dynamodb:{action}", STATE_TABLE_ARN, keys))

    for action in ("PutItem", "UpdateItem", "DeleteItem", "GetItem", "BatchGetItem", "BatchWriteItem"):
        assert all(marketo_may(action, key) for key in typed_state_keys("marketo")), action
        assert [key for key in typed_state_keys("outreach") if marketo_may(action, key)] == [], action
    entity = "3f2a9c0d" * 8
    # Nor the keys of before (the instance only, shared ledger rows), nor a batch mixing both types' keys.
    for key in ("outcomes", "snapshot-outcomes", f"order#inst-1#{entity}", f"waiting#inst-1#{entity}"):
        assert not marketo_may("PutItem", key), key
    mixed = (naming.order_key("marketo", "m", entity), naming.order_key("outreach", "o", entity))
    assert not marketo_may("BatchGetItem", *mixed)
    assert marketo_may("BatchGetItem", mixed[0])


@pytest.mark.parametrize("destination", DESTINATION_TYPES)
def test_each_destination_may_call_what_its_state_stores_call(
    resources: dict[str, Any], destination: str
) -> None:
    """moto does not enforce IAM: the operations the layer's stores send on the state table (the order
    guard and the settled messages read with BatchGetItem; the settled messages mark retried records
    with BatchWriteItem; transactions are PutItem to IAM) must be in the role, or AWS refuses them."""
    role = resources[f"{naming.logical_prefix(destination)}FunctionRole"]["Properties"]
    (statement,) = _table_statements(role, "StateTable")
    assert {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    } <= set(as_list(statement["Action"]))  # no Query: see NEVER_CALLED_BY_DESTINATIONS


def test_no_function_needs_a_lambda_dead_letter_queue(resources: dict[str, Any]) -> None:
    """Why checkov's CKV_AWS_116 is accepted (.checkov.yaml): a Lambda DLQ catches failed asynchronous
    invocations only. Each function runs from an SQS mapping whose queue redrives to a DLQ, as a task
    of a state machine (which retries, catches and alarms), or from a recurring schedule whose next
    tick does the work of a failed one (snapshot reconciliation)."""
    queues = of_type(resources, "AWS::SQS::Queue")
    from_queues = {
        m["FunctionName"]["Ref"]: queues[m["EventSourceArn"]["Fn::GetAtt"][0]]
        for m in of_type(resources, "AWS::Lambda::EventSourceMapping").values()
    }
    machines = json.dumps(of_type(resources, "AWS::StepFunctions::StateMachine"))
    recurring = json.dumps(
        [
            s
            for s in of_type(resources, "AWS::Scheduler::Schedule").values()
            if "rate(" in str(s["ScheduleExpression"])
        ]
    )
    for name in of_type(resources, "AWS::Lambda::Function"):
        target = json.dumps({"Fn::GetAtt": [name, "Arn"]})
        if name in from_queues:
            assert "deadLetterTargetArn" in from_queues[name]["RedrivePolicy"], name
        else:  # a task of a state machine, or a recurring schedule's (the next tick redoes a failed one)
            assert target in machines or target in recurring, name


# How a destination's package obtains its credential, as its code says: minted tokens cached in the
# connection secret (oauth.TokenProvider: writes the secret, takes a token lease) or a credential read
# as it is (credentials.StaticCredentials: reads only).
FUNCTIONS = TEMPLATE.parent / "functions"


def _credential_mode(destination: str) -> str:
    code = "\n".join(p.read_text() for p in (FUNCTIONS / destination).glob("*.py"))
    modes = {m for m, cls in (("oauth", "TokenProvider("), ("static", "StaticCredentials(")) if cls in code}
    assert len(modes) == 1, (destination, modes)
    return modes.pop()


@pytest.mark.parametrize("destination", DESTINATIONS)
def test_a_destination_writes_its_secret_and_takes_token_leases_only_if_it_mints_tokens(
    resources: dict[str, Any], destination: str
) -> None:
    """Least privilege: a static credential (the webhook's signing secret) is never written back, so its
    function may not overwrite it (secretsmanager:PutSecretValue) nor hold token leases."""
    from local.harness import MANIFEST

    mode = _credential_mode(destination)
    spec = MANIFEST.get(destination)
    assert spec is not None and spec.credentials == mode, (destination, mode)
    role = resources[f"{naming.logical_prefix(destination)}FunctionRole"]["Properties"]
    actions = {a for s in statements(role) for a in as_list(s.get("Action", []))}
    (table,) = _table_statements(role, "StateTable")
    leases = [k for k in _leading_key_patterns(table) or [] if k.startswith("lock#token#")]
    assert ("secretsmanager:PutSecretValue" in actions) == (mode == "oauth"), destination
    assert bool(leases) == (mode == "oauth"), destination
    assert "secretsmanager:GetSecretValue" in actions


# Actions no function calls, which a role must therefore not allow (the end-to-end call audit,
# tests.support.calls_their_roles_refuse, fails the other way: a call its role does not allow).
# - ssm:GetParameters: every function reads its one config parameter with GetParameter.
# - dynamodb:Query for a destination: it reads its items by key (GetItem, BatchGetItem); the erasure
#   ledger is listed by `activation erasure status`, with the operator's credentials.
NEVER_CALLED = {"FunctionRole": {"ssm:GetParameters"}}
NEVER_CALLED_BY_DESTINATIONS = {"dynamodb:Query"}


def test_no_role_allows_an_action_its_function_never_calls(resources: dict[str, Any]) -> None:
    destination_roles = {f"{naming.logical_prefix(t)}FunctionRole" for t in DESTINATIONS}
    granted = []
    for name, role in of_type(resources, "AWS::IAM::Role").items():
        actions = {a for s in statements(role) for a in as_list(s.get("Action", []))}
        never = set().union(*(v for suffix, v in NEVER_CALLED.items() if name.endswith(suffix)))
        if name in destination_roles:
            never |= NEVER_CALLED_BY_DESTINATIONS
        granted += [(name, a) for a in sorted(actions & never)]
    assert granted == []


# What a service needs of a customer-managed key to write with it on the stack's behalf.
# - EventBridge -> an SQS queue with a KMS key: kms:GenerateDataKey and kms:Decrypt for events.amazonaws.com
#   (docs.aws.amazon.com/eventbridge/latest/userguide/eb-encryption-key-policy.html); the AWS-managed
#   aws/sqs key cannot allow it, its key policy cannot be changed
#   (docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html).
#   A queue with SSE-SQS (SqsManagedSseEnabled, every queue today) needs no key policy.
# - CloudWatch Logs -> a log group with KmsKeyId: logs.<region>.amazonaws.com may Encrypt, Decrypt and
#   GenerateDataKey (docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html).
LOGS_KEY_USE = ("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey")
REGION = "us-east-1"


def _principal_services(statement: dict[str, Any]) -> list[str]:
    services = as_list(statement.get("Principal", {}).get("Service", []))
    return [s["Fn::Sub"].replace("${AWS::Region}", REGION) if isinstance(s, dict) else s for s in services]


def _key_allows(resources: dict[str, Any], key: str, service: str, action: str) -> bool:
    policy = resources[key]["Properties"]["KeyPolicy"]
    resolved = {
        "Statement": [
            {**s, "Principal": {"Service": _principal_services(s)}} for s in as_list(policy["Statement"])
        ]
    }
    return _service_may(resolved, service, action)


def kms_problems(resources: dict[str, Any]) -> list[str]:
    """Each resource a service writes to with a KMS key that the key would not let it use."""
    problems = []
    for kind, (service, fields) in PUBLISHERS.items():
        for name, props in of_type(resources, kind).items():
            for field_ in fields:
                for target in as_list(props.get(field_, [])):
                    value = target.get("Arn") if isinstance(target, dict) and "Arn" in target else target
                    ref = _ref(value)
                    if ref is None or "KmsMasterKeyId" not in resources.get(ref, {}).get("Properties", {}):
                        continue
                    key = _key_of_topic(resources, ref)
                    if key is None:
                        problems.append(f"{name} -> {ref}: an AWS-managed key, which {service} may not use")
                        continue
                    for action in KMS_USE_FOR_PUBLISHING:
                        if not _key_allows(resources, key, service, action):
                            problems.append(f"{name} -> {ref}: {key} does not allow {service} {action}")
    for name, group in of_type(resources, "AWS::Logs::LogGroup").items():
        if "KmsKeyId" not in group:
            continue
        key = _ref(group["KmsKeyId"])
        service = f"logs.{REGION}.amazonaws.com"
        if key is None or resources.get(key, {}).get("Type") != "AWS::KMS::Key":
            problems.append(f"{name}: its key is not one of the stack's")
            continue
        problems += [
            f"{name}: {key} does not allow {service} {a}"
            for a in LOGS_KEY_USE
            if not _key_allows(resources, key, service, a)
        ]
    return problems


def test_every_kms_key_lets_the_service_writing_with_it_use_it(resources: dict[str, Any]) -> None:
    assert kms_problems(resources) == []
    # The check is not vacuous: a rule's queue on the AWS-managed aws/sqs key, or on the alarm key
    # (which allows CloudWatch only), is refused, as AWS would refuse EventBridge's sends.
    queue = naming.logical_id(DESTINATIONS[0], "Queue")
    for key in ("alias/aws/sqs", {"Ref": "AlarmTopicKey"}):
        broken = json.loads(json.dumps(resources))
        broken[queue]["Properties"]["KmsMasterKeyId"] = key
        assert [p for p in kms_problems(broken) if queue in p], key


# The item actions whose requests carry dynamodb:LeadingKeys (their partition keys).
ITEM_ACTIONS = {
    "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
    "dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "dynamodb:Query", "dynamodb:ConditionCheckItem",
}  # fmt: skip


def test_leading_key_conditions_only_guard_actions_that_carry_leading_keys(resources: dict[str, Any]) -> None:
    """ForAllValues is also true when the request has no such key at all
    (docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition_examples-multi-valued-context-keys.html):
    a Scan, or any action without partition keys, beside a LeadingKeys condition would reach the
    whole table. Such a statement must name item actions only."""
    loose = []
    for name, role in of_type(resources, "AWS::IAM::Role").items():
        for statement in statements(role):
            if _leading_key_patterns(statement) is not None:
                loose += [(name, a) for a in as_list(statement["Action"]) if a not in ITEM_ACTIONS]
    assert loose == []


BUCKET_ARN = "arn:aws:s3:::stk-snapshots"


def _s3_statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    """The role's statements with the snapshot bucket's ARN resolved as AWS would see it deployed."""

    def resolve(value: Any) -> str:
        if value == {"Fn::GetAtt": ["SnapshotBucket", "Arn"]}:
            return BUCKET_ARN
        return _resolve(value).replace("${SnapshotBucket.Arn}", BUCKET_ARN)

    return [{**s, "Resource": [resolve(r) for r in as_list(s.get("Resource", []))]} for s in statements(role)]


def test_commit_deletes_the_folded_set_it_settled_and_no_other_run_object(resources: dict[str, Any]) -> None:
    """An applied run deletes the folded set of the failed runs it re-checked (runs/<audience>/<run>/
    unsettled/<run>/): its role may delete exactly those under runs/, not a run's partitions, done
    markers or plan (they end with SnapshotRunRetentionDays), nor an uploaded snapshot."""
    from local.iam_audit import Request, allowed

    commit = _s3_statements(resources["SnapshotCommitFunctionRole"]["Properties"])

    def may_delete(key: str) -> bool:
        return allowed(commit, Request("s3:DeleteObject", f"{BUCKET_ARN}/{key}"))

    assert may_delete("runs/aud-1/s2/unsettled/f1/part-0000.tsv.gz")
    assert may_delete("state/aud-1/s1/part-0000.tsv.gz")  # the superseded membership
    for key in ("runs/aud-1/s2/new/part-0000.tsv.gz", "runs/aud-1/s2/done/0000.json", "runs/aud-1/s2/plan.json",
                "incoming/s2.jsonl.gz", "incoming/s2.manifest.json"):  # fmt: skip
        assert not may_delete(key), key


def test_the_snapshot_erasure_rewrites_the_folded_sets_and_no_other_run_object(
    resources: dict[str, Any],
) -> None:
    """An erasure rewrites the audience's folded set (runs/<audience>/<run>/unsettled/<run>/) as it does
    the memberships under state/; a run's own partitions, done markers and plan, it may not touch."""
    from local.iam_audit import Request, allowed

    erasure = _s3_statements(resources["SnapshotErasureFunctionRole"]["Properties"])

    def may(action: str, key: str) -> bool:
        return allowed(erasure, Request(f"s3:{action}", f"{BUCKET_ARN}/{key}"))

    folded = "runs/aud-1/s2/unsettled/f1/part-0000.tsv.gz"
    assert may("GetObject", folded) and may("PutObject", folded) and not may("DeleteObject", folded)
    for key in (
        "runs/aud-1/s2/new/part-0000.tsv.gz",
        "runs/aud-1/s2/done/0000.json",
        "runs/aud-1/s2/plan.json",
    ):
        assert not may("PutObject", key), key


def test_prepare_reads_the_erasure_markers_and_no_other_key_by_query(resources: dict[str, Any]) -> None:
    """A Prepare that folded failed runs applies the erasures recorded during its fold to the set it wrote
    (snapshots/erasure.py, reapply_to_folded): it may Query the `snapshot-erasure` partition, as Commit
    does, and no other key. The markers it reads go back ERASURE_SECONDS before the fold: the erasure
    function's Timeout, the longest it writes after its marker."""
    from local.iam_audit import Request, allowed
    from snapshots.erasure import ERASURE_SECONDS

    table = [
        {**s, "Resource": STATE_TABLE_ARN}
        for s in _table_statements(resources["SnapshotPrepareFunctionRole"]["Properties"], "StateTable")
    ]

    def may_query(key: str) -> bool:
        return allowed(table, Request("dynamodb:Query", STATE_TABLE_ARN, (key,)))

    assert may_query("snapshot-erasure")
    assert not may_query("snapshot") and not may_query("erasure#stack#dsr-1")
    assert resources["SnapshotErasureFunction"]["Properties"]["Timeout"] <= ERASURE_SECONDS

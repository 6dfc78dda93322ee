"""Every AWS call a deployed function made, checked against that function's deployed role.

moto enforces no IAM: a role that lacks an action, a resource, an S3 prefix or a DynamoDB leading key
passes every local test and is refused in AWS. With `lambda_runner.CALL_AUDIT` set, each function's
calls are recorded (lambda_worker.record_calls: the operation and what names its resource, never a
value); `audit()` turns each into the IAM requests AWS would authorise and evaluates them against the
role's policies as moto deployed them (every `Ref`, `GetAtt` and `Sub` resolved).

The IAM model is the part of AWS's evaluation these roles use: identity policies only (no resource
policy, boundary or SCP grants anything here), an explicit Deny wins, `Action`/`Resource` with `*` and
`?` wildcards, and the one condition the roles carry, `ForAllValues:StringLike` on
`dynamodb:LeadingKeys`. Any other condition, or an operation it cannot map to IAM actions, is reported
as refused rather than guessed: the audit only ever errs towards a failing test.

AWS rules relied on (each cited where it is used):
- an operation's IAM action and resource: the Service Authorization Reference, e.g.
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html
  (BatchGetItem is authorised as dynamodb:BatchGetItem, not GetItem);
- DynamoDB transactions are authorised per item, as PutItem, UpdateItem, DeleteItem, GetItem or
  dynamodb:ConditionCheckItem:
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html
- S3: ListObjects(V2) needs s3:ListBucket on the bucket, DeleteObjects s3:DeleteObject per key,
  HeadObject s3:GetObject, multipart upload parts s3:PutObject:
  https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html (and each operation's page).
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Protocol

ACCOUNT = "123456789012"  # moto's default account (the local stack never sets another)


class Stack(Protocol):
    region: str
    log_dir: Path

    def client(self, service: str, **config: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class Request:
    """One authorisation AWS makes for a call: action, resource ARN, DynamoDB leading keys if any."""

    action: str
    resource: str
    leading_keys: tuple[str, ...] | None = None

    def __str__(self) -> str:
        keys = f" leading keys {sorted(set(self.leading_keys))}" if self.leading_keys else ""
        return f"{self.action} on {self.resource}{keys}"


@dataclass
class Audit:
    calls: Counter[str] = field(default_factory=Counter)  # function name -> calls recorded
    refused: list[str] = field(default_factory=list)  # "<function>: <request>" AWS would refuse


def _scalar(value: Any) -> str:
    """A DynamoDB attribute value's text ({"S": "x"} -> "x")."""
    return str(next(iter(value.values()))) if isinstance(value, dict) else str(value)


def _hash_values(items: list[Any]) -> tuple[str, ...]:
    return tuple(_scalar(v) for item in items for v in item.values())


def _query_leading_key(params: dict[str, Any]) -> tuple[str, ...]:
    """The partition key value of a Query: the `<name> = :value` of its key condition whose value was
    recorded (the worker keeps only the values the key condition names, the partition key's first)."""
    names = params.get("ExpressionAttributeNames", {})
    values = params.get("ExpressionAttributeValues", {})
    found = []
    for name, placeholder in re.findall(r"(#?\w+)\s*=\s*(:\w+)", params.get("KeyConditionExpression", "")):
        if placeholder in values:
            found.append((names.get(name, name), _scalar(values[placeholder])))
    return (found[0][1],) if found else ()


_DYNAMODB_TRANSACT = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}
_S3_OBJECT = {
    "GetObject": "GetObject",
    "HeadObject": "GetObject",
    "PutObject": "PutObject",
    "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject",
    "CompleteMultipartUpload": "PutObject",
    "AbortMultipartUpload": "AbortMultipartUpload",
    "DeleteObject": "DeleteObject",
}
_S3_BUCKET = {"ListObjectsV2": "ListBucket", "ListObjects": "ListBucket", "HeadBucket": "ListBucket"}
_SQS_BATCH = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}


def _arn(service: str, region: str, resource: str) -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT}:{resource}"


def _dynamodb(op: str, params: dict[str, Any], region: str) -> list[Request] | None:
    def table(name: str) -> str:
        return _arn("dynamodb", region, f"table/{name}")

    if op in ("TransactWriteItems", "TransactGetItems"):
        return [
            Request(
                f"dynamodb:{_DYNAMODB_TRANSACT[kind]}", table(body["TableName"]), _hash_values([body["Key"]])
            )
            for entry in params["TransactItems"]
            for kind, body in entry.items()
        ]
    if op in ("BatchGetItem", "BatchWriteItem"):
        return [
            Request(f"dynamodb:{op}", table(name), _hash_values(keys))
            for name, keys in params["RequestItems"].items()
        ]
    resource = table(params["TableName"])
    if "IndexName" in params:
        resource += f"/index/{params['IndexName']}"
    if op == "Query":
        return [Request("dynamodb:Query", resource, _query_leading_key(params))]
    key = params.get("Item") if op == "PutItem" else params.get("Key")
    if key is not None:  # GetItem, PutItem, UpdateItem, DeleteItem
        return [Request(f"dynamodb:{op}", resource, _hash_values([key]))]
    return [Request(f"dynamodb:{op}", resource)]  # e.g. Scan, DescribeTable: no leading key


def _s3(op: str, params: dict[str, Any], region: str) -> list[Request] | None:
    bucket = f"arn:aws:s3:::{params.get('Bucket', '')}"
    if op in _S3_OBJECT:
        return [Request(f"s3:{_S3_OBJECT[op]}", f"{bucket}/{params['Key']}")]
    if op == "DeleteObjects":
        return [Request("s3:DeleteObject", f"{bucket}/{key}") for key in params["Keys"]]
    if op in _S3_BUCKET:
        return [Request(f"s3:{_S3_BUCKET[op]}", bucket)]
    return None


def _secretsmanager(op: str, params: dict[str, Any], region: str) -> list[Request] | None:
    secret = str(params.get("SecretId", ""))
    # A secret's ARN ends in its name, '-' and six random characters.
    resource = (
        secret if secret.startswith("arn:") else _arn("secretsmanager", region, f"secret:{secret}-AbCdEf")
    )
    return [Request(f"secretsmanager:{op}", resource)]


def _sqs(op: str, params: dict[str, Any], region: str) -> list[Request] | None:
    queue = str(params.get("QueueUrl", params.get("QueueName", ""))).rstrip("/").rsplit("/", 1)[-1]
    return [Request(f"sqs:{_SQS_BATCH.get(op, op)}", _arn("sqs", region, queue))]


def _events(op: str, params: dict[str, Any], region: str) -> list[Request] | None:
    if op != "PutEvents":
        return None
    buses = sorted({e["EventBusName"] for e in params["Entries"]})
    return [
        Request("events:PutEvents", b if b.startswith("arn:") else _arn("events", region, f"event-bus/{b}"))
        for b in buses
    ]


def _ssm(op: str, params: dict[str, Any], region: str) -> list[Request] | None:
    names = params.get("Names") or [params.get("Name", "")]
    return [
        Request(f"ssm:{op}", _arn("ssm", region, "parameter" + (n if n.startswith("/") else f"/{n}")))
        for n in names
    ]


def _states(op: str, params: dict[str, Any], region: str) -> list[Request] | None:
    return [Request(f"states:{op}", str(params.get("executionArn") or params.get("stateMachineArn")))]


def _cloudwatch(op: str, params: dict[str, Any], region: str) -> list[Request] | None:
    return [Request(f"cloudwatch:{op}", "*")]


# By the client's signing name (CloudWatch's is "monitoring"; its IAM prefix is cloudwatch).
_SERVICES = {
    "dynamodb": _dynamodb,
    "s3": _s3,
    "secretsmanager": _secretsmanager,
    "sqs": _sqs,
    "events": _events,
    "ssm": _ssm,
    "states": _states,
    "monitoring": _cloudwatch,
}


def requests_of(call: dict[str, Any], region: str) -> list[Request] | None:
    """The IAM requests of one recorded call (None: an operation this audit cannot map)."""
    mapper = _SERVICES.get(call["service"])
    return None if mapper is None else mapper(call["operation"], call["params"], region)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _conditions_hold(condition: dict[str, Any], request: Request) -> bool:
    for operator, keys in condition.items():
        for key, patterns in keys.items():
            if operator != "ForAllValues:StringLike" or key != "dynamodb:LeadingKeys":
                return False  # a condition this audit does not model: refused, never guessed
            # ForAllValues: every value of the request's key matches a pattern; a request without the
            # key (a Scan) satisfies it vacuously. https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html
            values = request.leading_keys or ()
            if not all(any(fnmatchcase(v, p) for p in _as_list(patterns)) for v in values):
                return False
    return True


def _matches(statement: dict[str, Any], request: Request) -> bool:
    actions = [a.lower() for a in _as_list(statement.get("Action", []))]
    if not any(fnmatchcase(request.action.lower(), a) for a in actions):
        return False
    if not any(fnmatchcase(request.resource, r) for r in _as_list(statement.get("Resource", []))):
        return False
    return _conditions_hold(statement.get("Condition", {}), request)


def allowed(statements: list[dict[str, Any]], request: Request) -> bool:
    """AWS's identity-policy evaluation: an explicit Deny wins, else an Allow is needed."""
    matching = [s for s in statements if _matches(s, request)]
    return any(s["Effect"] == "Allow" for s in matching) and not any(s["Effect"] == "Deny" for s in matching)


def _document(text: Any) -> dict[str, Any]:
    if isinstance(text, dict):
        return text
    try:
        return dict(json.loads(text))
    except ValueError:
        return dict(ast.literal_eval(text))  # moto keeps CloudFormation's inline policies as a repr


def role_statements(stack: Stack, function_name: str) -> list[dict[str, Any]]:
    """Every statement of the function's deployed role: inline and attached managed policies."""
    role_arn = stack.client("lambda").get_function(FunctionName=function_name)["Configuration"]["Role"]
    role = role_arn.rsplit("/", 1)[-1]
    iam = stack.client("iam")
    documents = [
        _document(iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"])
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]
    ]
    for attached in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
        policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
        version = iam.get_policy_version(
            PolicyArn=attached["PolicyArn"], VersionId=policy["DefaultVersionId"]
        )
        documents.append(_document(version["PolicyVersion"]["Document"]))
    return [s for d in documents for s in _as_list(d["Statement"])]


def audit(stack: Stack) -> Audit:
    """Every recorded call of every function of the stack, and those its role would not allow."""
    result = Audit()
    for path in sorted(stack.log_dir.glob("*.calls.jsonl")):
        function_name = path.name.removesuffix(".calls.jsonl")
        statements = role_statements(stack, function_name)
        seen: set[str] = set()
        for line in path.read_text().splitlines():
            call = json.loads(line)
            result.calls[function_name] += 1
            requests = requests_of(call, stack.region)
            if requests is None:
                refused = [f"{call['service']}:{call['operation']} (not mapped to IAM by local/iam_audit.py)"]
            else:
                refused = [str(r) for r in requests if not allowed(statements, r)]
            for text in refused:
                if text not in seen:
                    seen.add(text)
                    result.refused.append(f"{function_name}: {text}")
    # A call the worker could not record (lambda_worker.record_calls says so in the function's log)
    # was not checked: the audit is incomplete, which is reported like a refusal.
    for log in sorted(stack.log_dir.glob("*.log")):
        missed = sum("call audit:" in line for line in log.read_text(errors="replace").splitlines())
        if missed:
            result.refused.append(f"{log.stem}: {missed} calls not recorded, so not checked")
    return result

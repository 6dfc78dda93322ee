"""One warm Lambda "sandbox": imports a handler once, then serves invocations over a private pipe.

Started by lambda_runner as `python -u lambda_worker.py FD_IN FD_OUT HANDLER CODE_DIR [LAYER_DIR...]`.
The protocol uses its own file descriptors, so whatever the handler prints (Powertools Logger writes
to stdout) goes to stdout/stderr, which the runner points at the function's log file.
Protocol: first line out is {"ready": bool, "payload"?}; then per line in {"event", "context"} the
worker answers {"ok": bool, "payload": <JSON text of the result or the AWS-style error>}.

With CALL_AUDIT_FILE set (lambda_runner.CALL_AUDIT), every AWS call the function makes is appended
there as one JSON line: the operation and only what names the resource it touches (table and partition
keys, bucket and object key, secret id, queue URL, bus, parameter name), never an item, message or
secret value. local/iam_audit.py checks each against the function's deployed role (moto enforces no IAM).
"""

from __future__ import annotations

import faulthandler
import importlib
import json
import os
import sys
import time
import traceback
from typing import Any


class LambdaContext:
    """The attributes handlers (and Powertools) read from the real LambdaContext."""

    def __init__(self, ctx: dict[str, Any]) -> None:
        self.function_name: str = ctx["function_name"]
        self.function_version: str = ctx["function_version"]
        self.invoked_function_arn: str = ctx["invoked_function_arn"]
        self.memory_limit_in_mb: int = int(ctx["memory_limit_in_mb"])
        self.aws_request_id: str = ctx["aws_request_id"]
        self.log_group_name: str = ctx["log_group_name"]
        self.log_stream_name: str = ctx["log_stream_name"]
        self.identity = None
        self.client_context = None
        self._deadline_ms: int = ctx["deadline_ms"]

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def error_payload(exc: BaseException, error_type: str | None = None, request_id: str = "") -> dict[str, Any]:
    """AWS Python runtime error shape."""
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_tb(_handler_tb(exc)),
    }


def _handler_tb(exc: BaseException) -> Any:
    """The traceback from the handler down (AWS does not show its runtime's own frames)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return tb


def load_handler(spec: str) -> Any:
    module_name, _, attr = spec.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise _InitError(
            f"Unable to import module '{module_name}': {exc}", "Runtime.ImportModuleError"
        ) from exc
    if not callable(handler := getattr(module, attr, None)):
        raise _InitError(f"Handler '{attr}' missing on module '{module_name}'", "Runtime.HandlerNotFound")
    return handler


# What names the resource of a call, per parameter (the rest of a request is never recorded).
_RESOURCE_PARAMS = (
    "TableName", "IndexName", "KeyConditionExpression", "ExpressionAttributeNames", "Key", "Keys",
    "Bucket", "Prefix", "SecretId", "QueueUrl", "QueueName", "Name", "Names", "stateMachineArn",
    "executionArn",
)  # fmt: skip


def _key_only(item: Any, hash_key: str) -> dict[str, Any]:
    return {hash_key: item[hash_key]} if isinstance(item, dict) and hash_key in item else {}


def resource_params(service: str, params: dict[str, Any], hash_keys: dict[str, str]) -> dict[str, Any]:
    """The parameters of one call that name what it touches: for DynamoDB, items reduced to their
    partition key (`hash_keys`: table -> attribute); S3 object keys; PutEvents' buses."""
    kept: dict[str, Any] = {k: params[k] for k in _RESOURCE_PARAMS if k in params}
    hash_key = hash_keys.get(str(params.get("TableName", "")), "")
    if "Key" in kept and service == "dynamodb":
        kept["Key"] = _key_only(kept["Key"], hash_key)
    if "Item" in params and service == "dynamodb":
        kept["Item"] = _key_only(params["Item"], hash_key)
    if "KeyConditionExpression" in params:  # only the values the key condition names
        names = params["KeyConditionExpression"]
        values = params.get("ExpressionAttributeValues", {})
        kept["ExpressionAttributeValues"] = {k: v for k, v in values.items() if k in names}
    if "RequestItems" in params:  # BatchGetItem / BatchWriteItem
        kept["RequestItems"] = {
            table: [
                _key_only(
                    (r.get("PutRequest", {}).get("Item") or r.get("DeleteRequest", {}).get("Key"))
                    if isinstance(r, dict) and ("PutRequest" in r or "DeleteRequest" in r)
                    else r,
                    hash_keys.get(table, ""),
                )
                for r in (request["Keys"] if isinstance(request, dict) else request)
            ]
            for table, request in params["RequestItems"].items()
        }
    if "TransactItems" in params:
        kept["TransactItems"] = [
            {
                op: {
                    "TableName": body["TableName"],
                    "Key": _key_only(
                        body.get("Key") or body.get("Item"), hash_keys.get(body["TableName"], "")
                    ),
                }
                for op, body in entry.items()
            }
            for entry in params["TransactItems"]
        ]
    if "Entries" in params and service == "events":
        kept["Entries"] = [{"EventBusName": e.get("EventBusName", "default")} for e in params["Entries"]]
    if "Delete" in params and service == "s3":
        kept["Keys"] = [o["Key"] for o in params["Delete"].get("Objects", [])]
    return kept


def record_calls(path: str, hash_keys: dict[str, str]) -> None:
    """Append every AWS call of this process to `path` (see the module docstring)."""
    import threading

    from botocore.client import BaseClient

    lock = threading.Lock()
    upstream = BaseClient._make_api_call

    def _make_api_call(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        service = self.meta.service_model.signing_name
        # Recording never changes what the function does: a call it cannot record is still made.
        try:
            line = {"service": service, "operation": operation_name}
            line["params"] = resource_params(service, api_params, hash_keys)
            with lock, open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")
        except Exception as exc:
            print(
                f"[WARNING] call audit: {operation_name} not recorded ({type(exc).__name__})", file=sys.stderr
            )
        return upstream(self, operation_name, api_params)

    BaseClient._make_api_call = _make_api_call


class _InitError(Exception):
    def __init__(self, message: str, error_type: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def _send(out: Any, message: dict[str, Any]) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    out.write((json.dumps(message) + "\n").encode())
    out.flush()


def main(argv: list[str]) -> None:
    fd_in, fd_out, handler_spec, *paths = argv
    sys.path[:1] = paths  # function code first, then each layer's python/ (replaces this script's dir)
    if audit := os.environ.get("CALL_AUDIT_FILE"):
        record_calls(audit, json.loads(os.environ.get("CALL_AUDIT_HASH_KEYS", "{}")))
    requests = os.fdopen(int(fd_in), "rb")
    out = os.fdopen(int(fd_out), "wb")
    try:
        handler = load_handler(handler_spec)
    except _InitError as exc:
        print(f"[ERROR] {exc.error_type}: {exc}", file=sys.stderr)
        _send(out, {"ready": False, "payload": json.dumps(error_payload(exc, exc.error_type))})
        return
    _send(out, {"ready": True})
    for line in requests:
        request = json.loads(line)
        request_id = request["context"]["aws_request_id"]
        # Local only: just before the runner ends a timed-out invocation, log where every thread was.
        remaining = request["context"]["deadline_ms"] / 1000 - time.time()
        faulthandler.dump_traceback_later(max(0.01, remaining - 0.05), file=sys.stderr)
        try:
            result = handler(request["event"], LambdaContext(request["context"]))
            try:
                reply = {"ok": True, "payload": json.dumps(result)}
            except TypeError as exc:
                reply = {
                    "ok": False,
                    "payload": json.dumps(error_payload(exc, "Runtime.MarshalError", request_id)),
                }
        except Exception as exc:
            print(f"[ERROR] {type(exc).__name__}: {exc}", file=sys.stderr)
            traceback.print_exception(type(exc), exc, _handler_tb(exc))
            reply = {"ok": False, "payload": json.dumps(error_payload(exc, None, request_id))}
        finally:
            faulthandler.cancel_dump_traceback_later()
        _send(out, reply)


if __name__ == "__main__":
    main(sys.argv[1:])

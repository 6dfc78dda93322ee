"""Run moto's Lambda functions for real, without Docker: warm Python subprocesses.

Every moto invocation path (Invoke API, Step Functions tasks, SNS/S3/EventBridge notifications)
ends in `LambdaFunction._invoke_lambda(self, event) -> (payload, is_error, logs)`; `install()`
replaces it. A function (per code/layers/handler/env hash) gets a warm worker process that keeps
module state between invocations, like a Lambda sandbox; one worker serves one invocation at a
time, so overlapping invocations of the same function get a second sandbox (as Lambda scales out).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any, Protocol

from moto.awslambda.models import LambdaBackend, LambdaFunction
from moto.awslambda.utils import get_backend
from moto.awslambda_simple.models import LambdaSimpleBackend

WORKER_SCRIPT = Path(__file__).with_name("lambda_worker.py")
INIT_TIMEOUT_S = 10.0  # AWS gives the init phase 10 s, separately from the function timeout
# Set to "1" in the environment of the process running the stack: each function's AWS calls are
# recorded in <log dir>/<function name>.calls.jsonl (lambda_worker.record_calls; read by local/iam_audit.py).
CALL_AUDIT = "LOCAL_CALL_AUDIT"
_UPSTREAM: dict[str, Any] = {}
_runner: LambdaRunner | None = None


class Runner(Protocol):
    """Where moto's invocations go instead of the warm workers (e.g. `sam local start-lambda`)."""

    def invoke(self, fn: LambdaFunction, event: Any) -> tuple[str, bool, str]: ...

    def shutdown(self) -> None: ...


_route: Runner | None = None


class _Worker:
    """A worker process and the two pipe ends the runner uses to talk to it."""

    def __init__(self, key: str, argv: list[str], env: dict[str, str], cwd: str, log_path: Path) -> None:
        self.key = key
        req_r, self._req_w = os.pipe()
        self._resp_r, resp_w = os.pipe()
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-u", str(WORKER_SCRIPT), str(req_r), str(resp_w), *argv],
                pass_fds=(req_r, resp_w),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
            )
        os.close(req_r)
        os.close(resp_w)
        self._buf = b""
        self.stream = f"{dt.date.today():%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        self.init_ms: float | None = None  # set on a cold start, reported once like AWS's Init Duration

    def read(self, timeout: float) -> dict[str, Any] | None:
        """Next protocol message, None on timeout; EOFError if the process died."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._resp_r], [], [], left)[0]:
                return None
            chunk = os.read(self._resp_r, 1 << 16)
            if not chunk:
                raise EOFError
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)  # type: ignore[no-any-return]

    def send(self, message: dict[str, Any]) -> None:
        os.write(self._req_w, (json.dumps(message) + "\n").encode())

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for fd in (self._req_w, self._resp_r):
            with contextlib.suppress(OSError):
                os.close(fd)


class LambdaRunner:
    """Pools of warm workers keyed by function ARN + code hash; extracts zips under a temp dir."""

    def __init__(self, endpoint_url: str, log_dir: Path) -> None:
        self.endpoint_url = endpoint_url
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="local-lambda-"))
        self._lock = threading.Lock()
        self._idle: dict[str, list[_Worker]] = {}
        self._key_of: dict[str, str] = {}  # function ARN -> current worker key
        self._busy: set[_Worker] = set()

    def invoke(self, fn: LambdaFunction, event: Any) -> tuple[str, bool, str]:
        request_id = str(uuid.uuid4())
        log_path = self.log_dir / f"{fn.function_name}.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        worker, init_error = self._checkout(fn, log_path)
        if init_error is not None:
            payload, is_error = init_error, True
        else:
            assert worker is not None
            self._log(log_path, f"START RequestId: {request_id} Version: $LATEST")
            started = time.monotonic()
            payload, is_error = self._call(fn, worker, event, request_id)
            duration = (time.monotonic() - started) * 1000
            self._log(log_path, f"END RequestId: {request_id}")
            init = f"\tInit Duration: {worker.init_ms:.2f} ms" if worker.init_ms is not None else ""
            worker.init_ms = None
            self._log(
                log_path,
                f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\t"
                f"Billed Duration: {int(duration) + 1} ms\tMemory Size: {fn.memory_size} MB{init}",
            )
            self._checkin(fn, worker)
        with log_path.open("rb") as f:
            f.seek(offset)
            logs = f.read().decode("utf-8", "replace")
        fn.logs_backend.ensure_log_group(fn.logs_group_name)
        fn.save_logs(logs)
        return payload, is_error, logs[-4096:]  # LogResult carries the last 4 KB, as in AWS

    def _call(self, fn: LambdaFunction, worker: _Worker, event: Any, request_id: str) -> tuple[str, bool]:
        timeout = float(fn.timeout)
        context = {
            "function_name": fn.function_name,
            "function_version": "$LATEST",
            "invoked_function_arn": fn.function_arn,
            "memory_limit_in_mb": fn.memory_size,
            "aws_request_id": request_id,
            "log_group_name": fn.logs_group_name,
            "log_stream_name": worker.stream,
            "deadline_ms": int((time.time() + timeout) * 1000),
        }
        try:
            worker.send({"event": {} if event is None or event == "{}" else event, "context": context})
            reply = worker.read(timeout)
        except (EOFError, OSError):
            worker.kill()
            code = worker.proc.returncode
            msg = f"RequestId: {request_id} Error: Runtime exited with error: exit status {code}"
            return json.dumps({"errorMessage": msg, "errorType": "Runtime.ExitError"}), True
        if reply is None:
            worker.kill()
            now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            msg = f"{now} {request_id} Task timed out after {timeout:.2f} seconds"
            self._log(self.log_dir / f"{fn.function_name}.log", msg)
            return json.dumps({"errorMessage": msg, "errorType": "Sandbox.Timedout"}), True
        return reply["payload"], not reply["ok"]

    def _checkout(self, fn: LambdaFunction, log_path: Path) -> tuple[_Worker | None, str | None]:
        """A warm idle worker for the function's current code, else a freshly initialised one."""
        code_dir, layer_dirs = self._extract(fn)
        env = self._environment(fn, code_dir)
        key = hashlib.sha256(
            json.dumps([fn.function_arn, fn.handler, code_dir, layer_dirs, env]).encode()
        ).hexdigest()
        with self._lock:
            old = self._key_of.get(fn.function_arn)
            if old is not None and old != key:  # code or configuration changed: retire old sandboxes
                for stale in self._idle.pop(old, []):
                    stale.kill()
            self._key_of[fn.function_arn] = key
            idle = self._idle.setdefault(key, [])
            worker = idle.pop() if idle else None
            if worker is not None:
                self._busy.add(worker)
                return worker, None
        worker = _Worker(key, [fn.handler or "", code_dir, *layer_dirs], env, code_dir, log_path)
        with self._lock:
            self._busy.add(worker)
        spawned = time.monotonic()
        try:
            ready = worker.read(INIT_TIMEOUT_S)
        except (EOFError, OSError):
            ready = None
        if not ready or not ready.get("ready"):
            self._discard(worker)
            fallback = {
                "errorMessage": "Runtime.InitError: worker failed to start",
                "errorType": "Runtime.InitError",
            }
            return None, ready["payload"] if ready else json.dumps(fallback)
        worker.init_ms = (time.monotonic() - spawned) * 1000
        return worker, None

    def _checkin(self, fn: LambdaFunction, worker: _Worker) -> None:
        with self._lock:
            self._busy.discard(worker)
            current = self._key_of.get(fn.function_arn) == worker.key
            if worker.proc.poll() is None and current:
                self._idle.setdefault(worker.key, []).append(worker)
                return
        worker.kill()

    def _discard(self, worker: _Worker) -> None:
        with self._lock:
            self._busy.discard(worker)
        worker.kill()

    def _extract(self, fn: LambdaFunction) -> tuple[str, list[str]]:
        """Unzip the function code and each layer once; layers contribute their `python/` dir."""
        code_dir = self._unzip(fn.code_bytes, "code")
        backend = get_backend(fn.account_id, fn.region)
        layer_dirs = []
        for layer in fn.layers:
            version = backend.layers_versions_by_arn(layer["Arn"])
            if version is not None:
                layer_dirs.append(str(Path(self._unzip(version.code_bytes, "layers")) / "python"))
        return code_dir, layer_dirs

    def _unzip(self, data: bytes, kind: str) -> str:
        target = self.root / kind / hashlib.sha256(data).hexdigest()[:24]
        with self._lock:
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = Path(tempfile.mkdtemp(dir=self.root))
                with zipfile.ZipFile(io.BytesIO(data)) as zf:
                    zf.extractall(tmp)
                tmp.rename(target)
        return str(target)

    def _environment(self, fn: LambdaFunction, code_dir: str) -> dict[str, str]:
        """Function env + the runtime's reserved variables; nothing inherited but PATH."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "PYTHONDONTWRITEBYTECODE": "1",
            "NO_PROXY": "127.0.0.1,localhost",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_SAM_LOCAL": "true",  # like `sam local`: Powertools Tracer stays off (no X-Ray daemon)
        }
        env.update({k: str(v) for k, v in (fn.environment_vars or {}).items()})
        if os.environ.get(CALL_AUDIT) == "1":
            env["CALL_AUDIT_FILE"] = str(self.log_dir / f"{fn.function_name}.calls.jsonl")
            env["CALL_AUDIT_HASH_KEYS"] = json.dumps(_hash_keys(fn.account_id, fn.region))
        env.update(
            {
                "AWS_ENDPOINT_URL": self.endpoint_url,
                "AWS_REGION": fn.region,
                "AWS_DEFAULT_REGION": fn.region,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SESSION_TOKEN": "testing",
                "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_LOG_GROUP_NAME": fn.logs_group_name,
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.run_time}",
                "_HANDLER": fn.handler or "",
                "LAMBDA_TASK_ROOT": code_dir,
            }
        )
        return env

    @staticmethod
    def _log(log_path: Path, line: str) -> None:
        with log_path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")

    def shutdown(self) -> None:
        with self._lock:
            workers = [w for pool in self._idle.values() for w in pool] + list(self._busy)
            self._idle.clear()
            self._busy.clear()
            self._key_of.clear()
        for worker in workers:
            worker.kill()


def _hash_keys(account_id: str, region: str) -> dict[str, str]:
    """Partition key attribute of every DynamoDB table in moto (the call audit keeps only those)."""
    from moto.dynamodb.models import dynamodb_backends

    tables = dynamodb_backends[account_id][region].tables
    return {name: table.hash_key_attr for name, table in list(tables.items())}


def install(endpoint_url: str, log_dir: Path) -> LambdaRunner:
    """Route every moto Lambda invocation through a LambdaRunner (idempotent; re-targets if called again)."""
    global _runner
    if _runner is not None:
        _runner.shutdown()
        shutil.rmtree(_runner.root, ignore_errors=True)
    _runner = LambdaRunner(endpoint_url, log_dir)
    if not _UPSTREAM:
        _UPSTREAM["LambdaFunction._invoke_lambda"] = LambdaFunction._invoke_lambda
        _UPSTREAM["LambdaSimpleBackend.invoke"] = LambdaSimpleBackend.invoke
    LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]
    # {"use_docker": false} routes Invoke to LambdaSimpleBackend, which echoes instead of invoking.
    LambdaSimpleBackend.invoke = LambdaBackend.invoke  # type: ignore[method-assign]
    return _runner


def _invoke_lambda(self: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
    if _route is not None:
        return _route.invoke(self, event)
    if _runner is None:
        raise RuntimeError("local lambda runner is not installed")
    return _runner.invoke(self, event)


def route_to(runner: Runner) -> None:
    """Send every invocation to `runner` until uninstall() (which shuts it down)."""
    global _route
    _route = runner


def shutdown_workers() -> None:
    """Stop every worker process (the next invocation cold-starts)."""
    if _runner is not None:
        _runner.shutdown()


def uninstall() -> None:
    """Stop workers, delete extracted code and give moto its own methods back."""
    global _runner, _route
    if _route is not None:
        _route.shutdown()
        _route = None
    if _runner is not None:
        _runner.shutdown()
        shutil.rmtree(_runner.root, ignore_errors=True)
        _runner = None
    if _UPSTREAM:
        LambdaFunction._invoke_lambda = _UPSTREAM["LambdaFunction._invoke_lambda"]  # type: ignore[method-assign]
        LambdaSimpleBackend.invoke = _UPSTREAM["LambdaSimpleBackend.invoke"]  # type: ignore[method-assign]

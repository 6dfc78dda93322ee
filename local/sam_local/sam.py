"""Driving the SAM CLI (its own venv, .sam-venv) against the local stack: `sam build`, `sam local invoke`
and `sam local start-lambda`, every command through host_network.py (containers on the host network,
loopback only), with an env-vars file that points each function at the local stack."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from local.harness import ActivationHarness

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
SAM_VENV = ROOT / ".sam-venv"
HOST_NETWORK = Path(__file__).resolve().with_name("host_network.py")
WHEEL_PLATFORMS = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
INVOKE_TIMEOUT_S = 600  # a cold emulated (arm64) start of a function with pydantic takes tens of seconds


@dataclass(frozen=True)
class Case:
    """One sample event for one function (its logical id in template.yaml)."""

    function: str
    event: Path

    @property
    def name(self) -> str:
        return f"{self.function} <- {self.event.relative_to(EVENTS)}"


class SamCli:
    """The SAM CLI from .sam-venv, run through the host-network wrapper, loopback only."""

    def __init__(self, arch: str, build_dir: Path) -> None:
        self.arch = arch
        self.build_dir = build_dir
        self.python = SAM_VENV / "bin" / "python"

    def environment(self) -> dict[str, str]:
        env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"}
        env["PATH"] = f"{SAM_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"  # the layer's make: its pip
        env["LAMBDA_PLATFORM"] = WHEEL_PLATFORMS[self.arch]  # layers/activation_core/Makefile
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
            env.pop(name, None)
        return env

    def run(self, *args: str, timeout: float = INVOKE_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.python), str(HOST_NETWORK), *args],
            cwd=ROOT,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def build(self) -> float:
        started = time.monotonic()
        result = self.run(
            "build", "--template-file", str(ROOT / "template.yaml"), "--build-dir", str(self.build_dir),
            "--cached", "--cache-dir", str(self.build_dir.with_name(self.build_dir.name + "-cache")),
            "--parameter-overrides", f"Architecture={self.arch}", "--region", "us-east-1",
            timeout=1200,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"sam build failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}")
        return time.monotonic() - started

    def invoke(self, case: Case, env_vars: Path, log_dir: Path) -> tuple[str | None, Any]:
        result = self.run(
            "local", "invoke", case.function, "--event", str(case.event),
            "--template-file", str(self.build_dir / "template.yaml"), "--env-vars", str(env_vars),
            "--parameter-overrides", f"Architecture={self.arch}", "--skip-pull-image",
            "--docker-network", "host", "--region", "us-east-1",
        )  # fmt: skip
        log_dir.mkdir(parents=True, exist_ok=True)
        with (log_dir / f"sam-{case.function}.log").open("a") as log:
            log.write(result.stderr)
        lines = [line for line in result.stdout.splitlines() if line.strip()]
        if result.returncode != 0 or not lines:
            raise RuntimeError(f"sam local invoke {case.name} failed:\n{result.stderr[-3000:]}")
        payload = json.loads(lines[-1])
        return error_type(payload), payload


def function_names(harness: ActivationHarness) -> dict[str, str]:
    """Logical id -> the deployed function's name in moto."""
    from local.harness import STACK_NAME  # local.harness imports this package: not at module level

    cfn = harness.stack.client("cloudformation")
    resources = cfn.describe_stack_resources(StackName=STACK_NAME)["StackResources"]
    return {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in resources
        if r.get("ResourceType") == "AWS::Lambda::Function"
    }


def env_vars_document(harness: ActivationHarness, names: dict[str, str]) -> dict[str, dict[str, str]]:
    """The `--env-vars` document: each function's deployed environment, plus the local stack's endpoint
    (not declared in the template, so passed by host_network.py, not by SAM itself)."""
    lambda_client = harness.stack.client("lambda")
    stack_env = {
        "AWS_ENDPOINT_URL": harness.stack.endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    document = {}
    for logical_id, name in names.items():
        config = lambda_client.get_function_configuration(FunctionName=name)
        variables = config.get("Environment", {}).get("Variables", {})
        # The deployed name, as in Lambda (SAM would set the logical id): Powertools and logs use it.
        document[logical_id] = {**variables, **stack_env, "AWS_LAMBDA_FUNCTION_NAME": name}
    return document


def write_env_vars_file(harness: ActivationHarness) -> Path:
    """The `--env-vars` file for the running local stack: `<workdir>/sam-env-vars.json`."""
    path = Path(harness.stack.workdir) / "sam-env-vars.json"
    path.write_text(json.dumps(env_vars_document(harness, function_names(harness)), indent=1))
    return path


class SamLambdaEndpoint:
    """`sam local start-lambda` on a loopback port: the Lambda Invoke API, served by the emulator.

    Containers are created on first use of each function and kept warm (`--warm-containers LAZY`),
    as Lambda keeps a sandbox between invocations. `stop()` ends SAM, which removes its containers.
    """

    def __init__(self, sam: SamCli, env_vars: Path, log_path: Path) -> None:
        self.sam = sam
        self.env_vars = env_vars
        self.log_path = log_path
        self.port = _free_loopback_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    str(self.sam.python), str(HOST_NETWORK), "local", "start-lambda",
                    "--template-file", str(self.sam.build_dir / "template.yaml"),
                    "--env-vars", str(self.env_vars), "--parameter-overrides", f"Architecture={self.sam.arch}",
                    "--host", "127.0.0.1", "--port", str(self.port), "--warm-containers", "LAZY",
                    "--skip-pull-image", "--docker-network", "host", "--region", "us-east-1",
                ],
                cwd=ROOT, env=self.sam.environment(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # readiness: SAM's server accepts connections
            if self._proc.poll() is not None:
                raise RuntimeError(f"sam local start-lambda exited; see {self.log_path}")
            with socket.socket() as probe:
                probe.settimeout(1)
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.2)  # a bounded readiness poll of the process started above
        self.stop()
        raise TimeoutError(
            f"sam local start-lambda did not listen within {timeout:.0f} s; see {self.log_path}"
        )

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "lambda",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"total_max_attempts": 1}, read_timeout=INVOKE_TIMEOUT_S),
        )

    def invoke(self, function: str, payload: bytes) -> tuple[str | None, Any]:
        """(error type or None, response) of one invocation of a function by its logical id."""
        response = self.client().invoke(FunctionName=function, Payload=payload)
        result = json.loads(response["Payload"].read() or b"null")
        return error_type(result), result

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None


def error_type(result: Any) -> str | None:
    """The errorType of a function error response (the emulator's error shape), None for a result."""
    if isinstance(result, dict) and {"errorType", "errorMessage"} <= result.keys():
        return str(result["errorType"])
    return None


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

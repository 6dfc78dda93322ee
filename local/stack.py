"""LocalStack: moto server + patches + Lambda runner + SQS poller, and deploy() of a SAM template.

Usage (tests, demo):
    with LocalStack(workdir=Path(".local-stack")) as stack:
        outputs = stack.deploy(Path("template.yaml"), "activation", {"Stage": "dev"})
        stack.client("events").put_events(...)
        stack.poller.drain()

Everything listens on and talks to 127.0.0.1 only; credentials are dummies.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

from local import lambda_runner, moto_patches
from local.esm_poller import SqsEsmPoller
from local.sam_translate import translate

ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
MOTO_CONFIG = {"lambda": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
ARTIFACT_BUCKET = "local-stack-artifacts"


class LocalStack:
    """One in-process moto server per instance; use as a context manager."""

    def __init__(
        self, workdir: Path = Path(".local-stack"), *, region: str = "us-east-1", fast_retry: bool = True
    ):
        self.workdir = Path(workdir).resolve()
        self.log_dir = self.workdir / "logs"
        self.region = region
        self.fast_retry = fast_retry
        self.endpoint_url = ""
        self._server: ThreadedMotoServer | None = None
        self._poller: SqsEsmPoller | None = None
        self._saved_env: dict[str, str | None] = {}

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start moto on a free loopback port, configure it, patch it, install the runner."""
        port = _free_port()
        self.endpoint_url = f"http://127.0.0.1:{port}"
        loopback = "127.0.0.1,localhost"
        self._export(
            {
                **ENV,
                "AWS_DEFAULT_REGION": self.region,
                "AWS_ENDPOINT_URL": self.endpoint_url,
                "MOTO_PORT": str(port),  # moto's Step Functions calls Lambda at localhost:$MOTO_PORT
                "NO_PROXY": ",".join(filter(None, [os.environ.get("NO_PROXY"), loopback])),
                "no_proxy": ",".join(filter(None, [os.environ.get("no_proxy"), loopback])),
            }
        )
        moto_patches.apply()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for old in [*self.log_dir.glob("*.log"), *self.log_dir.glob("*.calls.jsonl")]:  # this run only
            old.unlink()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._server.start()
        # moto's state is process-global: start from empty even if another LocalStack ran before.
        self._moto_api("reset")
        self._moto_api("config", MOTO_CONFIG)
        moto_patches.QUEUE_POLICIES.clear()
        lambda_runner.install(self.endpoint_url, self.log_dir)
        self._poller = SqsEsmPoller(self.endpoint_url, region=self.region, fast_retry=self.fast_retry)
        self.client("s3").create_bucket(Bucket=ARTIFACT_BUCKET)

    def stop(self) -> None:
        """Stop poller, workers and server; restore the environment."""
        if self._poller is not None:
            self._poller.close()
            self._poller = None
        lambda_runner.uninstall()
        if self._server is not None:
            self._moto_api("reset")  # free the state; plain mock_aws tests later see a clean moto
            self._server.stop()
            self._server = None
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()

    @property
    def poller(self) -> SqsEsmPoller:
        if self._poller is None:
            raise RuntimeError("LocalStack is not started")
        return self._poller

    def client(self, service: str, **config: Any) -> Any:
        """A boto3 client bound to the moto endpoint; no retries (a 500 must not re-deliver)."""
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            aws_session_token="testing",
            config=Config(retries={"total_max_attempts": 1}, **config),
        )

    def deploy(
        self, template_path: Path, stack_name: str, parameters: dict[str, str] | None = None
    ) -> dict[str, str]:
        """Translate the SAM template, upload its artifacts, create the stack; returns its Outputs."""
        params = dict(parameters or {})
        s3 = self.client("s3")

        def upload(logical_id: str, zip_path: Path) -> str:
            key = f"{stack_name}/{logical_id}/{zip_path.name}"
            s3.upload_file(str(zip_path), ARTIFACT_BUCKET, key)
            return f"s3://{ARTIFACT_BUCKET}/{key}"

        template = translate(Path(template_path), region=self.region, parameters=params, upload=upload)
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / f"{stack_name}.template.json").write_text(json.dumps(template, indent=1))
        cfn = self.client("cloudformation")
        cfn.create_stack(
            StackName=stack_name,
            TemplateBody=json.dumps(template),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
            Capabilities=CAPABILITIES,
        )
        for _ in range(300):  # moto creates synchronously; this bounds a future async moto
            stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
            if not stack["StackStatus"].endswith("_IN_PROGRESS"):
                break
            time.sleep(0.1)
        if stack["StackStatus"] != "CREATE_COMPLETE":
            raise RuntimeError(
                f"stack {stack_name}: {stack['StackStatus']} {stack.get('StackStatusReason', '')}"
            )
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    def wait_execution(self, execution_arn: str, max_rounds: int = 600) -> dict[str, Any]:
        """Poll a Step Functions execution (moto runs it in a thread) until it leaves RUNNING."""
        sfn = self.client("stepfunctions")
        for _ in range(max_rounds):
            execution: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
            if execution["status"] != "RUNNING":
                return execution
            time.sleep(0.05)
        raise TimeoutError(f"{execution_arn} still RUNNING after {max_rounds} polls")

    def log_lines(self) -> list[str]:
        """Every line written to the function logs of this run (handler output and START/END/REPORT)."""
        return [line for path in sorted(self.log_dir.glob("*.log")) for line in path.read_text().splitlines()]

    def _moto_api(self, path: str, body: dict[str, Any] | None = None) -> None:
        request = urllib.request.Request(  # noqa: S310 - always http://127.0.0.1:<port>
            f"{self.endpoint_url}/moto-api/{path}",
            data=json.dumps(body or {}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
        opener.open(request, timeout=10).close()

    def _export(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

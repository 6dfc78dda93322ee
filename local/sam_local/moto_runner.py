"""`LAMBDA_RUNNER=sam`: the local stack's Lambda invocations served by `sam local start-lambda`.

Every invocation moto makes (the SQS poller's batches, Step Functions tasks, the Invoke API) goes to
the emulator instead of the warm subprocess workers: the function package as `sam build` made it,
Lambda's python3.13 in the base image, the layer under /opt. `make demo LAMBDA_RUNNER=sam` and
`activation local up` run on it; `SAM_ARCH` (default x86_64) picks the architecture.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from moto.awslambda.models import LambdaFunction

from local import lambda_runner
from local.sam_local import base_image
from local.sam_local.sam import (
    ROOT,
    SamCli,
    SamLambdaEndpoint,
    error_type,
    function_names,
    write_env_vars_file,
)

if TYPE_CHECKING:
    from local.harness import ActivationHarness


def requested() -> bool:
    return os.environ.get("LAMBDA_RUNNER", "").lower() == "sam"


class SamRunner:
    """Maps a deployed function to its logical id and invokes it on the start-lambda endpoint."""

    def __init__(self, endpoint: SamLambdaEndpoint, logical_ids: dict[str, str]) -> None:
        self.endpoint = endpoint
        self.logical_ids = logical_ids  # deployed function name -> logical id in template.yaml
        self._client = endpoint.client()

    def invoke(self, fn: LambdaFunction, event: Any) -> tuple[str, bool, str]:
        if isinstance(event, bytes):
            payload = event
        elif isinstance(event, str):
            payload = event.encode()
        else:
            payload = json.dumps({} if event is None else event).encode()
        response = self._client.invoke(FunctionName=self.logical_ids[fn.function_name], Payload=payload)
        body = response["Payload"].read().decode()
        # SAM's endpoint may omit X-Amz-Function-Error: an errorType/errorMessage body is an error.
        is_error = bool(response.get("FunctionError")) or error_type(_json_or_none(body)) is not None
        return body, is_error, ""

    def shutdown(self) -> None:
        self.endpoint.stop()


def _json_or_none(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def attach(harness: ActivationHarness, arch: str | None = None) -> SamRunner:
    """Build, start `sam local start-lambda` pointed at the harness's stack, route moto to it."""
    arch = arch or os.environ.get("SAM_ARCH", "x86_64")
    problem = base_image.docker_available() or base_image.emulation_missing(arch)
    if problem:
        raise RuntimeError(f"LAMBDA_RUNNER=sam needs Docker: {problem}")
    base_image.ensure(arch)
    sam = SamCli(arch, ROOT / ".aws-sam" / f"sam-local-{arch}")
    sam.build()
    names = function_names(harness)
    env_file = write_env_vars_file(harness)
    endpoint = SamLambdaEndpoint(sam, env_file, Path(harness.stack.log_dir) / "sam-start-lambda.log")
    endpoint.start()
    runner = SamRunner(endpoint, {name: logical_id for logical_id, name in names.items()})
    lambda_runner.route_to(runner)
    return runner

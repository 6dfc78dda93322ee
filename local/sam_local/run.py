"""`make sam-local`: every function in the Lambda runtime emulator, against the local stack.

1. the base image (`base_image.ensure`: built once, from Debian packages, when it is not tagged);
2. `sam build` of template.yaml for the chosen architecture;
3. the local stack (moto with template.yaml deployed, the vendor fakes, the example config), and an
   env-vars file that points each function at it: the deployed environment of the function (its
   tables, queues, parameters, as CloudFormation resolved them in moto) plus AWS_ENDPOINT_URL;
4. `sam local invoke <Function> -e <event>` for every sample event of every function
   (events/sqs/<destination>-batch.json, events/sfmc/<task>-*.json), on the host network;
5. the same events, in the same order, invoked through the local stack's own runner (moto's Invoke
   API, as the integration tests run them) on a fresh stack: each emulator response (batch item
   failures, error type, SFMC task result) and the outcomes it left (ledger counters per destination,
   DLQ depths) must equal the reference's.

Run with the project's venv: `python -m local.sam_local.run [--arch arm64|x86_64] [--smoke]`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.sam_local import base_image

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
SAM_VENV = ROOT / ".sam-venv"
HOST_NETWORK = Path(__file__).resolve().with_name("host_network.py")
WHEEL_PLATFORMS = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
SFMC_TASKS = {"plan": "SfmcPlanFunction", "page": "SfmcPageFunction", "commit": "SfmcCommitFunction"}
SFMC_TASKS["summary"] = "SfmcSummaryFunction"
INVOKE_TIMEOUT_S = 600  # a cold emulated (arm64) start of a function with pydantic takes tens of seconds


@dataclass(frozen=True)
class Case:
    """One sample event for one function (its logical id in template.yaml)."""

    function: str
    event: Path

    @property
    def name(self) -> str:
        return f"{self.function} <- {self.event.relative_to(EVENTS)}"


@dataclass
class Observation:
    """What one invocation returned and left behind in the stack."""

    error_type: str | None
    result: Any
    ledgers: dict[str, dict[str, int]] = field(default_factory=dict)
    dlq_depths: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def cases(smoke: bool = False) -> list[Case]:
    """Every function's sample events in events/ (with --smoke: the first one of each function)."""
    found = [
        Case(f"{path.name.removesuffix('-batch.json').capitalize()}Function", path)
        for path in sorted((EVENTS / "sqs").glob("*-batch.json"))
    ]
    # The SFMC tasks in a run's order: plan, pages, commit, summary.
    for task, function in SFMC_TASKS.items():
        found += [Case(function, path) for path in sorted((EVENTS / "sfmc").glob(f"{task}*.json"))]
    if smoke:
        firsts: dict[str, Case] = {}
        for case in found:
            firsts.setdefault(case.function, case)
        found = list(firsts.values())
    return found


_VOLATILE = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?"  # timestamps (started now)
    r"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # request ids, SFMC request tokens
    r"|https?://127\.0\.0\.1:\d+"  # each stack's own ports
)
_EVENT_TIMESTAMPS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


def normalise(result: Any, event_text: str) -> Any:
    """A response with what differs between two runs of one stack masked: ids, ports, and the
    timestamps of now (those copied from the event stay). Batch item failures become a sorted list;
    an error is its type and message."""
    if isinstance(result, dict) and isinstance(result.get("batchItemFailures"), list):
        return {"batchItemFailures": sorted(f["itemIdentifier"] for f in result["batchItemFailures"])}
    if isinstance(result, dict) and "errorType" in result:  # the stack trace's paths are each runner's own
        result = {"errorType": result["errorType"], "errorMessage": result.get("errorMessage")}
    kept = set(_EVENT_TIMESTAMPS.findall(event_text))

    def mask(match: re.Match[str]) -> str:
        return match.group(0) if match.group(0)[:19] in kept else "<volatile>"

    return json.loads(_VOLATILE.sub(mask, json.dumps(result, sort_keys=True)))


def differences(reference: Observation, emulated: Observation, event_text: str) -> list[str]:
    """Empty when the emulator's invocation matches the reference's."""
    problems = []
    if emulated.error_type != reference.error_type:
        problems.append(f"error type {emulated.error_type!r}, expected {reference.error_type!r}")
    elif normalise(emulated.result, event_text) != normalise(reference.result, event_text):
        problems.append(f"response {emulated.result!r}, expected {reference.result!r}")
    if emulated.ledgers != reference.ledgers:
        problems.append(f"ledger {emulated.ledgers}, expected {reference.ledgers}")
    if emulated.dlq_depths != reference.dlq_depths:
        problems.append(f"DLQ depths {emulated.dlq_depths}, expected {reference.dlq_depths}")
    return problems


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
        error_type = payload.get("errorType") if isinstance(payload, dict) else None
        return error_type, payload


def function_names(harness: Any) -> dict[str, str]:
    """Logical id -> the deployed function's name in moto."""
    cfn = harness.stack.client("cloudformation")
    resources = cfn.describe_stack_resources(StackName=harness_stack_name())["StackResources"]
    return {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in resources
        if r.get("ResourceType") == "AWS::Lambda::Function"
    }


def harness_stack_name() -> str:
    from local.harness import STACK_NAME

    return STACK_NAME


def env_vars_document(harness: Any, names: dict[str, str]) -> dict[str, dict[str, str]]:
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
        document[logical_id] = {**variables, **stack_env, "AWS_LAMBDA_FUNCTION_NAME": name}
    return document


def observe(harness: Any, invoke: Callable[[], tuple[str | None, Any]]) -> Observation:
    from local.harness import DESTINATION_TYPES

    started = time.monotonic()
    error_type, result = invoke()
    seconds = time.monotonic() - started
    sqs = harness.stack.client("sqs")
    depths = {}
    for destination in DESTINATION_TYPES:
        url = harness.outputs[f"{destination.capitalize()}DeadLetterQueueUrl"]
        attrs = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        depths[destination] = sum(int(v) for v in attrs.values())
    ledgers = {destination: harness.ledger(destination) for destination in DESTINATION_TYPES}
    return Observation(error_type, result, ledgers, depths, seconds)


def reference_run(selected: Iterable[Case], workdir: Path) -> list[Observation]:
    """The events through the local stack's own runner (moto Invoke -> warm subprocess), in order."""
    from local.harness import ActivationHarness

    observations = []
    with ActivationHarness(workdir=workdir) as harness:
        names = function_names(harness)
        client = harness.stack.client("lambda", read_timeout=905)
        for case in selected:

            def invoke(case: Case = case) -> tuple[str | None, Any]:
                response = client.invoke(FunctionName=names[case.function], Payload=case.event.read_bytes())
                payload = json.loads(response["Payload"].read() or b"null")
                error = response.get("FunctionError")
                return (payload.get("errorType", error) if error else None), payload

            observations.append(observe(harness, invoke))
    return observations


def emulator_run(sam: SamCli, selected: Iterable[Case], workdir: Path) -> list[Observation]:
    """The events through `sam local invoke`, against a fresh local stack."""
    from local.harness import ActivationHarness

    observations = []
    with ActivationHarness(workdir=workdir) as harness:
        env_file = workdir / "sam-env-vars.json"
        env_file.write_text(json.dumps(env_vars_document(harness, function_names(harness)), indent=1))
        for case in selected:

            def invoke(case: Case = case) -> tuple[str | None, Any]:
                return sam.invoke(case, env_file, workdir / "logs")

            observations.append(observe(harness, invoke))
    return observations


@dataclass
class Report:
    arch: str
    image: str
    build_seconds: float
    rows: list[tuple[Case, Observation, list[str]]]

    @property
    def ok(self) -> bool:
        return all(not problems for _, _, problems in self.rows)

    def render(self) -> str:
        lines = [f"sam local ({self.arch}, {self.image}); sam build {self.build_seconds:.0f} s"]
        for case, seen, problems in self.rows:
            outcome = seen.error_type or _summary(seen.result)
            verdict = "matches the local stack's runner" if not problems else "; ".join(problems)
            lines.append(f"  {case.name:<55} {seen.seconds:5.1f} s  {outcome:<28} {verdict}")
        matched = sum(not p for _, _, p in self.rows)
        lines.append(f"{matched} of {len(self.rows)} invocations match")
        return "\n".join(lines)


def _summary(result: Any) -> str:
    if isinstance(result, dict) and "batchItemFailures" in result:
        return f"{len(result['batchItemFailures'])} batch item failures"
    return "ok"


def run(arch: str, smoke: bool = False, workdir: Path | None = None) -> Report:
    """Everything `make sam-local` does; the report says whether every invocation matched."""
    problem = base_image.docker_available() or base_image.emulation_missing(arch)
    if problem:
        raise SystemExit(f"sam local needs Docker: {problem}")
    print(base_image.ensure(arch), flush=True)
    selected = cases(smoke)
    with tempfile.TemporaryDirectory(prefix="sam-local-", dir=workdir) as tmp:
        root = Path(tmp)
        sam = SamCli(arch, ROOT / ".aws-sam" / f"sam-local-{arch}")
        build_seconds = sam.build()
        print(f"sam build ({arch}) in {build_seconds:.0f} s", flush=True)
        reference = reference_run(selected, root / "reference")
        emulated = emulator_run(sam, selected, root / "emulator")
        rows = [
            (case, seen, differences(expected, seen, case.event.read_text()))
            for case, expected, seen in zip(selected, reference, emulated, strict=True)
        ]
    return Report(arch, base_image.image_tag(arch), build_seconds, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Every function in `sam local invoke` against the local stack."
    )
    parser.add_argument("--arch", choices=sorted(base_image.ARCHITECTURES), default="x86_64")
    parser.add_argument("--smoke", action="store_true", help="one sample event per function")
    args = parser.parse_args(argv)
    report = run(args.arch, smoke=args.smoke)
    print(report.render())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.path[:0] = [str(ROOT / "layers" / "activation_core"), str(ROOT / "functions")]
    raise SystemExit(main())

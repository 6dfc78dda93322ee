"""`make sam-local`: every function in the Lambda runtime emulator, against the local stack.

1. the base image (`base_image.ensure`: built once, from Debian packages, when it is not tagged);
2. `sam build` of template.yaml for the chosen architecture;
3. the local stack (moto with template.yaml deployed, the vendor fakes, the example config), and an
   env-vars file that points each function at it: the deployed environment of the function (its
   tables, queues, parameters, as CloudFormation resolved them in moto) plus AWS_ENDPOINT_URL;
4. `sam local invoke <Function> -e <event>` for every sample event of every function
   (events/sqs/<destination>-batch.json, else the batch of its entity, events/sqs/profile-batch.json;
   events/sfmc/<task>-*.json, events/snapshots/tasks/<task>-*.json),
   on the host network;
5. the same events, in the same order, invoked through the local stack's own runner (moto's Invoke
   API, as the integration tests run them) on a fresh stack: each emulator response (batch item
   failures, error type, SFMC task result) and the outcomes it left (ledger counters per destination,
   DLQ depths) must equal the reference's.

Run with the project's venv: `python -m local.sam_local.run [--arch arm64|x86_64] [--smoke]`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local.sam_local import base_image
from local.sam_local.sam import Case, SamCli, SamLambdaEndpoint, function_names, write_env_vars_file

if TYPE_CHECKING:
    from local.harness import ActivationHarness

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
# Step Functions tasks, in a run's order: (folder of their sample payloads, task, function).
WORKFLOW_TASKS = [
    *(("sfmc", task, f"Sfmc{task.capitalize()}Function") for task in ("plan", "page", "commit", "summary")),
    *(
        ("snapshots/tasks", task, f"Snapshot{task.capitalize()}Function")
        for task in ("prepare", "diff", "commit", "reconcile")
    ),
]


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
    from activation_core import manifest, naming  # the layer joins sys.path in __main__

    found = []
    destinations = manifest.load(ROOT / "functions").destinations
    for spec in destinations:  # its own batch, else its entity's
        own = EVENTS / "sqs" / f"{spec.type}-batch.json"
        batch = own if own.exists() else EVENTS / "sqs" / f"{spec.entity}-batch.json"
        found.append(Case(naming.logical_id(spec.type, "Function"), batch))
    # The stack's other queue-fed functions (the erasure functions): events/sqs/<package_task>-batch.json.
    destination_batches = {f"{spec.type}-batch.json" for spec in destinations}
    destination_batches |= {f"{spec.entity}-batch.json" for spec in destinations}
    for path in sorted((EVENTS / "sqs").glob("*-batch.json")):
        if path.name not in destination_batches:
            found.append(Case(naming.logical_id(path.name.removesuffix("-batch.json"), "Function"), path))
    for folder, task, function in WORKFLOW_TASKS:
        found += [Case(function, path) for path in sorted((EVENTS / folder).glob(f"{task}*.json"))]
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


def observe(harness: ActivationHarness, invoke: Callable[[], tuple[str | None, Any]]) -> Observation:
    from activation_core import naming
    from local.harness import DESTINATION_TYPES

    started = time.monotonic()
    error_type, result = invoke()
    seconds = time.monotonic() - started
    sqs = harness.stack.client("sqs")
    depths = {}
    for destination in DESTINATION_TYPES:
        url = harness.outputs[naming.output_name(destination, "DeadLetterQueueUrl")]
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


def emulator_run(
    sam: SamCli, selected: Iterable[Case], workdir: Path, via: str = "invoke"
) -> list[Observation]:
    """The events through the emulator against a fresh local stack: one `sam local invoke` per event
    (via="invoke"), or one `sam local start-lambda` serving them all (via="start-lambda", faster:
    one SAM start, one warm container per function)."""
    from local.harness import ActivationHarness

    observations = []
    with ActivationHarness(workdir=workdir) as harness:
        env_file = write_env_vars_file(harness)
        endpoint = None
        if via == "start-lambda":
            endpoint = SamLambdaEndpoint(sam, env_file, workdir / "logs" / "sam-start-lambda.log")
            endpoint.start()
        try:
            for case in selected:

                def invoke(case: Case = case) -> tuple[str | None, Any]:
                    if endpoint is None:
                        return sam.invoke(case, env_file, workdir / "logs")
                    return endpoint.invoke(case.function, case.event.read_bytes())

                observations.append(observe(harness, invoke))
        finally:
            if endpoint is not None:
                endpoint.stop()
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
            outcome = seen.error_type or _summary(case, seen)
            verdict = "matches the local stack's runner" if not problems else "; ".join(problems)
            lines.append(f"  {case.name:<70} {seen.seconds:5.1f} s  {outcome:<46} {verdict}")
        matched = sum(not p for _, _, p in self.rows)
        lines.append(f"{matched} of {len(self.rows)} invocations match")
        return "\n".join(lines)


def _summary(case: Case, seen: Observation) -> str:
    """A destination batch: its destination's ledger so far and the failures; a task: ok."""
    if isinstance(seen.result, dict) and "batchItemFailures" in seen.result:
        ledger = seen.ledgers.get(case.function.removesuffix("Function").lower(), {})
        counts = " ".join(f"{ledger.get(k, 0)} {k}" for k in ("delivered", "skipped", "rejected"))
        return f"{counts}, {len(seen.result['batchItemFailures'])} failures"
    return "ok"


def run(
    arch: str,
    smoke: bool = False,
    workdir: Path | None = None,
    via: str = "invoke",
    only: set[str] | None = None,
) -> Report:
    """Everything `make sam-local` does; the report says whether every invocation matched. The two
    stacks' logs stay in `workdir` when one is given (else in .local-stack/sam-local)."""
    problem = base_image.docker_available() or base_image.emulation_missing(arch)
    if problem:
        raise SystemExit(f"sam local needs Docker: {problem}")
    print(base_image.ensure(arch), flush=True)
    selected = [case for case in cases(smoke) if not only or case.function in only]
    root = workdir or ROOT / ".local-stack" / "sam-local"
    sam = SamCli(arch, ROOT / ".aws-sam" / f"sam-local-{arch}")
    build_seconds = sam.build()
    print(f"sam build ({arch}) in {build_seconds:.0f} s", flush=True)
    reference = reference_run(selected, root / "reference")
    emulated = emulator_run(sam, selected, root / "emulator", via)
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
    parser.add_argument("--via", choices=["invoke", "start-lambda"], default="invoke")
    parser.add_argument("--only", action="append", metavar="FUNCTION", help="a logical id (repeatable)")
    args = parser.parse_args(argv)
    report = run(args.arch, smoke=args.smoke, via=args.via, only=set(args.only or []))
    print(report.render())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.path[:0] = [str(ROOT / "layers" / "activation_core"), str(ROOT / "functions")]
    raise SystemExit(main())

"""On-demand trigger and operator view of the SFMC ingestion (a later project CLI wraps it).

    python -m sfmc_ingestion run    --stack NAME [--data-extension KEY ...] [--source ID ...] [--wait]
                                    [--check-deletions]
    python -m sfmc_ingestion status --stack NAME [--runs N] [--json]
    python -m sfmc_ingestion validate FILE
    python -m sfmc_ingestion push-config --stack NAME FILE

Resources are found through the stack's outputs, so the same commands work against AWS and against
the local stack (boto3 honours AWS_ENDPOINT_URL). Run from the repository root with
`PYTHONPATH=functions:layers/activation_core`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from activation_core.errors import ConfigError
from sfmc_ingestion.config import parse_ingestion_config
from sfmc_ingestion.watermarks import WatermarkStore

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})


def _client(service: str) -> Any:
    import boto3

    return boto3.client(service)


def stack_outputs(stack: str, cfn: Any | None = None) -> dict[str, str]:
    described = (cfn or _client("cloudformation")).describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def start_run(
    outputs: dict[str, str],
    *,
    data_extensions: Sequence[str] = (),
    sources: Sequence[str] = (),
    sfn: Any | None = None,
    name: str | None = None,
    check_deletions: bool = False,
) -> str:
    """Start a manual run (every named data extension, whatever its schedule); returns the execution ARN.
    `check_deletions`: also run the deletion check of data extensions that have one, even if not due."""
    request: dict[str, Any] = {"trigger": "manual"}
    if check_deletions:
        request["checkDeletions"] = True
    if data_extensions:
        request["dataExtensions"] = list(data_extensions)
    if sources:
        request["sources"] = list(sources)
    started = (sfn or _client("stepfunctions")).start_execution(
        stateMachineArn=outputs["SfmcIngestionStateMachineArn"],
        name=name or f"manual-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}",
        input=json.dumps(request),
    )
    return str(started["executionArn"])


def wait_for(
    execution_arn: str,
    *,
    sfn: Any | None = None,
    timeout: float = 900.0,
    poll: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    client = sfn or _client("stepfunctions")
    waited = 0.0
    while True:
        execution: dict[str, Any] = client.describe_execution(executionArn=execution_arn)
        if execution["status"] in TERMINAL:
            return execution
        if waited >= timeout:
            raise TimeoutError(f"{execution_arn} still {execution['status']} after {timeout:.0f} s")
        sleep(poll)
        waited += poll


def status(outputs: dict[str, str], *, runs: int = 5, dynamodb: Any | None = None) -> dict[str, Any]:
    """The last runs (per data extension: rows read/landed/published/failed, watermark before/after)
    and every data extension's current watermark (SFMC-05)."""
    store = WatermarkStore(outputs["StateTableName"], dynamodb=dynamodb or _client("dynamodb"))
    watermarks = {
        key: {"value": wm.value, "lastSuccessAt": wm.last_success_at, "version": wm.version}
        for key, wm in sorted(store.list_all().items())
    }
    return {"runs": store.runs(runs), "watermarks": watermarks}


def render_status(report: dict[str, Any]) -> str:
    lines = ["Recent runs (newest first):"]
    if not report["runs"]:
        lines.append("  none yet")
    for run in report["runs"]:
        lines.append(f"  {run['startedAt']}  {run['runId']}  {run['status']}  ({run.get('trigger', '?')})")
        if run.get("cause"):
            lines.append(f"      plan failed: {run.get('error')}: {run['cause']}")
        for de in run.get("dataExtensions", []):
            lines.append(
                f"      {de['sourceId']}/{de['dataExtension']:<24} {de['status']:<9} read {de['rowsRead']:>6}"
                f"  landed {de['rowsLanded']:>6}  published {de['eventsPublished']:>6}  failed {de['rowsFailed']:>4}"
                f"  duplicates {de['rowsDuplicate']:>4}  watermark {de['watermarkBefore']} -> {de['watermarkAfter']}"
            )
            if de.get("cause"):
                lines.append(f"          {de.get('error')}: {de['cause']}")
        for skipped in run.get("skipped", []):
            lines.append(
                f"      {skipped['sourceId']}/{skipped['dataExtension']:<24} skipped ({skipped['reason']})"
            )
    lines.append("Watermarks:")
    for key, mark in report["watermarks"].items():
        lines.append(f"  {key:<40} {mark['value']}  (last success {mark['lastSuccessAt']})")
    return "\n".join(lines)


def push_config(outputs: dict[str, str], document: str, *, ssm: Any | None = None) -> int:
    """Validate, then write the ingestion config; returns how many data extensions it names."""
    config = parse_ingestion_config(document)
    (ssm or _client("ssm")).put_parameter(
        Name=outputs["SfmcIngestionConfigParameterName"],
        Value=config.model_dump_json(by_alias=True, exclude_defaults=False),
        Type="String",
        Overwrite=True,
    )
    return sum(len(s.data_extensions) for s in config.sources)


def main(argv: Sequence[str] | None = None, out: Any = None) -> int:
    out = out or sys.stdout
    parser = argparse.ArgumentParser(prog="python -m sfmc_ingestion", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="start an ingestion run now (whatever the schedules say)")
    run.add_argument("--stack", required=True)
    run.add_argument("--data-extension", action="append", default=[], dest="data_extensions", metavar="KEY")
    run.add_argument("--source", action="append", default=[], dest="sources", metavar="ID")
    run.add_argument("--wait", action="store_true", help="wait for the run and print its status")
    run.add_argument("--check-deletions", action="store_true", help="also run the deletion checks now")
    run.add_argument("--timeout", type=float, default=900.0)
    show = commands.add_parser("status", help="recent runs and watermarks")
    show.add_argument("--stack", required=True)
    show.add_argument("--runs", type=int, default=5)
    show.add_argument("--json", action="store_true")
    check = commands.add_parser("validate", help="validate an ingestion config file")
    check.add_argument("file", type=Path)
    push = commands.add_parser("push-config", help="validate and install an ingestion config file")
    push.add_argument("--stack", required=True)
    push.add_argument("file", type=Path)
    args = parser.parse_args(argv)

    try:
        if args.command == "validate":
            config = parse_ingestion_config(args.file.read_text())
            count = sum(len(s.data_extensions) for s in config.sources)
            print(f"valid: {len(config.sources)} source(s), {count} data extension(s)", file=out)
            return 0
        outputs = stack_outputs(args.stack)
        if args.command == "push-config":
            count = push_config(outputs, args.file.read_text())
            print(
                f"installed: {count} data extension(s) in {outputs['SfmcIngestionConfigParameterName']}",
                file=out,
            )
            return 0
        if args.command == "run":
            arn = start_run(
                outputs,
                data_extensions=args.data_extensions,
                sources=args.sources,
                check_deletions=args.check_deletions,
            )
            print(f"started {arn}", file=out)
            if not args.wait:
                return 0
            execution = wait_for(arn, timeout=args.timeout)
            print(f"{execution['status']}", file=out)
            print(render_status(status(outputs, runs=1)), file=out)
            return 0 if execution["status"] == "SUCCEEDED" else 1
        report = status(outputs, runs=args.runs)
        print(json.dumps(report, indent=2) if args.json else render_status(report), file=out)
        return 0
    except ConfigError as exc:
        print(f"invalid ingestion config: {exc.detail}", file=sys.stderr)
        return 2

"""`activation snapshot push|status|reconcile`: audience snapshots (backfill, resync, reconciliation).

`push` writes the members file and its manifest under the snapshot bucket's incoming/ prefix, as an
upstream system would; the manifest's arrival starts the workflow (S3 -> EventBridge -> Step Functions).
`status` reads the run records (and running executions); `reconcile` runs the reconciliation now.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from activation_cli.console import fail, out, print_json
from activation_cli.stack import STACK_ENV, Stack, aws_errors, client, load_stack

app = typer.Typer(
    no_args_is_help=True, help="Audience snapshots: backfill, resync and reconcile an audience."
)

BUCKET_OUTPUT = "SnapshotBucketName"
MACHINE_OUTPUT = "SnapshotStateMachineArn"


def _audience_name(stack: Stack, audience_id: str) -> str | None:
    try:
        raw = client("ssm").get_parameter(Name=stack.output("DestinationsConfigParameterName"))["Parameter"][
            "Value"
        ]
        document = json.loads(raw)
    except (json.JSONDecodeError, KeyError):
        return None
    for instance in document.get("destinations", []):
        for audience in instance.get("audiences", []):
            if audience.get("id") == audience_id:
                return str(audience.get("name") or audience_id)
    return None


def upload(stack: Stack, members: Path, manifest_path: Path, audience_id: str, snapshot_id: str) -> str:
    """Members first, manifest last (its arrival starts the run); returns the manifest's key."""
    bucket = stack.output(BUCKET_OUTPUT)
    prefix = f"incoming/{audience_id}/{snapshot_id}/"
    s3 = client("s3")
    s3.upload_file(str(members), bucket, prefix + members.name)
    key = prefix + manifest_path.name
    s3.upload_file(str(manifest_path), bucket, key)
    return key


def find_execution(stack: Stack, manifest_key: str) -> str | None:
    sfn = client("stepfunctions")
    for execution in sfn.list_executions(stateMachineArn=stack.output(MACHINE_OUTPUT))["executions"]:
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        if json.loads(described.get("input") or "{}").get("manifestKey") == manifest_key:
            return str(execution["executionArn"])
    return None


@app.command()
def push(
    file: Annotated[
        Path, typer.Argument(help="Members file: JSON Lines (.jsonl or .jsonl.gz), one member per line")
    ],
    *,
    audience: Annotated[str, typer.Option("--audience", help="The audience id (as activated in the config)")],
    stack_name: Annotated[str, typer.Option("--stack", envvar=STACK_ENV, help="The deployed stack")],
    full: Annotated[
        bool, typer.Option("--full", help="Resync: send every member, not only the changes")
    ] = False,
    name: Annotated[
        str | None, typer.Option("--name", help="Audience name (default: from the config)")
    ] = None,
    entity: Annotated[str, typer.Option("--entity", help="profile or account")] = "profile",
    identity: Annotated[
        str | None, typer.Option("--identity", help="Identity namespace that keys a member (default: all)")
    ] = None,
    snapshot_id: Annotated[
        str | None, typer.Option("--snapshot-id", help="Default: the current UTC time")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the run and print its record")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="With --wait: give up after N seconds")] = 900.0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable result")] = False,
) -> None:
    """Send an audience's full membership: its first snapshot on an instance is that instance's backfill,
    later ones send only the changes (or everything with --full). Exit 1 if a waited-for run fails."""
    from snapshots.files import manifest_for, write_manifest

    if not file.is_file():
        fail(f"no such file: {file}")
    if entity not in ("profile", "account"):
        fail("--entity must be profile or account")
    stack = load_stack(stack_name)
    now = datetime.now(UTC).replace(microsecond=0)
    snapshot = snapshot_id or now.strftime("%Y%m%dT%H%M%SZ")
    with aws_errors():
        audience_name = name or _audience_name(stack, audience)
        if audience_name is None:
            fail(f"audience '{audience}' is activated on no destination in stack {stack.name}'s config")
        manifest = manifest_for(
            file, audience_id=audience, audience_name=audience_name, snapshot_id=snapshot, snapshot_at=now,
            entity=entity, full=full, identity_namespace=identity,
        )  # fmt: skip
        manifest_file = write_manifest(file, manifest)
        try:
            key = upload(stack, file, manifest_file, audience, snapshot)
        finally:
            manifest_file.unlink(missing_ok=True)
        result: dict[str, Any] = {
            "manifestKey": key,
            "members": manifest.member_count,
            "snapshotId": snapshot,
        }
        if wait:
            result |= _wait(stack, key, audience, snapshot, timeout)
    if as_json:
        print_json(result)
    else:
        out.print(f"pushed {manifest.member_count} member(s) of {audience} as snapshot {snapshot} ({key})")
        if wait:
            out.print(f"run {result.get('status')}: {json.dumps(result.get('record', {}), default=str)}")
    if wait and result.get("status") != "SUCCEEDED":
        raise typer.Exit(1)


def _wait(stack: Stack, key: str, audience: str, snapshot: str, timeout: float) -> dict[str, Any]:
    from snapshots.state import SnapshotState

    deadline = time.monotonic() + timeout
    arn = None
    while time.monotonic() < deadline:
        arn = arn or find_execution(stack, key)
        if arn is not None:
            status = client("stepfunctions").describe_execution(executionArn=arn)["status"]
            if status != "RUNNING":
                state = SnapshotState(stack.output("StateTableName"), client("dynamodb"))
                records = [r for r in state.runs(audience) if r.get("snapshotId") == snapshot]
                return {"executionArn": arn, "status": status, "record": records[-1] if records else {}}
        time.sleep(1.0)
    fail(f"snapshot {snapshot} still running after {timeout:.0f} s (activation snapshot status)")


def report(stack: Stack, audience: str | None = None) -> dict[str, Any]:
    from snapshots.state import SnapshotState

    state = SnapshotState(stack.output("StateTableName"), client("dynamodb"))
    runs = sorted(state.runs(audience), key=lambda r: str(r.get("finishedAt") or ""), reverse=True)
    sfn = client("stepfunctions")
    running = []
    for execution in sfn.list_executions(
        stateMachineArn=stack.output(MACHINE_OUTPUT), statusFilter="RUNNING"
    )["executions"]:
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        running.append(
            {"executionArn": execution["executionArn"], "input": json.loads(described.get("input") or "{}")}
        )
    return {"stack": stack.name, "running": running, "runs": runs}


def render(data: dict[str, Any]) -> Table:
    table = Table(title=f"stack {data['stack']}: audience snapshots", title_justify="left")
    for column in ("audience", "snapshot", "status", "members", "bad lines", "instance", "sent", "delivered",
                   "skipped", "rejected", "pending"):  # fmt: skip
        table.add_column(
            column, justify="left" if column in ("audience", "snapshot", "status", "instance") else "right"
        )
    for running in data["running"]:
        table.add_row(str(running["input"].get("manifestKey", "?")), "", "RUNNING", *[""] * 8)
    for run in data["runs"]:
        status = str(run.get("status"))
        if run.get("reason"):
            status += f" ({run['reason']})"
        head = [str(run.get("audienceId")), str(run.get("snapshotId")), status, str(run.get("members", "")),
                str(run.get("badLines", ""))]  # fmt: skip
        instances = (run.get("reconciliation") or {}).get("instances") or [
            {"instance": i, "sent": n} for i, n in sorted((run.get("sent") or {}).items())
        ]
        if not instances:
            table.add_row(*head, *[""] * 6)
        for n, instance in enumerate(instances):
            cells = [
                str(instance.get(k, ""))
                for k in ("instance", "sent", "delivered", "skipped", "rejected", "pending")
            ]
            table.add_row(*(head if n == 0 else [""] * 5), *cells)
    return table


@app.command()
def status(
    stack_name: Annotated[str, typer.Option("--stack", envvar=STACK_ENV, help="The deployed stack")],
    audience: Annotated[str | None, typer.Option("--audience", help="Only this audience")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable result")] = False,
) -> None:
    """Snapshot runs: running ones, and per applied snapshot and instance members, changes sent,
    delivered, skipped, rejected and pending (after `reconcile`); refused ones with their reason."""
    stack = load_stack(stack_name)
    with aws_errors():
        data = report(stack, audience)
    if as_json:
        print_json(data)
    else:
        out.print(render(data))


@app.command()
def reconcile(
    stack_name: Annotated[str, typer.Option("--stack", envvar=STACK_ENV, help="The deployed stack")],
) -> None:
    """Reconcile applied snapshots now (the stack also does it every 15 minutes)."""
    stack = load_stack(stack_name)
    with aws_errors():
        response = client("lambda").invoke(
            FunctionName=stack.output("SnapshotReconcileFunctionName"), Payload=b"{}"
        )
    if "FunctionError" in response:
        fail(f"reconciliation failed: {response['Payload'].read()[:500]!r}")
    print_json(json.loads(response["Payload"].read()))


def audience_sizes(table: str) -> dict[str, int]:
    """Members of each audience's latest applied snapshot (for `activation status`)."""
    from snapshots.state import SnapshotState

    latest: dict[str, tuple[str, int]] = {}
    for run in SnapshotState(table, client("dynamodb")).runs():
        if run.get("status") != "APPLIED":
            continue
        audience, when = str(run.get("audienceId")), str(run.get("snapshotAt"))
        if audience not in latest or latest[audience][0] < when:
            latest[audience] = (when, int(run.get("members") or 0))
    return {audience: members for audience, (_, members) in latest.items()}

"""`activation snapshot push|backfill|status|reconcile`: audience snapshots (backfill, resync,
reconciliation).

`push` writes the members file and its manifest under the snapshot bucket's incoming/ prefix, as an
upstream system would; the manifest's arrival starts the workflow (S3 -> EventBridge -> Step Functions).
`backfill` sends an audience's applied snapshot to the instances that activated it since (the same
workflow, started with a backfill input). `status` reads the run records, the running executions'
progress and, until a run is reconciled, what the destinations made of its changes so far;
`reconcile` runs the reconciliation now.
"""

from __future__ import annotations

import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from activation_cli import backfill as backfills
from activation_cli import discovery
from activation_cli.console import fail, out, print_json
from activation_cli.stack import STACK_ENV, Stack, aws_errors, client, load_stack

app = typer.Typer(
    no_args_is_help=True, help="Audience snapshots: backfill, resync and reconcile an audience."
)

BUCKET_OUTPUT = "SnapshotBucketName"
MACHINE_OUTPUT = "SnapshotStateMachineArn"


def _activations(stack: Stack, audience_id: str) -> tuple[str | None, set[str]]:
    """The audience's name in the stack's config, and the entities (profile, account) of the
    destinations that activate it (the manifest's `entity` of their types)."""
    try:
        raw = client("ssm").get_parameter(Name=stack.output("DestinationsConfigParameterName"))["Parameter"][
            "Value"
        ]
        document = json.loads(raw)
    except (json.JSONDecodeError, KeyError):
        return None, set()
    name: str | None = None
    entities: set[str] = set()
    manifest = discovery.destinations()
    for instance in document.get("destinations", []):
        for audience in instance.get("audiences", []):
            if audience.get("id") == audience_id:
                name = name or str(audience.get("name") or audience_id)
                if (spec := manifest.get(str(instance.get("type")))) is not None:
                    entities.add(spec.entity)
    return name, entities


def _entity(asked: str | None, activated: set[str], audience_id: str) -> str:
    """The snapshot's entity: the one the activating destinations take (a profile change is routed to
    no account destination, nor the reverse; the workflow refuses a mismatch: `entity_mismatch`)."""
    if asked is not None and asked not in ("profile", "account"):
        fail("--entity must be profile or account")
    if len(activated) > 1:
        fail(f"audience '{audience_id}' is activated on profile and account destinations: a snapshot holds "
             "one entity and reaches only its destinations; activate the audience on one kind")  # fmt: skip
    if asked is not None and activated and asked not in activated:
        fail(f"audience '{audience_id}' is activated on {next(iter(activated))} destinations only, "
             f"not on any that takes --entity {asked}")  # fmt: skip
    return asked or next(iter(activated), "profile")


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
    entity: Annotated[
        str | None,
        typer.Option("--entity", help="profile or account (default: what the activating destinations take)"),
    ] = None,
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
    stack = load_stack(stack_name)
    now = datetime.now(UTC).replace(microsecond=0)
    snapshot = snapshot_id or now.strftime("%Y%m%dT%H%M%SZ")
    with aws_errors():
        configured_name, entities = _activations(stack, audience)
        audience_name = name or configured_name
        if audience_name is None:
            fail(f"audience '{audience}' is activated on no destination in stack {stack.name}'s config")
        manifest = manifest_for(
            file, audience_id=audience, audience_name=audience_name, snapshot_id=snapshot, snapshot_at=now,
            entity=_entity(entity, entities, audience), full=full, identity_namespace=identity,
        )  # fmt: skip
        # Written in a folder of its own: a manifest beside the members file (the producer's) stays as is.
        with tempfile.TemporaryDirectory() as folder:
            manifest_file = write_manifest(Path(folder) / file.name, manifest)
            key = upload(stack, file, manifest_file, audience, snapshot)
        result: dict[str, Any] = {
            "manifestKey": key,
            "members": manifest.member_count,
            "snapshotId": snapshot,
        }
        if wait:
            arn = _execution_of(stack, key, timeout)
            result |= _wait(stack, arn, audience, snapshot, timeout)
    if as_json:
        print_json(result)
    else:
        out.print(f"pushed {manifest.member_count} member(s) of {audience} as snapshot {snapshot} ({key})")
        if wait:
            out.print(f"run {result.get('status')}: {json.dumps(result.get('record', {}), default=str)}")
    if wait and result.get("status") != "SUCCEEDED":
        raise typer.Exit(1)


def _execution_of(stack: Stack, key: str, timeout: float) -> str:
    """The execution the manifest's arrival started (S3 -> EventBridge -> Step Functions)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        arn = find_execution(stack, key)
        if arn is not None:
            return arn
        time.sleep(1.0)
    fail(f"no run started for {key} within {timeout:.0f} s (activation snapshot status)")


def _wait(stack: Stack, arn: str, audience: str, run_key: str, timeout: float) -> dict[str, Any]:
    from snapshots.state import SnapshotState

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client("stepfunctions").describe_execution(executionArn=arn)["status"]
        if status != "RUNNING":
            state = SnapshotState(stack.output("StateTableName"), client("dynamodb"))
            records = [r for r in state.runs(audience) if (r.get("runId") or r.get("snapshotId")) == run_key]
            return {"executionArn": arn, "status": status, "record": records[-1] if records else {}}
        time.sleep(1.0)
    fail(f"run {run_key} still running after {timeout:.0f} s (activation snapshot status)")


@app.command()
def backfill(
    *,
    audience: Annotated[str, typer.Option("--audience", help="The audience id (as activated in the config)")],
    stack_name: Annotated[str, typer.Option("--stack", envvar=STACK_ENV, help="The deployed stack")],
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the run and print its record")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="With --wait: give up after N seconds")] = 900.0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable result")] = False,
) -> None:
    """Send the audience's applied snapshot to every enabled instance that activates it and has not
    received it (after `config push` activated it there). Shows the vendor calls and the time the
    vendors' rate limits imply first. Exit 1 if there is nothing to send it from or a waited-for run fails."""
    stack = load_stack(stack_name)
    with aws_errors():
        result = start_backfill(stack, audience, quiet=as_json)
        if wait and result["started"]:
            result |= _wait(stack, result["executionArn"], audience, result["runId"], timeout)
    if as_json:
        print_json(result)
    elif wait and result["started"]:
        out.print(f"run {result.get('status')}: {json.dumps(result.get('record', {}), default=str)}")
    if not result["started"] or (wait and result.get("status") != "SUCCEEDED"):
        raise typer.Exit(1)


def start_backfill(stack: Stack, audience: str, *, quiet: bool = False) -> dict[str, Any]:
    """The estimate for each instance still lacking the audience's applied snapshot, then the run (once
    the functions have read the config). Also what `config push --backfill` does."""
    from activation_cli.config import check, read_pushed

    config, _ = check(read_pushed(stack))
    pending = _lacking(stack, config, audience) if config is not None else []
    estimates = backfills.estimates(stack, config, pending) if pending else []
    if not quiet:
        for estimate in estimates:
            out.print(estimate.describe().replace("; start it: " + estimate.command, ""))
    if not any(e.snapshot_id for e in estimates):
        reason = "no_applied_snapshot" if estimates else _why_none(config, audience)
        if not quiet:
            out.print(f"no backfill started for {audience}: {reason}")
        return {
            "audience": audience,
            "started": False,
            "reason": reason,
            "estimates": [e.as_dict() for e in estimates],
        }
    backfills.wait_for_config(stack)
    started = backfills.start(stack, audience)
    if not quiet and started["started"]:
        out.print(f"backfill {started['runId']} started: activation snapshot status --audience {audience}")
    return started | {"estimates": [e.as_dict() for e in estimates]}


def _why_none(config: Any, audience: str) -> str:
    """No instance lacks the audience: each activating one has it, or none activates it at all."""
    activating = config is not None and any(i.enabled and i.audience(audience) for i in config.destinations)
    return "nothing_to_backfill" if activating else "unknown_audience"


def _lacking(stack: Stack, config: Any, audience: str) -> list[dict[str, str]]:
    """(instance, audience) pairs for the enabled instances activating `audience` that the applied
    snapshot did not reach."""
    from snapshots.state import SnapshotState

    pointer = SnapshotState(stack.output("StateTableName"), client("dynamodb")).pointer(audience)
    reached = set(pointer.instances) if pointer else set()
    return [
        {"instance": i.id, "audience": audience}
        for i in config.destinations
        if i.enabled and i.audience(audience) is not None and i.id not in reached
    ]


def report(stack: Stack, audience: str | None = None) -> dict[str, Any]:
    from snapshots.reconcile import outcomes_of, reconcile
    from snapshots.state import SnapshotState

    state = SnapshotState(stack.output("StateTableName"), client("dynamodb"))
    runs = sorted(state.runs(audience), key=lambda r: str(r.get("finishedAt") or ""), reverse=True)
    for run in runs:  # delivering: what the destinations made of the run's changes so far
        if run.get("status") == "APPLIED" and not run.get("reconciledAt"):
            run["reconciliation"] = reconcile(run, outcomes_of(state, run))
    sfn = client("stepfunctions")
    running = []
    for execution in sfn.list_executions(
        stateMachineArn=stack.output(MACHINE_OUTPUT), statusFilter="RUNNING"
    )["executions"]:
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        request = json.loads(described.get("input") or "{}")
        progress = _progress(stack, state, request)
        if audience is None or progress.get("audienceId") in (None, audience):
            running.append(
                {"executionArn": execution["executionArn"], "input": request, "progress": progress}
            )
    return {"stack": stack.name, "running": running, "runs": runs}


def _progress(stack: Stack, state: Any, request: dict[str, Any]) -> dict[str, Any]:
    """A running execution's progress: partitions diffed of all, changes sent and their outcomes so far."""
    from snapshots.progress import run_progress
    from snapshots.store import NotFound, S3Store

    store = S3Store(stack.output(BUCKET_OUTPUT), client("s3"))
    types = stack.destination_types()  # the run's own targets are known once it is recorded
    if "backfill" in request:
        ask = request["backfill"]
        return run_progress(
            store, state, ask["audienceId"], ask["snapshotId"], ask["runId"], destination_types=types
        )
    try:
        manifest = store.get_json(str(request.get("manifestKey")))
    except (NotFound, ValueError):
        return {"stage": "preparing"}
    if not isinstance(manifest, dict) or "audienceId" not in manifest or "snapshotId" not in manifest:
        return {"stage": "preparing"}
    return run_progress(
        store, state, str(manifest["audienceId"]), str(manifest["snapshotId"]), destination_types=types
    )


def render(data: dict[str, Any]) -> Table:
    table = Table(title=f"stack {data['stack']}: audience snapshots", title_justify="left")
    for column in ("audience", "snapshot", "status", "members", "bad lines", "instance", "sent", "delivered",
                   "skipped", "rejected", "pending"):  # fmt: skip
        table.add_column(
            column, justify="left" if column in ("audience", "snapshot", "status", "instance") else "right"
        )
    for running in data["running"]:
        progress = running.get("progress") or {}
        stage = str(progress.get("stage", "preparing"))
        if "partitions" in progress:
            stage += f" {progress['partitionsDone']}/{progress['partitions']} partitions"
        head = [str(progress.get("audienceId") or running["input"].get("manifestKey", "?")),
                str(progress.get("runId", "")), f"RUNNING ({stage})", "", ""]  # fmt: skip
        instances = progress.get("instances") or [{}]
        for n, instance in enumerate(instances):
            cells = [
                str(instance.get(k, ""))
                for k in ("instance", "sent", "delivered", "skipped", "rejected", "pending")
            ]
            table.add_row(*(head if n == 0 else [""] * 5), *cells)
    for run in data["runs"]:
        status = str(run.get("status"))
        if run.get("reason"):
            status += f" ({run['reason']})"
        if run.get("droppedRuns"):  # a fold out of time: their additions may stay extra at the vendor
            status += f", dropped runs: {', '.join(map(str, run['droppedRuns']))}"
        head = [str(run.get("audienceId")), str(run.get("runId") or run.get("snapshotId")), status, str(run.get("members", "")),
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

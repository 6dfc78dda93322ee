"""`activation status`: per destination, instance and audience, what was received and what became of
it (COM-08), with each DLQ's and queue's depth, and whether the books balance.

Counts come from the outcome ledger in the state table (one partition per type, pk=outcomes#<type>,
sk=<type>, <type>#<instance>, <type>#<instance>#<audience>; see activation_core.batch.record_ledger), depths
from SQS. Nothing is lost when, per destination,
    received - replayed = delivered + skipped + DLQ + queued (visible, in flight or delayed).
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from activation_cli.console import out, print_json
from activation_cli.snapshot import audience_sizes
from activation_cli.stack import STACK_ENV, Stack, aws_errors, client, load_stack
from activation_core import naming

# `redelivered`: messages SQS delivered again after their outcome was counted (activation_core.settled),
# counted apart: outside received - replayed = delivered + skipped + DLQ + queued.
COUNTERS = ("received", "delivered", "skipped", "rejected", "retried", "redelivered")


def ledger(table: str, destination_type: str) -> dict[str, dict[str, int]]:
    """Every ledger item of one destination type: sort key -> counters."""
    paginator = client("dynamodb").get_paginator("query")
    items: dict[str, dict[str, int]] = {}
    for page in paginator.paginate(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": naming.ledger_key(destination_type)}},
        ConsistentRead=True,
    ):
        for item in page.get("Items", []):
            items[item["sk"]["S"]] = {k: int(v["N"]) for k, v in item.items() if "N" in v}
    return items


def queue_depth(url: str) -> dict[str, int]:
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attributes = client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    visible, hidden, delayed = (int(attributes.get(name, 0)) for name in names)
    return {"visible": visible, "inFlight": hidden, "delayed": delayed}


def _counts(item: dict[str, int]) -> dict[str, int]:
    return {name: item.get(name, 0) for name in COUNTERS}


def report(stack: Stack, destination: str | None = None) -> dict[str, Any]:
    """The whole picture, as data (the table and --json both render it)."""
    types = [stack.known_type(destination)] if destination else stack.destination_types()
    sizes = audience_sizes(stack.output("StateTableName"))  # members of each audience's latest snapshot
    destinations = []
    for destination_type in types:
        items = ledger(stack.output("StateTableName"), destination_type)
        own = items.get(destination_type, {})
        dlq = queue_depth(stack.dead_letter_queue_url(destination_type))
        queue = queue_depth(stack.queue_url(destination_type))
        counts = _counts(own)
        replayed = own.get("replayed", 0)
        queued = queue["visible"] + queue["inFlight"] + queue["delayed"]
        dlq_depth = dlq["visible"] + dlq["inFlight"]
        open_records = (
            counts["received"] - replayed - counts["delivered"] - counts["skipped"] - dlq_depth - queued
        )
        reasons: dict[str, dict[str, int]] = defaultdict(dict)
        for key, value in own.items():
            if key.startswith("reason:"):
                outcome, _, reason = key.removeprefix("reason:").partition(":")
                reasons[outcome][reason] = value
        destinations.append(
            {
                "type": destination_type,
                **counts,
                "replayed": replayed,
                "dlq": dlq_depth,
                "queued": queued,
                "unaccounted": open_records,
                "balanced": open_records == 0,
                "reasons": {k: dict(sorted(v.items())) for k, v in sorted(reasons.items())},
                "instances": _instances(destination_type, items, sizes),
            }
        )
    return {"stack": stack.name, "destinations": destinations}


def _instances(
    destination_type: str, items: dict[str, dict[str, int]], sizes: dict[str, int]
) -> list[dict[str, Any]]:
    instances: dict[str, dict[str, Any]] = {}
    prefix = f"{destination_type}#"
    for key in sorted(items):
        if not key.startswith(prefix):
            continue
        instance_id, _, audience_id = key.removeprefix(prefix).partition("#")
        entry = instances.setdefault(instance_id, {"id": instance_id, **_counts({}), "audiences": []})
        if audience_id:
            entry["audiences"].append(
                {"id": audience_id, "members": sizes.get(audience_id), **_counts(items[key])}
            )
        else:
            entry.update(_counts(items[key]))
    return list(instances.values())


def render(data: dict[str, Any]) -> Group:
    table = Table(
        title=f"stack {data['stack']}: outcomes per destination, instance and audience", title_justify="left"
    )
    table.add_column("destination / instance / audience")
    table.add_column("members", justify="right")  # the audience's size in its latest snapshot
    for column in (*COUNTERS, "DLQ", "queued"):
        table.add_column(column, justify="right")
    table.add_column("books")
    notes: list[Text] = []
    for d in data["destinations"]:
        books = (
            Text("balanced", style="green")
            if d["balanced"]
            else Text(f"{d['unaccounted']} open", style="red")
        )
        table.add_row(
            Text(d["type"], style="bold"),
            "",
            *(str(d[c]) for c in COUNTERS),
            str(d["dlq"]),
            str(d["queued"]),
            books,
        )
        for instance in d["instances"]:
            table.add_row(f"  {instance['id']}", "", *(str(instance[c]) for c in COUNTERS), "", "", "")
            for audience in instance["audiences"]:
                members = "" if audience["members"] is None else str(audience["members"])
                table.add_row(
                    f"    {audience['id']}", members, *(str(audience[c]) for c in COUNTERS), "", "", ""
                )
        for outcome, reasons in d["reasons"].items():
            listed = ", ".join(f"{reason} {count}" for reason, count in reasons.items())
            notes.append(Text(f"{d['type']} {outcome}: {listed}"))
        if d["replayed"]:
            notes.append(Text(f"{d['type']}: {d['replayed']} replayed from the DLQ (received again)"))
    return Group(table, *notes)


def status(
    stack_name: Annotated[str, typer.Option("--stack", envvar=STACK_ENV, help="The deployed stack")],
    destination: Annotated[
        str | None, typer.Option("--destination", "-d", help="Only this destination type")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable result")] = False,
    watch: Annotated[
        float, typer.Option("--watch", min=0, help="Refresh every N seconds (Ctrl-C stops)")
    ] = 0,
    times: Annotated[int, typer.Option("--times", min=0, help="With --watch: stop after N refreshes")] = 0,
) -> None:
    """Received / delivered / skipped / rejected / retried / redelivered per destination, instance and
    audience, with DLQ and queue depth (COM-08). Exit code 3 when a destination's books do not balance."""
    stack = load_stack(stack_name)
    with aws_errors():
        data = report(stack, destination)
        if as_json:
            print_json(data)
        elif not watch:
            out.print(render(data))
        else:
            refreshes = 1
            with Live(render(data), console=out, auto_refresh=False) as live:
                try:
                    while not times or refreshes < times:
                        time.sleep(watch)
                        data = report(stack, destination)
                        live.update(render(data), refresh=True)
                        refreshes += 1
                except KeyboardInterrupt:
                    pass
    if not all(d["balanced"] for d in data["destinations"]):
        raise typer.Exit(3)

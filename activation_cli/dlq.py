"""`activation dlq list|replay`: read what failed and why, and send it back once the cause is fixed (COM-09).

Each DLQ message body is the original EventBridge event, so a replay is receive -> send to the
destination's queue -> delete, in batches of 10 (SQS's StartMessageMoveTask does the same on AWS,
but moto lacks it; this works on both). A message is deleted only after its copy was accepted.
A replay adds `replayed` to the destination's ledger: a replayed record is received again, so
`received - replayed = delivered + skipped + DLQ + queued` once the queue settles.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from activation_cli.console import err, out, print_json
from activation_cli.stack import STACK_ENV, Stack, aws_errors, client, load_stack
from activation_core import naming

app = typer.Typer(no_args_is_help=True, help="List and replay the dead-letter queues (COM-09).")

NO_REASON = "retries_exhausted_by_sqs"  # moved by the queue's redrive policy: no reason attribute
LIST_VISIBILITY = 30  # seconds a listed message stays hidden while the listing walks the queue
REPLAY_VISIBILITY = 120  # long enough to send a batch and delete it


def _attribute(message: dict[str, Any], name: str, default: str = "") -> str:
    return str(message.get("MessageAttributes", {}).get(name, {}).get("StringValue", default))


def describe(message: dict[str, Any]) -> dict[str, Any]:
    """What an operator needs to know about one DLQ message (never the profile's data)."""
    try:
        body = json.loads(message.get("Body", ""))
    except json.JSONDecodeError:
        body = {}
    detail = body.get("detail") if isinstance(body, dict) else None
    rejected_at = _attribute(message, "rejectedAt")
    return {
        "messageId": message["MessageId"],
        "reason": _attribute(message, "reason", NO_REASON),
        "detail": _attribute(message, "detail"),
        "receiveCount": _attribute(message, "receiveCount")
        or message.get("Attributes", {}).get("ApproximateReceiveCount", ""),
        "rejectedAt": datetime.fromtimestamp(int(rejected_at), UTC).isoformat()
        if rejected_at.isdigit()
        else "",
        "detailType": body.get("detail-type", "") if isinstance(body, dict) else "",
        "eventId": detail.get("eventId", "") if isinstance(detail, dict) else "",
    }


def _receive(sqs: Any, url: str, visibility: int) -> list[dict[str, Any]]:
    batch: list[dict[str, Any]] = sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        VisibilityTimeout=visibility,
        MessageAttributeNames=["All"],
        AttributeNames=["ApproximateReceiveCount"],
    ).get("Messages", [])
    return batch


def _show_again(sqs: Any, url: str, messages: list[dict[str, Any]]) -> None:
    for start in range(0, len(messages), 10):
        sqs.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(messages[start : start + 10])
            ],
        )


def walk(sqs: Any, url: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Every message (up to `limit`), left in the queue: each receive hides what it returned so the
    next one gets the following messages, and all are made visible again at the end."""
    seen: dict[str, dict[str, Any]] = {}
    try:
        while limit is None or len(seen) < limit:
            batch = _receive(sqs, url, LIST_VISIBILITY)
            fresh = [m for m in batch if m["MessageId"] not in seen]
            seen.update((m["MessageId"], m) for m in batch)  # the newest receipt handle counts
            if not fresh:  # empty, or the first ones are visible again (a long walk): all seen
                break
    finally:
        _show_again(sqs, url, list(seen.values()))
    messages = list(seen.values())
    return messages[:limit] if limit is not None else messages


def depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def record_replayed(stack: Stack, destination_type: str, count: int) -> None:
    """Count replays in the destination's ledger row (status uses it to balance the books)."""
    if count <= 0:
        return
    client("dynamodb").update_item(
        TableName=stack.output("StateTableName"),
        Key={"pk": {"S": naming.ledger_key(destination_type)}, "sk": {"S": destination_type}},
        UpdateExpression="ADD replayed :n",
        ExpressionAttributeValues={":n": {"N": str(count)}},
    )


def replay_messages(
    sqs: Any,
    dlq_url: str,
    queue_url: str,
    *,
    matches: Callable[[dict[str, Any]], bool] = lambda _: True,
    limit: int | None = None,
    on_batch: Callable[[int], None] = lambda _: None,
) -> tuple[int, int]:
    """Move matching messages from the DLQ to the queue; returns (replayed, seen but not replayed)."""
    replayed = 0
    kept: dict[str, dict[str, Any]] = {}  # seen but not replayed: hidden while we walk, shown at the end
    try:
        while limit is None or replayed < limit:
            batch = _receive(sqs, dlq_url, REPLAY_VISIBILITY)
            fresh = [m for m in batch if m["MessageId"] not in kept]
            kept.update((m["MessageId"], m) for m in batch if m["MessageId"] in kept)  # newest handle
            if not fresh:  # empty, or skipped messages visible again: nothing left to look at
                break
            chosen = [m for m in fresh if matches(m)]
            kept.update((m["MessageId"], m) for m in fresh if not matches(m))
            if limit is not None:
                kept.update((m["MessageId"], m) for m in chosen[limit - replayed :])
                chosen = chosen[: limit - replayed]
            if not chosen:
                continue
            sent = sqs.send_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(chosen)],
            )
            ok = {int(s["Id"]) for s in sent.get("Successful", [])}
            kept.update((m["MessageId"], m) for i, m in enumerate(chosen) if i not in ok)
            done = [m for i, m in enumerate(chosen) if i in ok]
            if done:
                # Deleted only once its copy is in the queue: a failure here duplicates, never loses
                # (and the functions' idempotency makes a duplicate harmless).
                sqs.delete_message_batch(
                    QueueUrl=dlq_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
                )
            replayed += len(done)
            on_batch(len(done))
    finally:
        _show_again(sqs, dlq_url, list(kept.values()))
    return replayed, len(kept)


@app.command("list")
def list_messages(
    destination: Annotated[str, typer.Option("--destination", "-d", help="Destination type, e.g. rainfocus")],
    stack_name: Annotated[str, typer.Option("--stack", envvar=STACK_ENV, help="The deployed stack")],
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Show at most N messages")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable result")] = False,
) -> None:
    """The messages in a destination's DLQ with their reason (left in place)."""
    stack = load_stack(stack_name)
    url = stack.dead_letter_queue_url(stack.known_type(destination))
    with aws_errors():
        messages = [describe(m) for m in walk(client("sqs"), url, limit)]
    if as_json:
        print_json({"destination": destination, "messages": messages})
        return
    table = Table(title=f"{destination} DLQ: {len(messages)} message(s)", title_justify="left")
    for column in ("event", "type", "reason", "detail", "receives", "rejected at"):
        table.add_column(column, overflow="fold")
    for m in messages:
        table.add_row(
            m["eventId"], m["detailType"], m["reason"], m["detail"], m["receiveCount"], m["rejectedAt"]
        )
    out.print(table)
    reasons: dict[str, int] = {}
    for m in messages:
        reasons[m["reason"]] = reasons.get(m["reason"], 0) + 1
    if reasons:
        out.print("by reason: " + ", ".join(f"{r} {n}" for r, n in sorted(reasons.items())))


@app.command()
def replay(
    *,
    destination: Annotated[str, typer.Option("--destination", "-d", help="Destination type, e.g. rainfocus")],
    stack_name: Annotated[str, typer.Option("--stack", envvar=STACK_ENV, help="The deployed stack")],
    reason: Annotated[
        str | None, typer.Option("--reason", help="Only messages whose reason starts with this")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Replay at most N messages")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable result")] = False,
) -> None:
    """Send DLQ messages back to the destination's queue (after fixing their cause)."""
    stack = load_stack(stack_name)
    stack.known_type(destination)
    dlq_url, queue_url = stack.dead_letter_queue_url(destination), stack.queue_url(destination)
    sqs = client("sqs")
    with aws_errors():
        waiting = depth(sqs, dlq_url)
    if waiting == 0:
        if as_json:
            print_json({"destination": destination, "replayed": 0, "leftInDlq": 0})
        else:
            out.print(f"the {destination} DLQ is empty")
        return
    if not yes:
        which = f" with reason '{reason}*'" if reason else ""
        typer.confirm(
            f"Replay up to {limit or waiting} of {waiting} message(s){which} to the {destination} queue?",
            abort=True,
        )

    def matches(message: dict[str, Any]) -> bool:
        return reason is None or _attribute(message, "reason", NO_REASON).startswith(reason)

    total = min(waiting, limit) if limit else waiting
    with (
        aws_errors(),
        Progress(
            TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), console=err, disable=as_json
        ) as progress,
    ):
        task = progress.add_task("replay", total=total)
        replayed, left = replay_messages(
            sqs, dlq_url, queue_url, matches=matches, limit=limit,
            on_batch=lambda n: progress.advance(task, n),
        )  # fmt: skip
        record_replayed(stack, destination, replayed)
        remaining = depth(sqs, dlq_url)
    if as_json:
        print_json(
            {"destination": destination, "replayed": replayed, "notReplayed": left, "leftInDlq": remaining}
        )
        return
    out.print(f"replayed {replayed} message(s) to the {destination} queue; {remaining} left in the DLQ")
    out.print(f"Watch them: activation status --stack {stack.name} --destination {destination}")

"""`activation upgrade-keys`: move the state items written before the keys carried the destination type.

Before, the order guards (`order#<instance>#<entity>`), waiting changes (`waiting#<instance>#<entity>`)
and both outcome ledgers (`pk=outcomes`, `pk=snapshot-outcomes`) were keyed without the type, so every
destination role had to be allowed every such key. The functions now read and write only
`activation_core.naming`'s typed keys, which their roles are limited to (docs/decisions.md, "Guard and
ledger keys per destination type"); this command, run once by an operator after deploying, moves each
old item under its typed key, so that ordering, the books of `activation status` and erasure requests
carry on across the upgrade:

- an old guard or waiting-change item is copied under its type's key (the type of its instance in the
  deployed destinations config), and the old item is deleted, both in one transaction; when the
  function already wrote that key since the deploy (from nothing: it never read the old key), the two
  are merged into it, per audience the later change applied and per waiting field the later time, on
  condition that the typed item did not change meanwhile;
- an old ledger row's counters are added to the typed row (the type is the sort key's first part; a
  snapshot row's instance gives it), and the old row is deleted in the same transaction, so a second
  run (or two at once) counts nothing twice;
- an old guard or waiting item of an instance no longer in the config is deleted (no function reads
  it any more, and no erasure request would reach it); an old snapshot-ledger row of such an instance
  is left and reported.

It scans the whole state table (operator credentials, not a function's role) and prints counts only:
an entity key is a hash of a person's identities and is never printed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Annotated, Any

import typer
from botocore.exceptions import ClientError

from activation_cli.config import read_pushed
from activation_cli.console import fail, out, print_json
from activation_cli.stack import STACK_ENV, aws_errors, client, load_stack
from activation_core import naming

_LEDGERS = {"outcomes": naming.ledger_key, "snapshot-outcomes": naming.snapshot_ledger_key}
_PER_ENTITY = {"order": naming.order_key, "waiting": naming.waiting_key}


def _old_items(dynamodb: Any, table: str) -> Iterator[dict[str, Any]]:
    """Items under an untyped key: a ledger row, or `<kind>#<instance>#<entity>` (two separators)."""
    paginator = dynamodb.get_paginator("scan")
    pages = paginator.paginate(
        TableName=table,
        FilterExpression="pk IN (:o, :s) OR begins_with(pk, :order) OR begins_with(pk, :waiting)",
        ExpressionAttributeValues={
            ":o": {"S": "outcomes"},
            ":s": {"S": "snapshot-outcomes"},
            ":order": {"S": "order#"},
            ":waiting": {"S": "waiting#"},
        },
        ConsistentRead=True,
    )
    for page in pages:
        for item in page.get("Items", []):
            pk = item["pk"]["S"]
            if pk in _LEDGERS or pk.count("#") == 2:
                yield item


def _refused(exc: ClientError) -> bool:
    """A condition failed or the transaction conflicted with another writer: read again and retry."""
    return bool(exc.response.get("Error", {}).get("Code") == "TransactionCanceledException")


def _delete_old(table: str, key: Mapping[str, Any]) -> dict[str, Any]:
    return {"Delete": {"TableName": table, "Key": key, "ConditionExpression": "attribute_exists(pk)"}}


def _move_ledger_row(dynamodb: Any, table: str, item: dict[str, Any], pk: str) -> bool:
    """Add the old row's counters to the typed row and delete the old row, in one transaction whose
    delete holds only while the counters are still the ones added (a writer of the old key meanwhile,
    or a conflicting transaction, makes it re-read and try again). False when another run moved it."""
    key = {"pk": item["pk"], "sk": item["sk"]}
    for _ in range(_MERGE_ROUNDS):
        try:
            dynamodb.transact_write_items(TransactItems=_ledger_move(table, key, item, pk))
        except ClientError as exc:
            if not _refused(exc):
                raise
        else:
            return True
        fresh = dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        if fresh is None:
            return False  # another run moved it meanwhile
        item = fresh
    raise RuntimeError("an old ledger row kept changing while it was moved: run the command again")


def _ledger_move(table: str, key: dict[str, Any], item: dict[str, Any], pk: str) -> list[dict[str, Any]]:
    counters = {name: value for name, value in item.items() if "N" in value}
    names = {f"#c{i}": name for i, name in enumerate(counters)}
    values = {f":v{i}": counters[name] for i, name in enumerate(counters)}
    unchanged = "".join(f" AND #c{i} = :v{i}" for i in range(len(counters)))
    delete: dict[str, Any] = {
        "TableName": table,
        "Key": key,
        "ConditionExpression": "attribute_exists(pk)" + unchanged,
        **({"ExpressionAttributeNames": names, "ExpressionAttributeValues": values} if counters else {}),
    }
    if not counters:
        return [{"Delete": delete}]
    add = {
        "TableName": table,
        "Key": {"pk": {"S": pk}, "sk": item["sk"]},
        "UpdateExpression": "ADD " + ", ".join(f"#c{i} :v{i}" for i in range(len(counters))),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
    return [{"Update": add}, {"Delete": delete}]


def _move_entity_item(dynamodb: Any, table: str, item: dict[str, Any], pk: str) -> bool:
    """Copy under the typed key and delete the old item; False when the typed key was written since
    (then the two are merged into it: `_merged`)."""
    old_key = {"pk": item["pk"], "sk": item["sk"]}
    typed_key = {"pk": {"S": pk}, "sk": item["sk"]}
    put: dict[str, Any] = {
        "TableName": table,
        "Item": {**item, "pk": {"S": pk}},
        "ConditionExpression": "attribute_not_exists(pk)",
    }
    moved = True
    for _ in range(_MERGE_ROUNDS):
        try:
            dynamodb.transact_write_items(TransactItems=[{"Put": put}, _delete_old(table, old_key)])
        except ClientError as exc:
            if not _refused(exc):
                raise
        else:
            return moved
        moved = False
        if "Item" not in dynamodb.get_item(TableName=table, Key=old_key, ConsistentRead=True):
            return False  # another run moved it meanwhile
        typed = dynamodb.get_item(TableName=table, Key=typed_key, ConsistentRead=True).get("Item")
        if typed is None:  # gone again (an erasure): the plain copy
            put = {
                "TableName": table,
                "Item": {**item, "pk": {"S": pk}},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
            continue
        version = _VERSION[item["pk"]["S"].partition("#")[0]]
        current = typed.get(version, {}).get("N")
        put = {
            "TableName": table,
            "Item": _merged(item, typed, version),
            "ConditionExpression": "#v = :v"
            if current
            else "attribute_exists(pk) AND attribute_not_exists(#v)",
            "ExpressionAttributeNames": {"#v": version},
            **({"ExpressionAttributeValues": {":v": {"N": current}}} if current else {}),
        }
    raise RuntimeError("the typed item kept changing while it was merged: run the command again")


# The attribute each kind's writer bumps on every write (guards.OrderGuard, waiting.WaitingChanges).
_VERSION = {"order": "v", "waiting": "version"}
_MERGE_ROUNDS = 5


def _merged(old: Mapping[str, Any], typed: Mapping[str, Any], version: str) -> dict[str, Any]:
    """The typed item with what the old one knew and it does not: per audience the later change applied
    (`t:`, with its events `e:` and lineages `o:`; both, at the same instant), per waiting field the later
    time; the later expiry; the version moved on (its writer's condition sees the change)."""
    merged = dict(typed)
    for name, value in old.items():
        if name.startswith("t:"):
            audience = name[2:]
            mine = typed.get(name)
            if mine is None or int(value["N"]) > int(mine["N"]):
                for part in ("t:", "e:", "o:"):
                    merged.pop(part + audience, None)
                    if part + audience in old:
                        merged[part + audience] = old[part + audience]
            elif int(value["N"]) == int(mine["N"]):
                for part in ("e:", "o:"):
                    union = set(old.get(part + audience, {}).get("SS", [])) | set(
                        typed.get(part + audience, {}).get("SS", [])
                    )
                    if union:
                        merged[part + audience] = {"SS": sorted(union)}
        elif name.startswith(("field:", "audience:")) or name == "ttl":
            mine = typed.get(name)
            if mine is None or float(value["N"]) > float(mine["N"]):
                merged[name] = value
    merged[version] = {"N": str(int(typed.get(version, {}).get("N", "0")) + 1)}
    return merged


def upgrade_state_keys(
    dynamodb: Any, table: str, instance_types: Mapping[str, str], *, dry_run: bool = False
) -> dict[str, int]:
    """Move every untyped item of the state table (the module doc); returns counts by what happened."""
    counts: Counter[str] = Counter()
    for item in _old_items(dynamodb, table):
        pk, sk = item["pk"]["S"], item["sk"]["S"]
        if pk in _LEDGERS:
            # `outcomes` rows start with the type; `snapshot-outcomes` rows end with the instance.
            type_ = sk.partition("#")[0] if pk == "outcomes" else instance_types.get(sk.rpartition("#")[2])
            if not type_:
                counts["ledger rows of an unknown instance, left"] += 1
                continue
            if not dry_run and not _move_ledger_row(dynamodb, table, item, _LEDGERS[pk](type_)):
                continue  # another run moved it meanwhile
            counts["ledger rows moved"] += 1
            continue
        kind, instance_id, entity = pk.split("#")
        type_ = instance_types.get(instance_id)
        if type_ is None:
            if not dry_run:
                dynamodb.delete_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})
            counts[f"{kind} items of an unknown instance, deleted"] += 1
            continue
        typed = _PER_ENTITY[kind](type_, instance_id, entity)
        if dry_run:
            moved = "Item" not in dynamodb.get_item(
                TableName=table, Key={"pk": {"S": typed}, "sk": item["sk"]}
            )
        else:
            moved = _move_entity_item(dynamodb, table, item, typed)
        counts[
            f"{kind} items moved" if moved else f"{kind} items already rewritten since the deploy, merged"
        ] += 1
    return dict(sorted(counts.items()))


def upgrade_keys(
    stack_name: Annotated[str, typer.Option("--stack", envvar=STACK_ENV, help="The deployed stack")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would move; change nothing")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable result")] = False,
) -> None:
    """Once, after deploying typed state keys: move the order guards, waiting changes and outcome
    ledgers written under the old untyped keys to their destination type's keys (docs/operations.md)."""
    stack = load_stack(stack_name)
    document = read_pushed(stack)
    destinations = document.get("destinations") if isinstance(document, dict) else None
    if not destinations:  # every instance would look removed, and its guards be deleted
        fail("the stack's destinations config could not be read or lists no instance: nothing was changed")
    instance_types = {str(d["id"]): str(d["type"]) for d in destinations if "id" in d and "type" in d}
    with aws_errors():
        counts = upgrade_state_keys(
            client("dynamodb"), stack.output("StateTableName"), instance_types, dry_run=dry_run
        )
    result = {"stack": stack.name, "dryRun": dry_run, "counts": counts}
    if as_json:
        print_json(result)
        return
    if not counts:
        out.print("nothing under the old keys: the state table is upgraded")
    for what, count in counts.items():
        out.print(f"{what}: {count}" + (" (dry run)" if dry_run else ""))

"""`activation upgrade-keys`: state written under the untyped keys of before carries on under the typed keys
(ordering, the books, erasure), once, whatever ran in between."""

from __future__ import annotations

from typing import Any

from activation_cli.upgrade import upgrade_state_keys
from activation_core import naming
from activation_core.guards import Change, OrderGuard, Verdict
from activation_core.waiting import WaitingChanges
from tests.support import applied_to

INSTANCES = {"mk": "marketo", "or": "outreach"}
ENTITY, OTHER, RACED = ("e1" * 32), ("e2" * 32), ("e3" * 32)


def _item(dynamodb: Any, table: str, pk: str, sk: str) -> dict[str, Any]:
    return dict(dynamodb.get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}}).get("Item") or {})


def _as_before(dynamodb: Any, table: str, typed_pk: str, old_pk: str, sk: str) -> None:
    """Move an item the layer wrote to the untyped key the layer of before used."""
    item = _item(dynamodb, table, typed_pk, sk)
    dynamodb.put_item(TableName=table, Item={**item, "pk": {"S": old_pk}})
    dynamodb.delete_item(TableName=table, Key={"pk": {"S": typed_pk}, "sk": {"S": sk}})


def _counters(dynamodb: Any, table: str, pk: str, sk: str) -> dict[str, int]:
    return {k: int(v["N"]) for k, v in _item(dynamodb, table, pk, sk).items() if "N" in v}


def _add(dynamodb: Any, table: str, pk: str, sk: str, **counts: int) -> None:
    dynamodb.put_item(
        TableName=table,
        Item={"pk": {"S": pk}, "sk": {"S": sk}, **{k: {"N": str(v)} for k, v in counts.items()}},
    )


def test_old_guards_waiting_changes_and_ledgers_move_to_their_types_keys_once(
    dynamodb: Any, state_table: str
) -> None:
    guard = OrderGuard(state_table, "marketo", dynamodb=dynamodb)
    guard.commit("mk", [Change(ENTITY, "evt-new", 20, ("aud",))], {})
    _as_before(
        dynamodb, state_table, naming.order_key("marketo", "mk", ENTITY), f"order#mk#{ENTITY}", "applied"
    )
    _add(dynamodb, state_table, f"waiting#or#{OTHER}", "fields", **{"field:email": 5})
    _add(dynamodb, state_table, f"order#gone#{ENTITY}", "applied", version=1)  # an instance since removed
    # A guard the function rewrote under its typed key after the deploy (newer): what it holds stays.
    guard.commit("mk", [Change(RACED, "evt-after", 30, ("aud",))], {})
    _add(dynamodb, state_table, f"order#mk#{RACED}", "applied", version=9)
    # Books: counted before the deploy (old rows), and since (typed rows) for the same keys.
    _add(dynamodb, state_table, "outcomes", "marketo", received=5, delivered=3)
    _add(dynamodb, state_table, "outcomes", "marketo#mk#aud", received=5, delivered=3)
    _add(dynamodb, state_table, naming.ledger_key("marketo"), "marketo", received=2, delivered=1)
    _add(dynamodb, state_table, "snapshot-outcomes", "aud#s1#mk", delivered=4)
    _add(dynamodb, state_table, "snapshot-outcomes", "aud#s1#gone", delivered=1)

    assert upgrade_state_keys(dynamodb, state_table, INSTANCES, dry_run=True)["order items moved"] == 1
    assert _item(dynamodb, state_table, f"order#mk#{ENTITY}", "applied")  # a dry run changes nothing

    counts = upgrade_state_keys(dynamodb, state_table, INSTANCES)

    assert counts == {
        "ledger rows moved": 3,
        "ledger rows of an unknown instance, left": 1,
        "order items already rewritten since the deploy, merged": 1,
        "order items moved": 1,
        "order items of an unknown instance, deleted": 1,
        "waiting items moved": 1,
    }
    # Ordering carries on: an event older than the one applied before the upgrade is still stale.
    state = OrderGuard(state_table, "marketo", dynamodb=dynamodb).read("mk", [ENTITY, RACED])
    assert applied_to(state[ENTITY], "aud").verdict(10, "evt-old") is Verdict.STALE
    assert (
        applied_to(state[RACED], "aud").verdict(30, "evt-after") is Verdict.DUPLICATE
    )  # the newer item kept
    assert _item(dynamodb, state_table, naming.waiting_key("outreach", "or", OTHER), "fields")["field:email"]
    # The books carry on: before + since, once.
    assert _counters(dynamodb, state_table, naming.ledger_key("marketo"), "marketo") == {
        "received": 7,
        "delivered": 4,
    }
    assert _counters(dynamodb, state_table, naming.snapshot_ledger_key("marketo"), "aud#s1#mk") == {
        "delivered": 4
    }
    # Nothing is left under an old key but the reported row; a second run moves and counts nothing.
    assert upgrade_state_keys(dynamodb, state_table, INSTANCES) == {
        "ledger rows of an unknown instance, left": 1
    }
    assert _counters(dynamodb, state_table, naming.ledger_key("marketo"), "marketo#mk#aud") == {
        "received": 5,
        "delivered": 3,
    }


def test_an_erasure_after_the_upgrade_reaches_the_moved_items(dynamodb: Any, state_table: str) -> None:
    """Before the move, the person's old items were out of reach of the typed erasure path."""
    _add(dynamodb, state_table, f"order#mk#{ENTITY}", "applied", version=1)
    _add(dynamodb, state_table, f"waiting#mk#{ENTITY}", "fields", **{"field:email": 5})
    upgrade_state_keys(dynamodb, state_table, INSTANCES)
    OrderGuard(state_table, "marketo", dynamodb=dynamodb).forget("mk", ENTITY)
    WaitingChanges(state_table, "marketo", dynamodb=dynamodb).forget("mk", ENTITY)
    scan = dynamodb.scan(TableName=state_table)["Items"]
    assert scan == []


def test_com_01_a_guard_rewritten_since_the_deploy_keeps_what_the_old_one_knew(
    dynamodb: Any, state_table: str
) -> None:
    """The function writes the typed guard from nothing after the deploy (it does not read the old key):
    for another audience, or even for an older change. The upgrade keeps, per audience, the later of
    the two changes, so an event older than one applied before the upgrade stays stale afterwards."""
    guard = OrderGuard(state_table, "marketo", dynamodb=dynamodb)
    guard.commit("mk", [Change(ENTITY, "evt-a", 100, ("aud-a", "aud-c"))], {})
    _as_before(
        dynamodb, state_table, naming.order_key("marketo", "mk", ENTITY), f"order#mk#{ENTITY}", "applied"
    )
    # Since the deploy: a change to aud-b, and an older one to aud-c (applied: the guard was empty).
    guard.commit("mk", [Change(ENTITY, "evt-b", 50, ("aud-b",)), Change(ENTITY, "evt-c", 40, ("aud-c",))], {})

    upgrade_state_keys(dynamodb, state_table, INSTANCES)

    state = guard.read("mk", [ENTITY])[ENTITY]
    assert applied_to(state, "aud-a").verdict(90, "evt-old") is Verdict.STALE
    assert applied_to(state, "aud-b").verdict(50, "evt-b") is Verdict.DUPLICATE
    assert applied_to(state, "aud-c").verdict(90, "evt-old") is Verdict.STALE
    assert _item(dynamodb, state_table, f"order#mk#{ENTITY}", "applied") == {}
    # And the guard still commits over the merged item (its version moved on).
    assert (
        guard.commit(
            "mk", [Change(ENTITY, "evt-d", 200, ("aud-a",))], guard.read("mk", [ENTITY])
        ).not_committed
        == 0
    )
    assert applied_to(guard.read("mk", [ENTITY])[ENTITY], "aud-a").verdict(150, "x") is Verdict.STALE


def test_com_08_counts_added_to_an_old_ledger_row_after_it_was_read_are_moved_too(
    dynamodb: Any, state_table: str
) -> None:
    """A function of before (or a DLQ replay) adds to the old row between the scan and the move: the
    old row is deleted only with the counters that were added to the typed one, so nothing is lost."""
    from activation_cli.upgrade import _move_ledger_row

    sk = "marketo#mk#aud-1"
    _add(dynamodb, state_table, "outcomes", sk, received=5, delivered=4)
    read = _item(dynamodb, state_table, "outcomes", sk)
    dynamodb.update_item(
        TableName=state_table,
        Key={"pk": {"S": "outcomes"}, "sk": {"S": sk}},
        UpdateExpression="ADD received :one, delivered :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    assert _move_ledger_row(dynamodb, state_table, read, naming.ledger_key("marketo"))
    assert _counters(dynamodb, state_table, naming.ledger_key("marketo"), sk) == {
        "received": 6,
        "delivered": 5,
    }
    assert _item(dynamodb, state_table, "outcomes", sk) == {}

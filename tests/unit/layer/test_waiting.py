"""Changes waiting for a rate limit, merged per entity across batches (activation_core.waiting, issue 18).

DynamoDB is moto in-process; the work items are built as the pipeline builds them.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from activation_core.mapping import MappedRecord
from activation_core.models.config import ActivatedAudience
from activation_core.models.events import AudienceMembership, MembershipStatus
from activation_core.outcomes import Kind, Outcome
from activation_core.pipeline import Activation, InboundRecord, WorkItem
from activation_core.waiting import WaitingChanges, has_waited

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
WAIT = Outcome.retry("rate_budget_exhausted", "", retry_after=600, waiting=True)


def item(
    key: str,
    seconds: int,
    *,
    person: str = "p1",
    fields: tuple[str, ...] = ("firstName",),
    audiences: tuple[str, ...] = ("aud-a",),
    waited: bool = True,
) -> WorkItem:
    activations = tuple(
        Activation(
            AudienceMembership(id=a, name=a, status=MembershipStatus.REALIZED),
            ActivatedAudience(id=a, name=a),
        )
        for a in audiences
    )
    record = InboundRecord(
        message_id=key,
        receive_count=2 if waited else 1,
        event_id=f"e-{key}",
        detail_type="Profile Audience Membership Changed",
        occurred_at=T0 + timedelta(seconds=seconds),
        entity="profile",
        identities={"id": person},
        attributes={},
        consents={},
        audiences=tuple(a.membership for a in activations),
        waited=waited,
    )
    return WorkItem(record, activations, MappedRecord({f: "x" for f in fields}, {"Id": person}))


def counting(dynamodb: Any) -> Counter[str]:
    calls: Counter[str] = Counter()
    dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: calls.update([model.name]))
    return calls


def test_issue18_an_older_waiting_change_is_superseded_by_a_newer_one_of_the_same_entity(
    dynamodb: Any, state_table: str
) -> None:
    store = WaitingChanges(state_table, "outreach", dynamodb=dynamodb)
    older, newer = item("old", 1), item("new", 2)
    store.note("inst", [newer], {"new": WAIT})  # batch 2 waits first...
    store.note("inst", [older], {"old": WAIT})  # ...then the older batch: it must not lower the time
    superseded = store.superseded("inst", [older, newer])
    assert {key: (o.kind, o.reason) for key, o in superseded.items()} == {"old": (Kind.SKIPPED, "superseded")}
    assert store.superseded("other-instance", [older]) == {}


def test_issue18_a_change_is_superseded_only_when_every_field_it_sets_is_set_by_newer_changes(
    dynamodb: Any, state_table: str
) -> None:
    store = WaitingChanges(state_table, "outreach", dynamodb=dynamodb)
    store.note(
        "inst",
        [item("n1", 5, audiences=("aud-a",)), item("n2", 6, audiences=("aud-b",))],
        {
            "n1": WAIT,
            "n2": WAIT,
        },
    )
    both = item("both", 1, audiences=("aud-a", "aud-b"))  # covered by n1 and n2 together
    extra = item("extra", 1, fields=("firstName", "title"))  # title is set by no newer change
    same_time = item("same", 5)  # not older than the newest: a retry of it, sent again
    other = item("other", 1, person="p2")
    assert set(store.superseded("inst", [both, extra, same_time, other])) == {"both"}


def test_issue18_records_that_never_waited_cost_no_read_and_delivered_ones_no_write(
    dynamodb: Any, state_table: str
) -> None:
    store = WaitingChanges(state_table, "outreach", dynamodb=dynamodb)
    calls = counting(dynamodb)
    fresh = [item(f"f{i}", i, person=f"p{i}", waited=False) for i in range(5)]
    assert store.superseded("inst", fresh) == {}
    store.note("inst", fresh, {i.key: Outcome.delivered() for i in fresh})
    store.note("inst", fresh, {i.key: Outcome.retry("vendor_5xx") for i in fresh})  # failing, not waiting
    assert calls == Counter()
    store.note("inst", fresh, {i.key: WAIT for i in fresh})
    assert calls == Counter(UpdateItem=5)  # one write per entity


def test_issue18_an_unreadable_store_supersedes_nothing(state_table: str, mocked_aws: None) -> None:
    store = WaitingChanges("no-such-table", "outreach")
    store.note("inst", [item("new", 2)], {"new": WAIT})  # logged, not raised
    assert store.superseded("inst", [item("old", 1)]) == {}


def test_issue18_a_record_has_waited_when_received_before_or_requeued() -> None:
    def record(count: str, attributes: dict[str, Any]) -> dict[str, Any]:
        return {"attributes": {"ApproximateReceiveCount": count}, "messageAttributes": attributes}

    requeued = {"activationRequeues": {"stringValue": "1", "dataType": "Number"}}
    assert [has_waited(record("1", {})), has_waited(record("2", {})), has_waited(record("1", requeued))] == [
        False,
        True,
        True,
    ]

"""Marketo's batch grouped by lead (marketo.grouping): one profile per dedupe value with the newest
data and the newest membership per audience; a record without a dedupe value is skipped, one that
cannot be sent is rejected, and every record is either decided or in exactly one profile."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from activation_core.mapping import MappedRecord
from activation_core.models.config import ActivatedAudience
from activation_core.models.events import AudienceMembership, MembershipStatus
from activation_core.outcomes import Kind, Outcome
from activation_core.pipeline import Activation, InboundRecord, WorkItem
from marketo.grouping import MISSING_DEDUPE_REASON, group
from marketo.models import DEDUPE_TARGET

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def item(
    key: str,
    seconds: int,
    dedupe: Any,
    *,
    first_name: Any = "Ada",
    audiences: dict[str, MembershipStatus] | None = None,
) -> WorkItem:
    activations = tuple(
        Activation(AudienceMembership(id=a, name=a, status=status), ActivatedAudience(id=a, name=a))
        for a, status in (audiences or {"aud-a": MembershipStatus.REALIZED}).items()
    )
    record = InboundRecord(
        message_id=key,
        receive_count=1,
        event_id=f"e-{key}",
        detail_type="Profile Audience Membership Changed",
        occurred_at=T0 + timedelta(seconds=seconds),
        entity="profile",
        identities={},
        attributes={},
        consents={},
        audiences=tuple(a.membership for a in activations),
    )
    return WorkItem(record, activations, MappedRecord({"firstName": first_name}, {DEDUPE_TARGET: dedupe}))


def grouped(
    items: list[WorkItem], *, syncs_profiles: bool = True
) -> tuple[dict[str, Any], dict[str, Outcome]]:
    final: dict[str, Outcome] = {}
    profiles = group(items, dedupe_field="email", syncs_profiles=syncs_profiles, final=final)
    # Nothing lost: each record is decided here or belongs to exactly one profile.
    in_profiles = [i.key for p in profiles.values() for i in p.items]
    assert sorted(in_profiles + list(final)) == sorted(i.key for i in items)
    return profiles, final


def test_several_changes_to_one_lead_become_one_profile_with_the_newest_data() -> None:
    items = [
        item("m1", 10, "Ada@Example.com", first_name="Old"),
        item("m2", 30, "ada@example.com", first_name="Newest"),
        item("m3", 20, " ADA@example.com ", first_name="Middle"),
    ]

    profiles, final = grouped(items)

    assert final == {} and list(profiles) == ["ada@example.com"]
    profile = profiles["ada@example.com"]
    assert (profile.newest.key, profile.lead["firstName"], profile.value) == (
        "m2",
        "Newest",
        "ada@example.com",
    )
    assert [i.key for i in profile.items] == ["m1", "m2", "m3"]


def test_each_audience_keeps_its_newest_membership_the_later_record_on_a_tie() -> None:
    realized, exited = MembershipStatus.REALIZED, MembershipStatus.EXITED
    items = [
        item("m1", 10, "a@example.com", audiences={"aud-a": realized, "aud-b": realized}),
        item("m2", 20, "a@example.com", audiences={"aud-a": exited}),
        item("m3", 5, "a@example.com", audiences={"aud-b": exited}),  # older: aud-b stays a member
        item("m4", 20, "a@example.com", audiences={"aud-a": realized}),  # same instant, later: wins
    ]

    profiles, _ = grouped(items)

    memberships = profiles["a@example.com"].memberships
    assert list(memberships) == ["aud-a", "aud-b"]
    assert (memberships["aud-a"].item.key, memberships["aud-a"].member) == ("m4", True)
    assert (memberships["aud-b"].item.key, memberships["aud-b"].member) == ("m1", True)


def test_a_record_without_a_dedupe_value_is_skipped_and_a_bad_one_rejected_naming_its_field() -> None:
    items = [
        item("m1", 0, None),
        item("m2", 0, "   "),
        item("m3", 0, "a,b@example.com"),
        item("m4", 0, "c@example.com", first_name=["not", "scalar"]),
        item("m5", 0, "d@example.com"),
    ]

    profiles, final = grouped(items)

    assert list(profiles) == ["d@example.com"]
    assert final["m1"].reason == final["m2"].reason == MISSING_DEDUPE_REASON
    assert final["m1"].kind is Kind.SKIPPED
    assert (final["m3"].kind, final["m3"].reason) == (Kind.REJECTED, f"invalid_field:{DEDUPE_TARGET}")
    assert (final["m4"].kind, final["m4"].reason) == (Kind.REJECTED, "invalid_field:firstName")


def test_audience_only_sends_no_attributes() -> None:
    profiles, final = grouped([item("m1", 0, "a@example.com", first_name=["ignored"])], syncs_profiles=False)

    assert final == {}
    assert profiles["a@example.com"].lead == {"email": "a@example.com"}

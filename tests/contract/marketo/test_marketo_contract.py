"""The Marketo connector against the fake Marketo server over HTTP: the matching table, partitions,
duplicates and batching (MKT-02, 03, 04, 05, 07, 08)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest

from activation_core.outcomes import Kind
from local.fakes.marketo import FakeMarketo
from tests.contract.marketo.conftest import (
    EXPO_LIST,
    WEBINAR,
    WEBINAR_LIST,
    Run,
    profile,
    settings_for,
)

KNOWN = "known@example.com"
NEW = "new@example.com"


@dataclass(frozen=True)
class Row:
    """One row of the seed's table (MKT-04) and what must hold afterwards."""

    sync_type: str
    person_action: str | None
    updates_known: bool
    creates_unmatched: bool
    listed: frozenset[str]
    unmatched_reason: str

    def __str__(self) -> str:
        return f"{self.sync_type}+{self.person_action or 'n/a'}"


MATRIX = [
    Row("profile_only", "update_and_create", True, True, frozenset(), "delivered"),
    Row("profile_only", "update_existing_only", True, False, frozenset(), "lead_not_found"),
    Row("audience_only", None, False, False, frozenset({KNOWN}), "lead_not_found"),
    Row("audience_and_profile", "update_and_create", True, True, frozenset({KNOWN, NEW}), "delivered"),
    Row("audience_and_profile", "update_existing_only", True, False, frozenset({KNOWN}), "lead_not_found"),
]


@pytest.mark.parametrize("row", MATRIX, ids=str)
def test_mkt_04_the_matching_table_holds_exactly(
    fake: FakeMarketo, run_with: Callable[..., Run], row: Row
) -> None:
    known_id = fake.add_lead(email=KNOWN, firstName="Old", lastName="Name", partition="Default")
    run = run_with(**settings_for(row.sync_type, row.person_action))
    outcomes = run([profile(KNOWN, first="Ada"), profile(NEW, first="Grace", last="Hopper")])

    assert outcomes["m-0"].kind is Kind.DELIVERED
    assert outcomes["m-1"].reason == row.unmatched_reason
    assert (fake.leads[known_id]["firstName"] == "Ada") is row.updates_known
    created = fake.leads_where("email", NEW)
    assert bool(created) is row.creates_unmatched
    if row.creates_unmatched:
        # MKT-07: new leads go to the chosen partition; the known lead stays where it was.
        assert [fake.partition_of(lead["id"]) for lead in created] == ["Expo"]
        assert fake.partition_of(known_id) == "Default"
    listed = {fake.leads[i]["email"] for i in fake.members(EXPO_LIST)}
    assert listed == row.listed
    if row.sync_type == "audience_only":
        assert fake.calls_to("sync") == []  # MKT-02: never creates, never updates
    if row.sync_type == "profile_only":
        assert fake.calls_to("list_add") == [] and fake.calls_to("list_remove") == []
    assert len(fake.leads) == 1 + int(row.creates_unmatched)


def test_mkt_02_audience_only_adds_and_removes_existing_leads_only(
    fake: FakeMarketo, run_with: Callable[..., Run]
) -> None:
    joiner = fake.add_lead(email="joiner@example.com", firstName="Old")
    leaver = fake.add_lead(email="leaver@example.com")
    fake.lists[EXPO_LIST].add(leaver)
    run = run_with(**settings_for("audience_only", None))
    outcomes = run(
        [
            profile("joiner@example.com", first="New"),
            profile("leaver@example.com", status="exited"),
            profile("stranger@example.com"),
        ]
    )
    assert [outcomes[f"m-{i}"].reason for i in range(3)] == ["delivered", "delivered", "lead_not_found"]
    assert fake.members(EXPO_LIST) == {joiner}
    assert fake.leads[joiner]["firstName"] == "Old"  # attributes never written
    assert len(fake.leads) == 2
    (lookup,) = fake.calls_to("lookup")  # one lookup for the three profiles
    assert lookup.query["filterType"] == ["email"]


def test_mkt_02_audience_and_profile_uses_the_lead_ids_the_sync_returned(
    fake: FakeMarketo, run_with: Callable[..., Run]
) -> None:
    run = run_with(**settings_for("audience_and_profile", "update_and_create"))
    outcomes = run([profile(f"p{i}@example.com") for i in range(5)])
    assert {o.kind for o in outcomes.values()} == {Kind.DELIVERED}
    assert fake.calls_to("lookup") == []  # the sync returned every lead id
    (add,) = fake.calls_to("list_add")
    assert sorted(int(i) for i in add.query["id"]) == sorted(fake.members(EXPO_LIST))
    assert len(fake.members(EXPO_LIST)) == 5


@pytest.mark.parametrize("sync_type", ["audience_only", "audience_and_profile"])
def test_com_04_an_existing_member_joins_the_list_like_a_realized_one(
    fake: FakeMarketo, run_with: Callable[..., Run], sync_type: str
) -> None:
    lead = fake.add_lead(email="ada@example.com", firstName="Old")
    run = run_with(
        **settings_for(sync_type, None if sync_type == "audience_only" else "update_existing_only")
    )
    outcomes = run([profile("ada@example.com", status="existing")])
    assert outcomes["m-0"].kind is Kind.DELIVERED
    assert fake.members(EXPO_LIST) == {lead}


def test_mkt_02_an_exit_removes_the_lead_from_that_audience_list_only(
    fake: FakeMarketo, run_with: Callable[..., Run]
) -> None:
    lead = fake.add_lead(email="ada@example.com", firstName="Ada")
    fake.lists[EXPO_LIST].add(lead)
    fake.lists[WEBINAR_LIST].add(lead)
    run = run_with(**settings_for("audience_and_profile", "update_existing_only"))
    outcomes = run([profile("ada@example.com", status="exited")])
    assert outcomes["m-0"].kind is Kind.DELIVERED
    assert fake.members(EXPO_LIST) == set() and fake.members(WEBINAR_LIST) == {lead}
    assert fake.calls_to("sync") == []  # leaving an audience writes no attribute


def test_mkt_02_profile_only_keeps_leads_when_a_profile_exits(
    fake: FakeMarketo, run_with: Callable[..., Run]
) -> None:
    run = run_with(**settings_for("profile_only", "update_and_create"))
    outcomes = run([profile("gone@example.com", status="exited")])
    assert outcomes["m-0"].reason == "audience_exited"
    assert fake.calls_to("sync") == [] and fake.leads == {}


def test_mkt_03_update_existing_only_never_creates_a_lead(
    fake: FakeMarketo, run_with: Callable[..., Run]
) -> None:
    run = run_with(**settings_for("audience_and_profile", "update_existing_only"))
    outcomes = run([profile(f"nobody{i}@example.com") for i in range(3)])
    assert {o.reason for o in outcomes.values()} == {"lead_not_found"}
    assert {o.kind for o in outcomes.values()} == {Kind.SKIPPED}
    assert fake.leads == {} and fake.creations == {}
    (sync,) = fake.calls_to("sync")
    assert sync.json()["action"] == "updateOnly" and "partitionName" not in sync.json()


def test_mkt_03_update_and_create_creates_unmatched_profiles(
    fake: FakeMarketo, run_with: Callable[..., Run]
) -> None:
    run = run_with(**settings_for("profile_only", "update_and_create"))
    outcomes = run([profile("first@example.com", first="First", last="Timer")])
    assert outcomes["m-0"].detail.endswith("created")
    (lead,) = fake.leads_where("email", "first@example.com")
    assert (lead["firstName"], lead["lastName"]) == ("First", "Timer")
    (sync,) = fake.calls_to("sync")
    assert sync.json()["action"] == "createOrUpdate" and sync.json()["lookupField"] == "email"


@pytest.mark.parametrize(("partition", "expected"), [("Expo", "Expo"), (None, "Default")])
def test_mkt_07_new_leads_go_to_the_chosen_partition_or_default(
    fake: FakeMarketo, run_with: Callable[..., Run], partition: str | None, expected: str
) -> None:
    run = run_with(**settings_for("profile_only", "update_and_create", partition=partition))
    run([profile("fresh@example.com")])
    (lead,) = fake.leads_where("email", "fresh@example.com")
    assert fake.partition_of(lead["id"]) == expected
    assert fake.calls_to("sync")[0].json()["partitionName"] == expected


def test_mkt_07_matching_searches_all_partitions(fake: FakeMarketo, run_with: Callable[..., Run]) -> None:
    fake.add_partition("EMEA")
    elsewhere = fake.add_lead(email="ada@example.com", firstName="Old", partition="EMEA")
    run = run_with(**settings_for("audience_and_profile", "update_and_create", partition="Expo"))
    outcomes = run([profile("ada@example.com", first="Ada")])
    assert outcomes["m-0"].kind is Kind.DELIVERED
    # Found in EMEA and updated there: no duplicate lead in Expo, and it joined the list.
    assert [lead["id"] for lead in fake.leads_where("email", "ada@example.com")] == [elsewhere]
    assert fake.leads[elsewhere]["firstName"] == "Ada" and fake.partition_of(elsewhere) == "EMEA"
    assert fake.members(EXPO_LIST) == {elsewhere}


@pytest.mark.parametrize("sync_type", ["audience_and_profile", "profile_only"])
def test_mkt_08_only_the_most_recently_updated_matching_lead_is_updated(
    fake: FakeMarketo, run_with: Callable[..., Run], sync_type: str
) -> None:
    now = fake.clock()
    stale = fake.add_lead(email="dup@example.com", firstName="Stale", updated_at=now - 7200)
    recent = fake.add_lead(email="dup@example.com", firstName="Recent", updated_at=now - 60)
    older = fake.add_lead(email="dup@example.com", firstName="Older", updated_at=now - 3600)
    run = run_with(**settings_for(sync_type, "update_existing_only"))
    outcomes = run([profile("dup@example.com", first="Ada")])
    assert outcomes["m-0"].kind is Kind.DELIVERED
    assert "most recently updated of 3" in outcomes["m-0"].detail
    assert [fake.leads[i]["firstName"] for i in (stale, recent, older)] == ["Stale", "Ada", "Older"]
    expected_members = {recent} if sync_type == "audience_and_profile" else set()
    assert fake.members(EXPO_LIST) == expected_members


def test_mkt_08_audience_only_lists_the_most_recently_updated_lead(
    fake: FakeMarketo, run_with: Callable[..., Run]
) -> None:
    now = fake.clock()
    fake.add_lead(email="dup@example.com", updated_at=now - 7200)
    recent = fake.add_lead(email="dup@example.com", updated_at=now - 60)
    run = run_with(**settings_for("audience_only", None))
    run([profile("dup@example.com")])
    assert fake.members(EXPO_LIST) == {recent}


def test_mkt_05_a_dedupe_field_that_is_not_searchable_stops_delivery(
    fake: FakeMarketo, run_with: Callable[..., Run]
) -> None:
    fake.add_field("nickname")  # a field, but not searchable in this instance
    run = run_with(dedupeField="nickname", **settings_for("profile_only", "update_existing_only"))
    outcomes = run([profile("ada@example.com")])
    assert outcomes["m-0"].kind is Kind.RETRY and outcomes["m-0"].reason == "invalid_config:marketo-expo2026"
    assert "settings.dedupeField" in outcomes["m-0"].detail and "searchable" in outcomes["m-0"].detail
    assert fake.calls_to("sync") == [] and fake.calls_to("lookup") == []


def test_mkt_05_a_custom_searchable_dedupe_field_matches_leads(
    fake: FakeMarketo, connection: Any, function_settings: Any, recorder: Any
) -> None:
    from tests.contract.marketo.conftest import make_run, marketo_instance

    lead = fake.add_lead(email="someone.else@example.com", crmId="CRM-0001")
    instance = marketo_instance(dedupeField="crmId", **settings_for("audience_only", None))
    instance["mapping"][0]["source"] = "identities.crmId"
    instance["mapping"][0]["transforms"] = ["trim"]
    event = profile("ada@example.com")
    event["detail"]["profile"]["identities"]["crmId"] = "crm-0001"  # Marketo matches case-insensitively
    outcomes = make_run(function_settings, recorder, instance)([event])
    assert outcomes["m-0"].kind is Kind.DELIVERED
    assert fake.members(EXPO_LIST) == {lead}
    assert fake.calls_to("lookup")[0].query["filterType"] == ["crmId"]


def test_mkt_01_an_unknown_partition_stops_delivery_naming_the_field(
    fake: FakeMarketo, run_with: Callable[..., Run]
) -> None:
    run = run_with(**settings_for("profile_only", "update_and_create", partition="Nowhere"))
    outcomes = run([profile("ada@example.com")])
    # Refused when the instance connects (MKT-01): the reason names the instance.
    assert outcomes["m-0"].reason == "invalid_config:marketo-expo2026"
    assert "settings.partition" in outcomes["m-0"].detail
    assert fake.calls_to("sync") == []


def test_mkt_05_a_mapped_target_marketo_does_not_know_stops_delivery(
    fake: FakeMarketo, connection: Any, function_settings: Any, recorder: Any
) -> None:
    from tests.contract.marketo.conftest import make_run, marketo_instance

    instance = marketo_instance()
    instance["mapping"].append({"source": "attributes.person.shoeSize", "target": "shoeSize"})
    outcomes = make_run(function_settings, recorder, instance)([profile("ada@example.com")])
    assert (
        outcomes["m-0"].reason == "invalid_config:marketo-expo2026"
        and "mapping.shoeSize" in outcomes["m-0"].detail
    )


def test_describe_and_partitions_are_read_once_per_container(
    fake: FakeMarketo, run_with: Callable[..., Run]
) -> None:
    run = run_with(**settings_for("profile_only", "update_and_create"))
    for i in range(3):
        run([profile(f"p{i}@example.com")])
    assert len(fake.calls_to("describe2")) == 1 and len(fake.calls_to("partitions")) == 1


def test_sync_calls_carry_at_most_300_records(fake: FakeMarketo, run_with: Callable[..., Run]) -> None:
    run = run_with(**settings_for("audience_and_profile", "update_and_create"))
    outcomes = run([profile(f"p{i:04d}@example.com") for i in range(301)])
    assert {o.kind for o in outcomes.values()} == {Kind.DELIVERED}
    assert [len(r.json()["input"]) for r in fake.calls_to("sync")] == [300, 1]
    assert [len(r.query["id"]) for r in fake.calls_to("list_add")] == [300, 1]
    assert len(fake.members(EXPO_LIST)) == 301


def test_mkt_07_lookups_are_openapi_gets_under_8_kb_each_value_once(
    fake: FakeMarketo, run_with: Callable[..., Run]
) -> None:
    """getLeadsByFilterUsingGET with comma-separated filterValues (as documented), split by URI
    length; never the POST with _method=GET, which marketo-rest.json does not describe."""
    emails = [f"a.rather.long.address.number.{i:04d}@subdomain.example.com" for i in range(450)]
    for email in emails[::3]:
        fake.add_lead(email=email)
    run = run_with(**settings_for("audience_only", None))
    outcomes = run([profile(email) for email in emails])
    lookups = fake.calls_to("lookup")
    assert {r.method for r in lookups} == {"GET"}
    assert all(len(r.query["filterValues"]) == 1 for r in lookups)  # one comma-separated parameter
    groups = [r.query["filterValues"][0].split(",") for r in lookups]
    assert sorted(v for g in groups for v in g) == sorted(emails)  # every value once
    assert all(len(g) <= 300 for g in groups)
    uris = [len(r.path) + 1 + len(urlencode(r.query, doseq=True)) for r in lookups]
    assert max(uris) <= 8000
    # Each URI carries ~100 of these 57-character values (+ 3 for the encoded @, + 3 for the comma):
    # 300 + 150 values need 3 + 2 GETs, at most.
    assert len(lookups) <= math.ceil(300 * 63 / 7500) + math.ceil(150 * 63 / 7500)
    assert sum(o.kind is Kind.DELIVERED for o in outcomes.values()) == 150
    assert sum(o.reason == "lead_not_found" for o in outcomes.values()) == 300
    assert fake.refusals["414"] == 0


def test_mkt_07_a_lookup_of_300_typical_e_mails_takes_the_gets_the_call_plan_counts(
    fake: FakeMarketo, run_with: Callable[..., Run]
) -> None:
    """`call_plan` counts LOOKUP_GETS_PER_GROUP GETs per 300 lookups (the CLI's backfill estimate)."""
    from marketo.client import LOOKUP_GETS_PER_GROUP

    emails = [f"first.last{i:04d}@example.com" for i in range(300)]  # 28 characters
    run = run_with(**settings_for("audience_only", None))
    run([profile(email) for email in emails])
    assert len(fake.calls_to("lookup")) == LOOKUP_GETS_PER_GROUP


def test_several_changes_to_one_lead_in_a_batch_send_one_record(
    fake: FakeMarketo, run_with: Callable[..., Run]
) -> None:
    run = run_with(**settings_for("audience_and_profile", "update_and_create"))
    outcomes = run(
        [
            profile("ada@example.com", first="Newest", occurred_at="2026-11-28T10:00:05Z"),
            profile("ADA@example.com", first="Oldest", occurred_at="2026-11-28T10:00:00Z"),
            profile("ada@example.com", audience=WEBINAR, occurred_at="2026-11-28T10:00:01Z"),
        ]
    )
    (sync,) = fake.calls_to("sync")
    assert len(sync.json()["input"]) == 1 and sync.json()["input"][0]["firstName"] == "Newest"
    assert (outcomes["m-0"].kind, outcomes["m-1"].reason, outcomes["m-2"].kind) == (
        Kind.DELIVERED,
        "superseded",
        Kind.DELIVERED,
    )
    (lead,) = fake.leads_where("email", "ada@example.com")
    assert fake.members(EXPO_LIST) == {lead["id"]} and fake.members(WEBINAR_LIST) == {lead["id"]}
    assert fake.duplicate_entities() == []


def test_a_record_marketo_refuses_is_rejected_with_its_code_and_the_rest_delivered(
    fake: FakeMarketo, run_with: Callable[..., Run]
) -> None:
    run = run_with(**settings_for("audience_and_profile", "update_and_create"))
    outcomes = run([profile("ok@example.com"), profile("bad@example.com", organization__employees="lots")])
    assert outcomes["m-0"].kind is Kind.DELIVERED
    assert (outcomes["m-1"].kind, outcomes["m-1"].reason) == (Kind.REJECTED, "marketo_1001")
    assert "integer" in outcomes["m-1"].detail
    assert len(fake.members(EXPO_LIST)) == 1


def test_the_fake_leads_have_the_shape_the_docs_show(fake: FakeMarketo, run_with: Callable[..., Any]) -> None:
    run = run_with(**settings_for("profile_only", "update_and_create"))
    run([profile("ada@example.com")])
    (lead,) = fake.leads_where("email", "ada@example.com")
    assert {"id", "createdAt", "updatedAt", "leadPartitionId"} <= set(lead)


def test_mkt_09_account_events_are_skipped_and_never_sent(
    fake: FakeMarketo, run_with: Callable[..., Run]
) -> None:
    from tests.support import load_event

    run = run_with(**settings_for("audience_and_profile", "update_and_create"))
    account = load_event("account-membership-realized")
    account["detail"]["audiences"][0]["id"] = "aud-expo-invitees"  # even on an activated audience id
    outcomes = run([account])
    assert (outcomes["m-0"].kind, outcomes["m-0"].reason) == (Kind.SKIPPED, "unsupported_entity")
    # Only the connection-time partition check (MKT-01) reached Marketo: nothing about the account.
    assert [r.path for r in fake.requests if r.path.startswith("/rest/")] == [
        "/rest/v1/leads/partitions.json"
    ]

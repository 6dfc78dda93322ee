"""Profiles with gaps in their data (MKT-03, MKT-05, MKT-06): what Marketo cannot use is skipped with a
reason, counted in monitoring, never created half-filled and never a DLQ rejection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activation_core.outcomes import Kind
from local.fakes.marketo import FakeMarketo
from tests.contract.marketo.conftest import (
    EXPO_LIST,
    Recorder,
    Run,
    make_run,
    marketo_instance,
    profile,
    settings_for,
)


def _crm_deduped(sync_type: str, person_action: str | None) -> dict[str, Any]:
    """The example instance deduplicating on the searchable custom field crmId, e-mail mapped as a field."""
    instance = marketo_instance(dedupeField="crmId", **settings_for(sync_type, person_action))
    instance["mapping"][0]["source"] = "identities.crmId"
    instance["mapping"][0]["transforms"] = ["trim"]
    instance["mapping"] = [row for row in instance["mapping"] if row["target"] != "crmId"]
    instance["mapping"].append({"source": "identities.email", "target": "email"})
    return instance


def _with_crm(email: str | None, crm_id: str) -> dict[str, Any]:
    event = profile(email or f"{crm_id}@unused.example.com")
    event["detail"]["eventId"] = f"evt-{crm_id}"
    identities = {"crmId": crm_id} if email is None else {"crmId": crm_id, "email": email}
    event["detail"]["profile"]["identities"] = identities
    return event


def test_mkt_06_a_profile_without_email_is_never_created(
    fake: FakeMarketo, connection: Any, function_settings: Any, recorder: Recorder
) -> None:
    known = fake.add_lead(email="known@example.com", crmId="CRM-2", firstName="Old")
    run = make_run(function_settings, recorder, _crm_deduped("audience_and_profile", "update_and_create"))
    outcomes = run([
        _with_crm("new@example.com", "CRM-1"),  # complete: created
        _with_crm(None, "CRM-2"),  # no e-mail but an existing lead: updated and listed
        _with_crm(None, "CRM-3"),  # no e-mail, no lead: Marketo could only create it without e-mail
    ])  # fmt: skip

    assert outcomes["m-0"].kind is Kind.DELIVERED
    assert outcomes["m-1"].kind is Kind.DELIVERED
    assert fake.leads[known]["firstName"] == "Ada"
    assert (outcomes["m-2"].kind, outcomes["m-2"].reason) == (Kind.SKIPPED, "missing_email")
    assert fake.leads_where("crmId", "CRM-3") == []
    assert all(lead.get("email") for lead in fake.leads.values())
    assert fake.members(EXPO_LIST) == {fake.leads_where("crmId", "CRM-1")[0]["id"], known}
    # Nothing about it reached a create: the profile without e-mail only ever went in an updateOnly call.
    for call in fake.calls_to("sync"):
        body = call.json()
        if body["action"] != "updateOnly":
            assert all(record.get("email") for record in body["input"])


def test_mkt_06_update_existing_only_does_not_need_email(
    fake: FakeMarketo, connection: Any, function_settings: Any, recorder: Recorder
) -> None:
    run = make_run(function_settings, recorder, _crm_deduped("profile_only", "update_existing_only"))
    outcomes = run([_with_crm(None, "CRM-9")])
    assert (outcomes["m-0"].kind, outcomes["m-0"].reason) == (Kind.SKIPPED, "lead_not_found")


def test_mkt_05_a_profile_without_a_dedupe_value_is_skipped_not_rejected(
    fake: FakeMarketo, run_with: Callable[..., Run]
) -> None:
    run = run_with(**settings_for("audience_and_profile", "update_and_create"))
    event = profile("x@example.com")
    event["detail"]["profile"]["identities"] = {"ecid": "123"}  # no email: nothing to match on
    outcomes = run([event, profile("ada@example.com")])

    assert (outcomes["m-0"].kind, outcomes["m-0"].reason) == (Kind.SKIPPED, "missing_dedupe_value")
    assert "DedupeField" in outcomes["m-0"].detail
    assert outcomes["m-1"].kind is Kind.DELIVERED
    (sync,) = fake.calls_to("sync")
    assert [record["email"] for record in sync.json()["input"]] == ["ada@example.com"]


def test_mkt_05_a_dedupe_value_mapped_as_optional_is_skipped_when_absent(
    fake: FakeMarketo, connection: Any, function_settings: Any, recorder: Recorder
) -> None:
    instance = marketo_instance(**settings_for("audience_only", None))
    instance["mapping"][0]["required"] = False
    event = profile("x@example.com")
    event["detail"]["profile"]["identities"] = {"email": "  "}
    outcomes = make_run(function_settings, recorder, instance)([event])
    assert (outcomes["m-0"].kind, outcomes["m-0"].reason) == (Kind.SKIPPED, "missing_dedupe_value")
    assert fake.calls_to("lookup") == []


def test_an_unusable_dedupe_value_is_still_rejected_naming_the_field(
    fake: FakeMarketo, run_with: Callable[..., Run]
) -> None:
    run = run_with(**settings_for("profile_only", "update_and_create"))
    outcomes = run([profile("a,b@example.com")])  # a comma cannot be a filter value
    assert (outcomes["m-0"].kind, outcomes["m-0"].reason) == (Kind.REJECTED, "invalid_field:DedupeField")
    assert fake.calls_to("sync") == []

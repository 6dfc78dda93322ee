"""Erasure through the Marketo connector against the fake over HTTP: the person's leads (every
partition, found by the dedupe field) are deleted with Delete Leads (`POST /rest/v1/leads/delete.json`);
a person Marketo does not hold is `erasure_not_found`."""

from __future__ import annotations

import copy
from typing import Any

from activation_core.outcomes import Kind
from local.fakes.marketo import FakeMarketo
from tests.contract.marketo.conftest import Recorder, make_run
from tests.support import load_event


def erasure_request(email: str, request_id: str = "dsr-1") -> dict[str, Any]:
    event = load_event("profile-membership-realized")
    event["detail-type"] = "Profile Erasure Requested"
    detail = copy.deepcopy(event["detail"])
    event["detail"] = {
        "schemaVersion": "1",
        "eventId": f"evt-{request_id}",
        "requestId": request_id,
        "occurredAt": detail["occurredAt"],
        "profile": {"identities": {"email": email}},
    }
    return event


def test_erasure_deletes_every_lead_of_the_person_and_only_them(
    connection: Any, fake: FakeMarketo, function_settings: Any, recorder: Recorder
) -> None:
    first = fake.add_lead(email="grace@example.org", partition="Default")
    second = fake.add_lead(email="Grace@Example.org", partition="Expo")  # a duplicate in another partition
    other = fake.add_lead(email="ada@example.org")
    run = make_run(function_settings, recorder)

    outcomes = run([erasure_request("grace@example.org"), erasure_request("nobody@example.org", "dsr-2")])

    assert outcomes["m-0"].kind is Kind.DELIVERED and "2 Marketo lead(s) deleted" in outcomes["m-0"].detail
    assert (outcomes["m-1"].kind, outcomes["m-1"].reason) == (Kind.SKIPPED, "erasure_not_found")
    assert first not in fake.leads and second not in fake.leads and other in fake.leads
    deletes = [r for r in fake.requests if r.path == "/rest/v1/leads/delete.json"]
    assert len(deletes) == 1  # one call for every lead found in the batch

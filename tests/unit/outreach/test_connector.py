"""The Outreach connector through the pipeline, with a recording client (no network): what is sent,
in how many calls, and which outcome each record gets (OUT-02..04, OUT-06, OUT-07)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from activation_core.config_store import parse_destinations
from activation_core.errors import ActivationError, RetryableError, ThrottledError
from activation_core.models.config import DestinationInstance
from activation_core.outcomes import Kind
from activation_core.pipeline import Connector, Entity, Pipeline, RecordResult
from activation_core.settings import FunctionSettings
from outreach.client import BAD_REQUEST_MESSAGE, FieldRejectedError
from outreach.service import OutreachConnector, validate_instance
from tests.support import example_config, load_event, sqs_record

SETTINGS = FunctionSettings(
    destination_type="outreach",
    config_parameter_name="/test/destinations",
    state_table_name="unused",
    dead_letter_queue_url="unused",
)
EXPO = {
    "id": "aud-expo-invitees",
    "name": "Expo 2026 invitees",
    "status": "realized",
    "origin": "segmentation",
}
WEBINAR = {
    "id": "aud-outreach-webinar",
    "name": "Webinar attendees",
    "status": "realized",
    "origin": "upload",
}


class StubGate:
    def __init__(self) -> None:
        self.planned: list[int] = []

    def plan(self, calls: int) -> None:
        self.planned.append(calls)


class RecordingClient:
    """Stands in for OutreachClient: records each PATCH; `respond` may raise a vendor error."""

    def __init__(self, respond: Callable[[int, dict[str, Any]], None] | None = None) -> None:
        self.gate = StubGate()
        self.calls: list[tuple[int, dict[str, Any]]] = []
        self.respond = respond
        self._lock = threading.Lock()

    def warm_token(self) -> None:
        return None

    def update_prospect(self, prospect_id: int, attributes: Mapping[str, Any]) -> None:
        with self._lock:
            self.calls.append((prospect_id, dict(attributes)))
        if self.respond is not None:
            self.respond(prospect_id, dict(attributes))


class StubDestination:
    destination_type = "outreach"
    entity: Entity = "profile"

    def __init__(self, client: RecordingClient) -> None:
        self.client = client

    def connect(self, instance: DestinationInstance, settings: FunctionSettings) -> Connector:
        outreach_settings, mapping_ids = validate_instance(instance)
        return OutreachConnector(instance, outreach_settings, mapping_ids, self.client)  # type: ignore[arg-type]


def profile(
    outreach_id: str | None,
    audiences: list[dict[str, Any]],
    *,
    occurred_at: str = "2026-11-28T10:00:00Z",
    title: str | None = None,
    event_id: str = "evt-x",
) -> dict[str, Any]:
    event = load_event("profile-membership-realized")
    detail = event["detail"]
    detail["eventId"], detail["occurredAt"], detail["audiences"] = event_id, occurred_at, audiences
    identities = detail["profile"]["identities"]
    if outreach_id is None:
        identities.pop("outreachId")
    else:
        identities["outreachId"] = outreach_id
    if title is not None:
        detail["profile"]["attributes"]["person"]["jobTitle"] = title
    return event


def run(client: RecordingClient, events: list[dict[str, Any]]) -> dict[str, RecordResult]:
    config = parse_destinations(example_config())
    records = [sqs_record(e, f"m-{i}") for i, e in enumerate(events)]
    return Pipeline(StubDestination(client), SETTINGS, lambda: config).process(records)


def test_out_03_each_audience_status_goes_to_its_custom_field_with_the_mapped_attributes() -> None:
    client = RecordingClient()
    results = run(client, [profile("1001", [EXPO, dict(WEBINAR, status="exited")])])
    assert results["m-0"].outcome.kind is Kind.DELIVERED
    assert client.calls == [
        (
            1001,
            {
                "firstName": "Ada", "lastName": "Lovelace", "title": "Chief Engineer",
                "company": "Analytical Engines Ltd", "custom4": "realized", "custom7": "exited",
            },
        )
    ]  # fmt: skip


def test_out_03_several_changes_for_one_prospect_make_one_patch_with_the_newest_values() -> None:
    client = RecordingClient()
    events = [
        profile("1001", [EXPO], occurred_at="2026-11-28T10:00:02Z", title="Newest"),
        profile("1001", [dict(EXPO, status="exited")], occurred_at="2026-11-28T10:00:00Z", title="Oldest"),
        profile("1001", [WEBINAR], occurred_at="2026-11-28T10:00:01Z", title="Middle"),
        profile("1002", [EXPO]),
    ]
    results = run(client, events)
    assert sorted(pid for pid, _ in client.calls) == [1001, 1002]  # one PATCH per distinct prospect
    ada = dict(client.calls)[1001]
    assert (ada["title"], ada["custom4"], ada["custom7"]) == ("Newest", "realized", "realized")
    # The oldest change set nothing the newer ones did not overwrite; the others each own a field.
    assert {k: r.outcome.reason for k, r in results.items()} == {
        "m-0": "delivered", "m-1": "superseded", "m-2": "delivered", "m-3": "delivered",
    }  # fmt: skip
    assert client.gate.planned == [2]


def test_out_02_a_missing_or_non_numeric_outreach_id_is_rejected_and_never_sent() -> None:
    client = RecordingClient()
    results = run(client, [profile(None, [EXPO]), profile("ADA-1001", [EXPO])])
    for key in ("m-0", "m-1"):
        assert results[key].outcome.kind is Kind.REJECTED
        assert results[key].outcome.reason == "invalid_field:OutreachId"
    assert "mandatory" in results["m-0"].outcome.detail
    assert "whole number" in results["m-1"].outcome.detail
    assert client.calls == []


def test_out_06_a_refused_mapping_id_rejects_its_records_with_the_documented_message() -> None:
    def no_custom7(_: int, attributes: dict[str, Any]) -> None:
        if "custom7" in attributes:
            raise FieldRejectedError("custom7", "custom7 is not a valid attribute for prospect.")

    client = RecordingClient(no_custom7)
    events = [
        profile("1001", [WEBINAR], occurred_at="2026-11-28T10:00:00Z"),
        profile("1001", [EXPO], occurred_at="2026-11-28T10:00:01Z", title="Head of Engines"),
        profile("1001", [dict(WEBINAR, status="exited")], occurred_at="2026-11-28T10:00:02Z"),
    ]
    results = run(client, events)
    for key in ("m-0", "m-2"):
        outcome = results[key].outcome
        assert (outcome.kind, outcome.reason) == (Kind.REJECTED, "invalid_mapping_id")
        assert BAD_REQUEST_MESSAGE in outcome.detail
        assert "Audience 'Webinar attendees' (aud-outreach-webinar) has mapping ID 7" in outcome.detail
    # The webinar changes are dropped and the rest is sent again, once: 2 calls, not an endless retry.
    assert results["m-1"].outcome.kind is Kind.DELIVERED
    assert len(client.calls) == 2
    assert "custom7" not in client.calls[1][1] and client.calls[1][1]["title"] == "Head of Engines"


def test_out_04_a_refused_attribute_value_rejects_only_the_change_whose_value_was_sent() -> None:
    def no_commodore(_: int, attributes: dict[str, Any]) -> None:
        if attributes.get("title") == "Commodore":
            raise FieldRejectedError("title", "title is not allowed")

    client = RecordingClient(no_commodore)
    events = [
        profile("1001", [EXPO], occurred_at="2026-11-28T10:00:00Z", title="Rear Admiral"),
        profile("1001", [EXPO], occurred_at="2026-11-28T10:00:01Z", title="Commodore"),
    ]
    results = run(client, events)
    assert results["m-1"].outcome.reason == "invalid_field:title"
    assert results["m-0"].outcome.kind is Kind.DELIVERED
    assert client.calls[-1][1]["title"] == "Rear Admiral"


@pytest.mark.parametrize(
    ("error", "kind", "retry_after"),
    [
        (ThrottledError("http_429", "rate limit", retry_after=1800.0), Kind.RETRY, 1800.0),
        (RetryableError("http_503", "maintenance", retry_after=600.0), Kind.RETRY, 600.0),
        (RetryableError("timeout", "ReadTimeout"), Kind.RETRY, None),
    ],
)
def test_out_05_a_throttled_or_failing_prospect_goes_back_to_the_queue_with_its_wait(
    error: ActivationError, kind: Kind, retry_after: float | None
) -> None:
    def fail(_: int, __: dict[str, Any]) -> None:
        raise error

    results = run(RecordingClient(fail), [profile("1001", [EXPO]), profile("1002", [EXPO])])
    for result in results.values():
        assert (result.outcome.kind, result.outcome.retry_after) == (kind, retry_after)


def test_out_07_account_audiences_are_not_sent_to_outreach() -> None:
    client = RecordingClient()
    results = run(client, [load_event("account-membership-realized")])
    assert results["m-0"].outcome.reason == "unsupported_entity"
    assert client.calls == []


def test_com_04_an_exited_membership_writes_the_exited_status() -> None:
    client = RecordingClient()
    run(client, [profile("1003", [dict(EXPO, status="exited")])])
    assert client.calls[0][1]["custom4"] == "exited"


def test_the_sample_sqs_batch_is_what_the_function_receives() -> None:
    """events/sqs/outreach-batch.json (sam local invoke -e): 4 changes, 3 prospects, 3 PATCHes."""
    batch = json.loads(
        (Path(__file__).resolve().parents[3] / "events" / "sqs" / "outreach-batch.json").read_text()
    )
    client = RecordingClient()
    config = parse_destinations(example_config())
    results = Pipeline(StubDestination(client), SETTINGS, lambda: config).process(batch["Records"])
    assert {r.outcome.kind for r in results.values()} == {Kind.DELIVERED}
    calls = dict(client.calls)
    assert sorted(calls) == [1001, 1002, 1003]
    assert (calls[1001]["custom4"], calls[1001]["custom7"], calls[1003]["custom4"]) == (
        "realized",
        "realized",
        "exited",
    )

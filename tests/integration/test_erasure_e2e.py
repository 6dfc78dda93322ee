"""End to end through the deployed template: a `Profile Erasure Requested` event reaches every
destination, each removes the person where its vendor's API allows it (Marketo: find the lead by its
dedupe field and Delete Leads; Outreach: delete the prospect), answers `erasure_unsupported` where no
deletion is known (RainFocus, Bombora), and the outcomes are listed per request id
(`activation erasure status`). Nothing is lost: the books still balance."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from activation_cli.main import app
from local.examples import sample_events
from local.fakes.marketo import FakeMarketo
from local.fakes.outreach import FakeOutreach
from local.harness import DESTINATION_TYPES, STACK_NAME, ActivationHarness

pytestmark = pytest.mark.integration

REQUEST = json.loads(
    (
        Path(__file__).resolve().parents[2] / "events" / "erasure" / "profile-erasure-requested.json"
    ).read_text()
)
EMAIL = REQUEST["detail"]["profile"]["identities"]["email"]
PROSPECT = int(REQUEST["detail"]["profile"]["identities"]["outreachId"])


def request(request_id: str, identities: dict[str, str]) -> dict[str, Any]:
    event = copy.deepcopy(REQUEST)
    event["detail"].update(requestId=request_id, eventId=f"evt-{request_id}")
    event["detail"]["profile"]["identities"] = identities
    return event


def order_records_of_the_person(harness: ActivationHarness) -> list[str]:
    """The order guard partitions keyed by the person's hashed identities, per person-destination instance."""
    from activation_core.config_store import parse_destinations
    from activation_core.guards import entity_key
    from activation_core.mapping import CompiledMapping
    from local.examples import example_config

    dynamodb = harness.stack.client("dynamodb")
    found = []
    for instance in parse_destinations(example_config()).destinations:
        rows = [row for row in instance.mapping if row.identity]
        mapped = CompiledMapping(rows).apply({"identities": REQUEST["detail"]["profile"]["identities"]})
        if not mapped.identities:
            continue
        pk = f"order#{instance.id}#{entity_key(mapped.identities)}"
        items = dynamodb.query(
            TableName=harness.outputs["StateTableName"],
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
        )["Items"]
        found += [pk for _ in items]
    return found


def erasure_status(request_id: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(app, ["erasure", "status", request_id, "--stack", STACK_NAME, "--json"])
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture(scope="module")
def erased(harness: ActivationHarness) -> ActivationHarness:
    harness.publish(sample_events())
    harness.drain()
    marketo: FakeMarketo = harness.fake("marketo")
    outreach: FakeOutreach = harness.fake("outreach")
    assert marketo._matching("email", [EMAIL]) and PROSPECT in outreach.prospects  # the person is there
    assert order_records_of_the_person(harness)  # and the stack holds order records of them
    harness.publish(
        [REQUEST, request("dsr-2026-0002", {"email": "nobody@example.org", "outreachId": "999999"})]
    )
    harness.drain()
    return harness


def test_erasure_removes_the_person_where_the_vendor_api_allows_it(erased: ActivationHarness) -> None:
    marketo: FakeMarketo = erased.fake("marketo")
    outreach: FakeOutreach = erased.fake("outreach")
    assert marketo._matching("email", [EMAIL]) == []
    assert PROSPECT not in outreach.prospects


def test_erasure_makes_the_stack_forget_the_persons_order_records(erased: ActivationHarness) -> None:
    assert order_records_of_the_person(erased) == []


def test_order_guard_items_expire_the_configured_days_after_the_last_change_applied(
    erased: ActivationHarness,
) -> None:
    """Guard items hold hashed identities only, and still end: DynamoDB deletes them (TTL)
    OrderGuardRetentionDays (default 400) after the last change applied to their entity."""
    dynamodb = erased.stack.client("dynamodb")
    pages = dynamodb.get_paginator("scan").paginate(TableName=erased.outputs["StateTableName"])
    guards = [item for page in pages for item in page["Items"] if item["pk"]["S"].startswith("order#")]
    now = time.time()
    assert guards
    assert all(now + 399 * 86400 <= int(item["ttl"]["N"]) <= now + 400 * 86400 + 1 for item in guards)


def test_erasure_outcomes_are_listed_per_request_id(erased: ActivationHarness) -> None:
    code, status = erasure_status("dsr-2026-0001")
    assert code == 0
    outcomes = {(o["destination"], o["outcome"]) for o in status["outcomes"]}
    assert outcomes == {
        ("marketo", "erased"),
        ("outreach", "erased"),
        ("rainfocus", "unsupported"),
        ("bombora", "unsupported"),
        ("stack", "not_found"),  # the SFMC source's deletion-check keys: none held here
    }
    assert status["counts"] == {"erased": 2, "unsupported": 2, "not_found": 1}
    assert all(
        o["reason"] == "erasure_unsupported" for o in status["outcomes"] if o["outcome"] == "unsupported"
    )

    code, unknown = erasure_status("dsr-2026-0002")
    assert {(o["destination"], o["outcome"]) for o in unknown["outcomes"]} >= {
        ("marketo", "not_found"),
        ("outreach", "not_found"),
    }
    code, nothing = erasure_status("dsr-never-sent")
    assert (code, nothing["outcomes"]) == (3, [])


def test_com_08_erasure_requests_are_counted_and_nothing_is_lost(erased: ActivationHarness) -> None:
    for destination_type in DESTINATION_TYPES:
        report = erased.report(destination_type)
        assert report.balanced, report
    assert erased.ledger("marketo").get("reason:skipped:erasure_not_found") == 1
    assert erased.ledger("rainfocus").get("reason:skipped:erasure_unsupported") == 2

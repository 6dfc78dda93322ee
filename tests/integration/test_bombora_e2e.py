"""End to end through the deployed template: PutEvents -> bus -> rule -> queue -> poller -> Bombora
function -> fake Bombora, rejected records into the DLQ (BOM-01..06, COM-03, COM-08, COM-09), and two
concurrent invocations of the deployed function creating one list."""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from local.examples import sample_events
from local.fakes.bombora import API, FakeBombora
from local.harness import ActivationHarness
from tests.support import calls_their_roles_refuse, example_config

pytestmark = pytest.mark.integration

EVENTS = Path(__file__).resolve().parents[2] / "events" / "bombora"
TIER1, EXPANSION, LAUNCH = "ABM tier 1", "ABM expansion", "ABM launch"
ADD = rf"{API}/account-list/[^/]+/accounts$"
PENDING_WRITES = 3  # every in-process attempt of one call: the records go back to the queue
WAITING = "waiting for another invocation to resolve a list"  # activation_core.list_registry


def bombora_events() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(EVENTS.glob("*.json"))]


def account_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["detail-type"] == "Account Audience Membership Changed"]


@pytest.fixture(scope="module")
def scenario(harness: ActivationHarness) -> ActivationHarness:
    """Three audiences on the example Bombora dataflow; a list for the first exists already at Bombora."""
    config = example_config()
    instance = next(d for d in config["destinations"] if d["type"] == "bombora")
    instance["settings"]["pendingRetrySeconds"] = 0.0
    instance["settings"]["adoptExistingLists"] = True  # the tier-1 list was made by hand (BOM-05)
    instance["audiences"] += [
        {"id": "aud-abm-expansion", "name": EXPANSION, "origin": "segmentation"},
        {"id": "aud-abm-launch", "name": LAUNCH, "origin": "segmentation"},
    ]
    harness.install_config(config)
    fake: FakeBombora = harness.fake("bombora")
    fake.add_list(TIER1, ["stale.example.net", "kept.example.org"])
    # The first write to the new expansion list finds it "update pending" on every attempt.
    fake.fail_next(ADD, PENDING_WRITES, 409, body={"message": "update pending"}, body_contains=b"xn--bcher")
    # The account events only: the profile samples would only wake the other destinations' functions.
    harness.publish(account_events(sample_events()) + bombora_events())
    harness.drain()
    return harness


def test_bom_06_each_audience_is_one_list_named_after_it(scenario: ActivationHarness) -> None:
    fake = scenario.fake("bombora")
    assert [lst.name for lst in fake.named(TIER1)] == [TIER1]  # found by name, not created again
    assert [lst.name for lst in fake.named(EXPANSION)] == [EXPANSION]
    assert dict(fake.creations) == {EXPANSION: 1}
    assert fake.duplicate_entities() == []


def test_bom_04_lists_hold_the_normalised_domains(scenario: ActivationHarness) -> None:
    fake = scenario.fake("bombora")
    # example.com came as "https://www.Example.com/about" and "EXAMPLE.com"; the exit removed stale.example.net.
    assert fake.domains_of(TIER1) == {"kept.example.org", "example.com", "both.example.com"}
    assert fake.domains_of(EXPANSION) == {"xn--bcher-kva.example", "both.example.com"}
    for request in fake.requests_to(ADD):
        identifiers = [account["domain"] for account in request.json()]
        assert len(identifiers) == len(set(identifiers))  # duplicates were removed before sending


def test_bom_03_primary_id_never_reaches_bombora(scenario: ActivationHarness) -> None:
    assert all(b"ACC-" not in request.body for request in scenario.fake("bombora").requests)


def test_bom_01_other_origins_and_other_audiences_are_skipped_with_reasons(
    scenario: ActivationHarness,
) -> None:
    fake = scenario.fake("bombora")
    bodies = b"".join(r.body for r in fake.requests)
    assert b"upload.example.org" not in bodies and b"newsletter.example.com" not in bodies
    reasons = scenario.report("bombora").reasons
    assert reasons["skipped:unsupported_origin"] == 1
    assert reasons["skipped:audience_not_activated"] == 1


def test_com_09_an_invalid_domain_is_in_the_dlq_with_its_reason(scenario: ActivationHarness) -> None:
    (message,) = scenario.dlq_messages("bombora")
    attributes = message["MessageAttributes"]
    assert attributes["reason"]["StringValue"] == "invalid_field:companyWebsiteDomain"
    assert "companyWebsiteDomain" in attributes["detail"]["StringValue"]
    assert json.loads(message["Body"])["detail"]["eventId"] == "evt-bombora-03"  # replayable as is


def test_a_409_update_pending_goes_back_to_the_queue_then_is_delivered(scenario: ActivationHarness) -> None:
    ledger = scenario.ledger("bombora")
    assert ledger["reason:retried:bombora_update_pending"] >= 1
    writes = [r for r in scenario.fake("bombora").requests_to(ADD) if b"xn--bcher" in r.body]
    assert len(writes) == PENDING_WRITES + 1
    assert "xn--bcher-kva.example" in scenario.fake("bombora").domains_of(EXPANSION)


def test_com_08_outcomes_are_counted_per_audience(scenario: ActivationHarness) -> None:
    tier1 = scenario.ledger("bombora", "bombora#bombora-abm#aud-abm-tier1")
    expansion = scenario.ledger("bombora", "bombora#bombora-abm#aud-abm-expansion")
    # tier 1: sample + duplicate + two-audiences + exit delivered; upload skipped; invalid rejected.
    assert (tier1["received"], tier1["delivered"], tier1["skipped"], tier1["rejected"]) == (6, 4, 1, 1)
    assert (expansion["received"], expansion["delivered"]) == (2, 2)


def test_an_older_change_arriving_late_does_not_re_add_an_account(scenario: ActivationHarness) -> None:
    """Across batches the layer's order guard (per dataflow, primaryId and audience) applies."""
    base = json.loads((EVENTS / "account-membership-exited.json").read_text())

    def change(event_id: str, status: str, occurred_at: str) -> dict[str, Any]:
        event = copy.deepcopy(base)
        detail = event["detail"]
        detail.update({"eventId": event_id, "occurredAt": occurred_at})
        detail["account"]["identities"]["crmAccountId"] = "ACC-LATE"
        detail["account"]["attributes"]["accountOrganization"]["domain"] = "late.example.com"
        detail["audiences"][0]["status"] = status
        return event

    scenario.publish([change("evt-late-exit", "exited", "2026-11-28T12:00:10Z")])
    scenario.drain()
    scenario.publish([change("evt-late-join", "realized", "2026-11-28T12:00:00Z")])  # older, arrives later
    scenario.drain()
    assert "late.example.com" not in scenario.fake("bombora").domains_of(TIER1)
    assert scenario.report("bombora").reasons["skipped:stale"] == 1


def test_nothing_is_lost(scenario: ActivationHarness) -> None:
    report = scenario.report("bombora")
    assert report.published >= len(account_events(sample_events())) + len(bombora_events())
    assert report.count("received") == report.published
    assert report.balanced, report


def test_com_06_no_secret_or_token_in_any_function_log(scenario: ActivationHarness) -> None:
    logs = "\n".join(scenario.stack.log_lines())
    fake = scenario.fake("bombora")
    assert fake.tokens, "a token was minted"
    for secret in (fake.client_secret, *fake.tokens):
        assert secret not in logs


def _sqs_event(events: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The SQS batch the event source mapping would hand the function."""
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": f"direct-{uuid.uuid4().hex}",
                "body": json.dumps(event),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            }
            for event in events
        ]
    }


def _received_again(batch: dict[str, Any], failed: list[dict[str, str]]) -> dict[str, Any]:
    """The failed records of `batch` as SQS delivers them again: same message ids, receive count 2."""
    ids = {f["itemIdentifier"] for f in failed}
    again = [r for r in batch["Records"] if r["messageId"] in ids]
    return {
        "Records": [{**r, "attributes": {**r["attributes"], "ApproximateReceiveCount": "2"}} for r in again]
    }


def _launch_event(domain: str) -> dict[str, Any]:
    event = copy.deepcopy(json.loads((EVENTS / "account-idn-domain.json").read_text()))
    event["detail"]["eventId"] = f"evt-launch-{domain}"
    event["detail"]["account"]["attributes"]["accountOrganization"]["domain"] = domain
    event["detail"]["audiences"] = [{"id": "aud-abm-launch", "name": LAUNCH, "status": "realized"}]
    return event


# Bounds, not windows: each is what the function may take at most (60 s timeout, 10 s init in the
# local runner); a condition met sooner ends the wait at once.
_INVOCATION_BOUND = 75.0


def _wait_for(condition: Any, timeout: float = _INVOCATION_BOUND) -> bool:
    """Poll a condition (a log line appearing in another process); bounded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _list_lease_key(scenario: ActivationHarness, name: str) -> dict[str, dict[str, str]]:
    """The lease item under which one invocation finds or creates the list named `name`."""
    from bombora.models import BomboraConnection, list_key
    from bombora.service import account_key

    connection = BomboraConnection.model_validate(scenario.plugs["bombora"].connection_secret())
    return {"pk": {"S": f"lock#bombora-list#{account_key(connection)}#{list_key(name)}"}, "sk": {"S": "lock"}}


def test_bom_06_two_concurrent_invocations_of_the_function_create_one_list(
    scenario: ActivationHarness,
) -> None:
    """Two invocations of the deployed function (two warm sandboxes) for a new audience at once.

    Bombora parks the first invocation's create call; the second invocation asks for the list while
    the first holds its lease, and must say it waits for the other one (its log line) rather than
    create a list. How long each takes is bounded, not windowed: on a loaded machine the first's call
    may be cut off by the stack's 2 s vendor timeout before the second arrives; it then keeps the lease
    (the create may still be running), the second still waits, both records retry, and their next
    receive after the lease (deleted here, as its expiry would end it) adopts the one list.
    """
    fake = scenario.fake("bombora")
    outputs = scenario.outputs
    queue_arn = scenario.stack.client("sqs").get_queue_attributes(
        QueueUrl=outputs["BomboraQueueUrl"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    lambda_client = scenario.stack.client("lambda", read_timeout=120)
    batches = {
        "first": _sqs_event([_launch_event("one.launch.example")], queue_arn),
        "second": _sqs_event([_launch_event("two.launch.example")], queue_arn),
    }
    results: dict[str, dict[str, Any]] = {}

    def invoke(name: str, batch: dict[str, Any]) -> None:
        response = lambda_client.invoke(
            FunctionName=outputs["BomboraFunctionName"], Payload=json.dumps(batch).encode()
        )
        results[name] = {
            "error": response.get("FunctionError"),
            "payload": json.loads(response["Payload"].read()),
        }

    def waiting_lines() -> int:
        return sum(WAITING in line for line in scenario.stack.log_lines())

    waiting_before = waiting_lines()
    fake.hold_creates()
    first = threading.Thread(target=invoke, args=("first", batches["first"]))
    first.start()
    assert fake.create_arrived.wait(_INVOCATION_BOUND), (
        "the first invocation never reached Bombora's create call"
    )
    second = threading.Thread(target=invoke, args=("second", batches["second"]))
    second.start()
    _wait_for(lambda: waiting_lines() > waiting_before or not second.is_alive())
    waited = waiting_lines() > waiting_before
    fake.release_creates()
    for thread in (first, second):
        thread.join(2 * _INVOCATION_BOUND)
        assert not thread.is_alive()
    scenario.published["bombora"] += 2  # invoked directly: counted so the ledger still balances

    assert waited, "the second invocation did not wait for the first one's list"
    assert {name: result["error"] for name, result in results.items()} == {"first": None, "second": None}
    retried = {name: result["payload"]["batchItemFailures"] for name, result in results.items()}
    if any(retried.values()):  # the first was cut off: its lease runs out, then both come again
        scenario.stack.client("dynamodb").delete_item(
            TableName=outputs["StateTableName"], Key=_list_lease_key(scenario, LAUNCH)
        )
        for name, failed in retried.items():
            if failed:
                invoke(name, _received_again(batches[name], failed))
                assert results[name] == {"error": None, "payload": {"batchItemFailures": []}}
    assert dict(fake.creations)[LAUNCH] == 1
    assert fake.domains_of(LAUNCH) == {"one.launch.example", "two.launch.example"}
    assert fake.duplicate_entities() == []
    assert scenario.report("bombora").balanced


def test_every_call_the_functions_made_is_one_their_roles_allow(scenario: ActivationHarness) -> None:
    assert calls_their_roles_refuse(scenario, "bombora") == []

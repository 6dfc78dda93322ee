"""The webhook connector and client against the fake receiver over HTTP: signed batches, 429/5xx
retried, a refused batch split to the record it is about, a rotated secret picked up, erasures sent."""

from __future__ import annotations

import json
from typing import Any

from activation_core.config_store import parse_destinations
from activation_core.outcomes import Kind
from activation_core.pipeline import Pipeline
from activation_core.settings import FunctionSettings
from local.fakes.webhook import PATH, FakeWebhook
from tests.contract.webhook.conftest import SECRET
from tests.support import EVENTS, example_config, instance_of, load_event, sqs_record
from webhook.service import WebhookDestination


def pipeline(settings: FunctionSettings, **overrides: Any) -> Pipeline:
    document = example_config()
    instance_of(document, "webhook")["settings"].update(overrides)
    config = parse_destinations(document)
    return Pipeline(WebhookDestination(), settings, lambda: config)


def profile(email: str, occurred_at: str = "2026-11-28T10:00:00Z", first_name: str = "Ada") -> dict[str, Any]:
    event = load_event("profile-membership-realized")
    event["detail"]["profile"]["identities"]["email"] = email
    event["detail"]["occurredAt"] = occurred_at
    event["detail"]["profile"]["attributes"]["person"]["name"]["firstName"] = first_name
    return event


def records(n: int, **kwargs: str) -> list[dict[str, Any]]:
    return [sqs_record(profile(f"p{i}@example.com", **kwargs), f"m-{i}") for i in range(n)]


def kinds(results: Any) -> dict[str, Kind]:
    return {key: result.outcome.kind for key, result in results.items()}


def test_com_01_a_batch_is_one_signed_post_of_mapped_records(
    connection: Any, fake: FakeWebhook, function_settings: FunctionSettings
) -> None:
    results = pipeline(function_settings).process(records(3))
    assert set(kinds(results).values()) == {Kind.DELIVERED}
    assert len(fake.requests_to(PATH)) == 1  # the fake refuses (401) any body whose signature differs
    stored = fake.stored_for("email", "p1@example.com")
    assert [r["fields"] for r in stored] == [
        {"firstName": "Ada", "lastName": "Lovelace", "company": "Analytical Engines Ltd"}
    ]
    assert stored[0]["audiences"] == [
        {"id": "aud-expo-invitees", "name": "Expo 2026 invitees", "status": "realized"}
    ]


def test_records_are_sent_in_batches_of_the_configured_size(
    connection: Any, fake: FakeWebhook, function_settings: FunctionSettings
) -> None:
    pipeline(function_settings, batchSize=2).process(records(5))
    assert [len(batch) for batch in fake.batches] == [2, 2, 1]


def test_a_429_is_waited_out_and_sent_again(
    connection: Any, fake: FakeWebhook, function_settings: FunctionSettings
) -> None:
    fake.fail_next(PATH, 1, 429, body={"error": "slow down"}, headers={"Retry-After": "0"})
    results = pipeline(function_settings).process(records(2))
    assert set(kinds(results).values()) == {Kind.DELIVERED}
    assert len(fake.requests_to(PATH)) == 2 and len(fake.records) == 2


def test_an_outage_returns_the_records_to_the_queue(
    connection: Any, fake: FakeWebhook, function_settings: FunctionSettings
) -> None:
    fake.fail_next(PATH, 10, 503, body={"error": "down"})
    results = pipeline(function_settings).process(records(3))
    assert set(kinds(results).values()) == {Kind.RETRY}
    assert {r.outcome.reason for r in results.values()} == {"http_503"}
    assert len(fake.requests_to(PATH)) == 3  # in-process attempts of the one batch, never split


def test_a_refused_batch_is_split_and_only_the_refused_record_is_rejected(
    connection: Any, fake: FakeWebhook, function_settings: FunctionSettings
) -> None:
    batch = records(7)
    batch[4] = sqs_record(profile("p4@example.com", first_name="refuse-me"), "m-4")
    results = pipeline(function_settings).process(batch)
    assert kinds(results)["m-4"] is Kind.REJECTED and results["m-4"].outcome.reason == "http_422"
    assert [k for k, kind in kinds(results).items() if kind is Kind.DELIVERED] == [
        f"m-{i}" for i in range(7) if i != 4
    ]
    assert sorted(fake.records) == sorted(f"m-{i}" for i in range(7) if i != 4)


def test_a_signing_secret_rotated_in_the_secret_is_picked_up_after_one_refusal(
    connection: Any, fake: FakeWebhook, function_settings: FunctionSettings
) -> None:
    run = pipeline(function_settings)
    run.process(records(1))  # read (and cached) the current secret
    fake.signing_secret = "whsec-rotated-fedcba9876543210"
    connection.put_secret_value(
        SecretId=SECRET, SecretString=json.dumps({"url": fake.url, "signingSecret": fake.signing_secret})
    )
    results = run.process([sqs_record(profile("new@example.com"), "m-new")])
    assert kinds(results) == {"m-new": Kind.DELIVERED}
    assert fake.stored_for("email", "new@example.com")


def test_a_signature_the_receiver_keeps_refusing_waits_for_an_operator(
    connection: Any, fake: FakeWebhook, function_settings: FunctionSettings
) -> None:
    fake.signing_secret = "whsec-not-the-one-we-hold"
    results = pipeline(function_settings).process(records(2))
    assert set(kinds(results).values()) == {Kind.RETRY}
    assert {r.outcome.reason for r in results.values()} == {"credentials_refused"}
    assert fake.records == {}


def test_com_04_an_exit_is_sent_with_its_status(
    connection: Any, fake: FakeWebhook, function_settings: FunctionSettings
) -> None:
    event = profile("ada@example.com")
    event["detail"]["audiences"][0]["status"] = "exited"
    results = pipeline(function_settings).process([sqs_record(event, "m-1")])
    assert kinds(results) == {"m-1": Kind.DELIVERED}
    assert fake.records["m-1"]["audiences"][0]["status"] == "exited"


def test_only_the_newest_change_to_a_person_in_a_batch_is_sent(
    connection: Any, fake: FakeWebhook, function_settings: FunctionSettings
) -> None:
    older = sqs_record(profile("ada@example.com", "2026-11-28T10:00:00Z", first_name="Old"), "m-old")
    newer = sqs_record(profile("ada@example.com", "2026-11-28T11:00:00Z", first_name="New"), "m-new")
    results = pipeline(function_settings).process([newer, older])
    assert kinds(results) == {"m-new": Kind.DELIVERED, "m-old": Kind.SKIPPED}
    assert [r["fields"]["firstName"] for r in fake.records.values()] == ["New"]


def test_com_06_a_profile_without_consent_is_not_sent(
    connection: Any, fake: FakeWebhook, function_settings: FunctionSettings
) -> None:
    event = profile("ada@example.com")
    event["detail"]["profile"]["consents"]["marketing.email"] = "n"
    results = pipeline(function_settings).process([sqs_record(event, "m-1")])
    assert kinds(results) == {"m-1": Kind.SKIPPED}
    assert fake.requests_to(PATH) == []


def test_an_erasure_request_is_sent_as_an_erasure_record(
    connection: Any, fake: FakeWebhook, function_settings: FunctionSettings
) -> None:
    run = pipeline(function_settings)
    run.process([sqs_record(profile("ada.lovelace@example.com"), "m-1")])
    erasure_event = json.loads((EVENTS / "erasure" / "profile-erasure-requested.json").read_text())
    results = run.process([sqs_record(erasure_event, "m-erase")])
    assert kinds(results) == {"m-erase": Kind.DELIVERED}
    (erasure,) = fake.erased
    assert erasure["erasureRequest"] and erasure["identities"] == {"email": "ada.lovelace@example.com"}
    assert fake.stored_for("email", "ada.lovelace@example.com") == []


def test_com_01_an_address_differing_only_in_case_or_spaces_is_one_person_in_a_batch(
    connection: Any, fake: FakeWebhook, function_settings: FunctionSettings
) -> None:
    """The mapping is free: without a lowercase transform the identity reaches the connector as typed.
    `Dora@Example.com` and ` dora@example.com` are still one person: only the newest change is sent."""
    document = example_config()
    instance_of(document, "webhook")["mapping"][0]["transforms"] = []
    config = parse_destinations(document)
    run = Pipeline(WebhookDestination(), function_settings, lambda: config)
    newer = sqs_record(profile("Dora@Example.com", "2026-11-28T11:00:00Z", first_name="New"), "m-new")
    older = sqs_record(profile(" dora@example.com", "2026-11-28T10:00:00Z", first_name="Old"), "m-old")
    results = run.process([newer, older])
    assert {k: (r.outcome.kind, r.outcome.reason) for k, r in results.items()} == {
        "m-new": (Kind.DELIVERED, "delivered"),
        "m-old": (Kind.SKIPPED, "superseded"),
    }
    assert [r["fields"]["firstName"] for r in fake.records.values()] == ["New"]

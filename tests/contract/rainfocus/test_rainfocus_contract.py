"""The RainFocus connector and client against the fake RainFocus server over HTTP (RNF-01, 02, 05)."""

from __future__ import annotations

from typing import Any

import pytest

from activation_core.config_store import parse_destinations
from activation_core.errors import PermanentError
from activation_core.hashing import email_lc_sha256
from activation_core.models.config import DestinationInstance
from activation_core.outcomes import Kind
from activation_core.pipeline import Pipeline
from activation_core.settings import FunctionSettings
from local.fakes.rainfocus import FakeRainfocus
from rainfocus.service import RainfocusDestination
from tests.contract.conftest import read_secret
from tests.contract.rainfocus.conftest import SECRET
from tests.support import example_config, instance_of, load_event, sqs_record


def pipeline(settings: FunctionSettings, **overrides: Any) -> Pipeline:
    document = example_config()
    instance_of(document, "rainfocus")["settings"].update(overrides)
    config = parse_destinations(document)
    return Pipeline(RainfocusDestination(), settings, lambda: config)


def profile(email: str, occurred_at: str = "2026-11-28T10:00:00Z", **address: str) -> dict[str, Any]:
    event = load_event("profile-membership-realized")
    event["detail"]["profile"]["identities"]["email"] = email
    event["detail"]["occurredAt"] = occurred_at
    event["detail"]["profile"]["attributes"]["workAddress"].update(address)
    return event


def test_rnf_05_creates_then_updates_the_same_attendee(
    connection: Any, fake: FakeRainfocus, function_settings: FunctionSettings
) -> None:
    run = pipeline(function_settings)
    first = run.process([sqs_record(profile("Ada@Example.com"), "m-1")])
    second = run.process([sqs_record(profile("ada@example.com", city="Cambridge"), "m-2")])
    assert first["m-1"].outcome.kind is Kind.DELIVERED
    assert second["m-2"].outcome.kind is Kind.DELIVERED
    assert list(fake.attendees) == [("expo2026", "ada@example.com")]
    attendee = fake.attendees[("expo2026", "ada@example.com")]
    assert attendee["city"] == "Cambridge"
    assert attendee["firstname"] == "Ada" and attendee["countryid"] == "US" and attendee["state"] == "MA"


def test_com_04_an_existing_member_is_stored_like_a_realized_one(
    connection: Any, fake: FakeRainfocus, function_settings: FunctionSettings
) -> None:
    event = profile("ada@example.com")
    event["detail"]["audiences"][0]["status"] = "existing"
    results = pipeline(function_settings).process([sqs_record(event, "m-1")])
    assert results["m-1"].outcome.kind is Kind.DELIVERED
    assert list(fake.attendees) == [("expo2026", "ada@example.com")]


def test_rnf_02_apply_transformation_sends_only_the_hash(
    connection: Any, fake: FakeRainfocus, function_settings: FunctionSettings
) -> None:
    run = pipeline(function_settings, applyTransformation=True)
    run.process([sqs_record(profile(" Ada@Example.com "), "m-1")])
    (request,) = fake.requests_to("attendee/store")
    assert b"ada@example.com" not in request.body.lower()
    assert request.json()["email"] == email_lc_sha256("ada@example.com")
    assert list(fake.attendees) == [("expo2026", email_lc_sha256("ada@example.com"))]


def test_rnf_01_one_token_is_minted_persisted_and_reused(
    connection: Any, fake: FakeRainfocus, function_settings: FunctionSettings
) -> None:
    run = pipeline(function_settings)
    run.process([sqs_record(profile(f"p{i}@example.com"), f"m-{i}") for i in range(12)])
    assert fake.token_requests == 1
    stored = read_secret(connection, SECRET)
    assert stored["cachedToken"]["accessToken"] in fake.tokens
    assert stored["clientSecret"] == fake.client_secret  # credentials untouched by the token write


def test_rnf_01_an_expired_token_is_refreshed_once_mid_batch(
    connection: Any, fake: FakeRainfocus, function_settings: FunctionSettings
) -> None:
    run = pipeline(function_settings)
    run.process([sqs_record(profile("a@example.com"), "m-0")])
    fake.expire_tokens()
    results = run.process([sqs_record(profile(f"p{i}@example.com"), f"m-{i}") for i in range(1, 6)])
    assert {r.outcome.kind for r in results.values()} == {Kind.DELIVERED}
    assert fake.token_requests == 2


def test_transient_503_is_retried_in_process_then_delivered(
    connection: Any, fake: FakeRainfocus, function_settings: FunctionSettings
) -> None:
    fake.fail_next("attendee/store", 1, 503, body={"responseCode": "503", "responseMessage": "busy"})
    results = pipeline(function_settings).process([sqs_record(profile("a@example.com"), "m-1")])
    assert results["m-1"].outcome.kind is Kind.DELIVERED
    assert len(fake.requests_to("attendee/store")) == 2


def test_persistent_5xx_leaves_the_record_to_retry_from_the_queue(
    connection: Any, fake: FakeRainfocus, function_settings: FunctionSettings
) -> None:
    fake.fail_next("attendee/store", 10, 502, body={"responseCode": "502", "responseMessage": "bad gateway"})
    results = pipeline(function_settings).process([sqs_record(profile("a@example.com"), "m-1")])
    assert results["m-1"].outcome.kind is Kind.RETRY
    assert results["m-1"].outcome.reason == "http_502"


def test_missing_api_profile_is_a_permanent_rejection_with_code_103(
    connection: Any, fake: FakeRainfocus, function_settings: FunctionSettings
) -> None:
    fake.api_profile = "another-profile"
    results = pipeline(function_settings).process([sqs_record(profile("a@example.com"), "m-1")])
    assert results["m-1"].outcome.kind is Kind.REJECTED
    assert results["m-1"].outcome.reason == "rainfocus_103"


def test_rnf_04_invalid_field_is_rejected_and_never_sent(
    connection: Any, fake: FakeRainfocus, function_settings: FunctionSettings
) -> None:
    results = pipeline(function_settings).process([sqs_record(load_event("profile-invalid-country"), "m-1")])
    assert results["m-1"].outcome.reason == "invalid_field:countryid"
    assert fake.requests_to("attendee/store") == []


def test_newest_change_per_attendee_wins_within_a_batch(
    connection: Any, fake: FakeRainfocus, function_settings: FunctionSettings
) -> None:
    records = [
        sqs_record(profile("a@example.com", "2026-11-28T10:00:05Z", city="Newest"), "m-1"),
        sqs_record(profile("A@example.com", "2026-11-28T10:00:00Z", city="Oldest"), "m-2"),
    ]
    results = pipeline(function_settings).process(records)
    assert (results["m-1"].outcome.kind, results["m-2"].outcome.reason) == (Kind.DELIVERED, "superseded")
    assert fake.attendees[("expo2026", "a@example.com")]["city"] == "Newest"
    assert len(fake.requests_to("attendee/store")) == 1


def test_vendor_base_url_must_be_rainfocus_unless_loopback_is_allowed(
    connection: Any, function_settings: FunctionSettings
) -> None:
    strict = function_settings.model_copy(update={"allow_loopback_urls": False})
    instance = DestinationInstance.model_validate(instance_of(example_config(), "rainfocus"))
    with pytest.raises(PermanentError, match=r"base_url|loopback|https"):
        RainfocusDestination().connect(instance, strict)


def test_rnf_05_an_attendee_rainfocus_refuses_is_rejected_alone_and_the_rest_of_the_batch_stored(
    connection: Any, fake: FakeRainfocus, function_settings: FunctionSettings
) -> None:
    fake.fail_next(
        "attendee/store", 1, 400, body={"responseCode": "101", "responseMessage": "refused"},
        body_contains=b"refused@example.com",
    )  # fmt: skip
    emails = ["a@example.com", "refused@example.com", "b@example.com", "c@example.com"]
    batch = [sqs_record(profile(email), f"m-{i}") for i, email in enumerate(emails)]
    results = pipeline(function_settings).process(batch)
    outcomes = {k: (r.outcome.kind, r.outcome.reason) for k, r in results.items()}
    assert outcomes == {
        "m-0": (Kind.DELIVERED, "delivered"),
        "m-1": (Kind.REJECTED, "rainfocus_101"),
        "m-2": (Kind.DELIVERED, "delivered"),
        "m-3": (Kind.DELIVERED, "delivered"),
    }
    assert {email for _, email in fake.attendees} == {"a@example.com", "b@example.com", "c@example.com"}

"""The Bombora connector and client against the fake Bombora server over HTTP (BOM-02..06, membership).

AWS (Secrets Manager, the state table for token and list leases and the list registry) is moto
in-process; Bombora is a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import boto3
import pytest

from activation_core import http
from activation_core.outcomes import Kind
from activation_core.settings import FunctionSettings
from bombora import lists
from bombora.models import BomboraConnection, list_key
from bombora.service import account_key
from local.fakes.bombora import API, FakeBombora
from tests.contract.bombora.helpers import (
    AUDIENCE,
    AUDIENCE_NAME,
    SECRET,
    account,
    bombora_instance,
    pipeline,
    secret_for,
    stack_made_list,
)
from tests.contract.conftest import STATE_TABLE, put_connection_secret, read_secret
from tests.support import load_event, sqs_record

ADD = rf"{API}/account-list/[^/]+/accounts$"
DELETE = rf"{API}/account-list/[^/]+/delete-accounts$"
LISTS = rf"{API}/account-list$"


def records(*events: dict[str, Any]) -> list[dict[str, Any]]:
    return [sqs_record(event, f"m-{i}") for i, event in enumerate(events)]


def kinds(results: dict[str, Any]) -> dict[str, Kind]:
    return {key: result.outcome.kind for key, result in results.items()}


def creates(fake: FakeBombora) -> list[Any]:
    return [r for r in fake.requests_to(LISTS) if r.method == "POST"]


def lookups(fake: FakeBombora) -> list[Any]:
    return [r for r in fake.requests_to(LISTS) if r.method == "GET"]


def _lease_key(fake: FakeBombora, name: str = AUDIENCE_NAME) -> str:
    """The lease item's partition key under which one invocation finds or creates the list."""
    connection = BomboraConnection.model_validate(secret_for(fake))
    return f"lock#bombora-list#{account_key(connection)}#{list_key(name)}"


def registry_item(dynamodb: Any, fake: FakeBombora, key: str = "abm tier 1") -> dict[str, Any]:
    connection = BomboraConnection.model_validate(secret_for(fake))
    item = dynamodb.get_item(
        TableName=STATE_TABLE,
        Key={"pk": {"S": f"bombora#lists#{account_key(connection)}"}, "sk": {"S": key}},
        ConsistentRead=True,
    ).get("Item", {})
    return dict(item)


# ---------------------------------------------------------------- BOM-02: client-credentials token


def test_bom_02_one_token_from_a_json_body_is_cached_and_reused(
    connection: Any, fake: FakeBombora, function_settings: FunctionSettings
) -> None:
    run = pipeline(function_settings)
    run.process(records(*(account(f"company{i}.example") for i in range(12))))
    run.process(records(account("another.example")))
    assert fake.token_requests == 1
    (token_request,) = fake.requests_to("/oauth/token")
    assert token_request.header("content-type").startswith("application/json")
    assert token_request.json() == {"client_id": fake.client_id, "client_secret": fake.client_secret}
    stored = read_secret(connection, SECRET)
    assert stored["cachedToken"]["accessToken"] in fake.tokens
    assert stored["clientSecret"] == fake.client_secret  # credentials untouched by the token write


def test_bom_02_a_401_refreshes_the_token_once_then_delivers(
    connection: Any, fake: FakeBombora, function_settings: FunctionSettings
) -> None:
    run = pipeline(function_settings)
    run.process(records(account("first.example")))
    fake.expire_tokens()
    results = run.process(records(account("second.example"), account("third.example")))
    assert set(kinds(results).values()) == {Kind.DELIVERED}
    assert fake.token_requests == 2
    assert fake.domains_of(AUDIENCE_NAME) == {"first.example", "second.example", "third.example"}


def test_bom_02_refused_credentials_leave_the_records_to_retry(
    aws_backend: Any, fake: FakeBombora, function_settings: FunctionSettings
) -> None:
    put_connection_secret(aws_backend, SECRET, {**secret_for(fake), "clientSecret": "wrong"})
    results = pipeline(function_settings).process(records(account("a.example")))
    assert results["m-0"].outcome.kind is Kind.RETRY
    assert results["m-0"].outcome.reason == "bombora_token_refused"
    assert fake.token_requests == 1  # no hammering of the token endpoint with refused credentials
    assert fake.lists == {}


# ---------------------------------------------------------------- BOM-03: primaryId never exported


def test_bom_03_primary_id_is_mapped_but_never_sent(
    connection: Any, fake: FakeBombora, function_settings: FunctionSettings
) -> None:
    results = pipeline(function_settings).process(
        records(account("a.example", primary="ACC-SECRET-1"), account("b.example", primary="ACC-SECRET-2"))
    )
    assert set(kinds(results).values()) == {Kind.DELIVERED}
    assert all(b"ACC-SECRET" not in request.body for request in fake.requests)
    (add,) = fake.requests_to(ADD)
    assert add.json() == [{"domain": "a.example"}, {"domain": "b.example"}]  # domain only: no `id`


# ---------------------------------------------------------------- BOM-04: domains build the list


def test_bom_04_domains_are_normalised_and_sent_once(
    connection: Any, fake: FakeBombora, function_settings: FunctionSettings
) -> None:
    events = [
        account("https://www.Example.com/about"),
        account("EXAMPLE.com."),
        account("http://user@example.com:8443/path?q=1"),
        account("https://Bücher.example/shop"),
    ]
    results = pipeline(function_settings).process(records(*events))
    assert set(kinds(results).values()) == {Kind.DELIVERED}
    (add,) = fake.requests_to(ADD)  # the API rejects a request with duplicate identifiers
    assert add.json() == [{"domain": "example.com"}, {"domain": "xn--bcher-kva.example"}]
    assert fake.domains_of(AUDIENCE_NAME) == {"example.com", "xn--bcher-kva.example"}


def test_bom_04_an_invalid_domain_is_rejected_and_never_sent(
    connection: Any, fake: FakeBombora, function_settings: FunctionSettings
) -> None:
    results = pipeline(function_settings).process(
        records(account("not a domain"), account("192.168.0.1"), account("good.example"))
    )
    assert results["m-0"].outcome.reason == "invalid_field:companyWebsiteDomain"
    assert results["m-1"].outcome.kind is Kind.REJECTED
    assert results["m-2"].outcome.kind is Kind.DELIVERED
    assert [r.json() for r in fake.requests_to(ADD)] == [[{"domain": "good.example"}]]


def test_bom_04_accounts_are_batched_by_the_configured_batch_size(
    connection: Any, fake: FakeBombora, function_settings: FunctionSettings
) -> None:
    run = pipeline(function_settings, bombora_instance(batchSize=10))
    results = run.process(records(*(account(f"c{i:02d}.example") for i in range(25))))
    assert set(kinds(results).values()) == {Kind.DELIVERED}
    assert [len(r.json()) for r in fake.requests_to(ADD)] == [10, 10, 5]
    assert len(fake.domains_of(AUDIENCE_NAME)) == 25


# ---------------------------------------------------------------- BOM-06: one list per audience, created once


def test_bom_06_the_list_is_named_after_the_audience_created_once_and_recorded(
    connection: Any, fake: FakeBombora, function_settings: FunctionSettings
) -> None:
    dynamodb = boto3.client("dynamodb")
    pipeline(function_settings).process(records(account("a.example")))
    (create,) = creates(fake)
    assert create.json()["type"] == "Manual"
    assert create.json()["metadata"]["name"] == AUDIENCE_NAME
    (created,) = fake.named(AUDIENCE_NAME)
    assert registry_item(dynamodb, fake)["listId"]["S"] == created.id

    lists.clear_memory_cache()  # a new container: the recorded id is used, Bombora is not asked again
    pipeline(function_settings).process(records(account("b.example")))
    assert len(creates(fake)) == 1
    assert len(lookups(fake)) == 1
    assert fake.domains_of(AUDIENCE_NAME) == {"a.example", "b.example"}


def test_bom_05_a_list_of_that_name_the_stack_did_not_create_is_an_error_naming_it(
    connection: Any, fake: FakeBombora, function_settings: FunctionSettings
) -> None:
    existing = fake.add_list(AUDIENCE_NAME, ["already.example"])  # made by hand, or another tool
    outcome = pipeline(function_settings).process(records(account("new.example")))["m-0"].outcome
    assert outcome.kind is Kind.RETRY and outcome.reason.startswith("invalid_config:bombora-abm")
    assert f"'{AUDIENCE_NAME}'" in outcome.detail and existing in outcome.detail
    assert "adoptExistingLists" in outcome.detail
    assert creates(fake) == [] and fake.requests_to(ADD) == []
    assert fake.lists[existing].domains == {"already.example"}


def test_bom_05_the_operator_may_allow_adopting_an_existing_list(
    connection: Any, fake: FakeBombora, function_settings: FunctionSettings
) -> None:
    existing = fake.add_list(AUDIENCE_NAME, ["already.example"])
    fake.add_list("Another list", ["other.example"])
    pipeline(function_settings, bombora_instance(adoptExistingLists=True)).process(
        records(account("new.example"))
    )
    assert creates(fake) == []
    assert fake.lists[existing].domains == {"already.example", "new.example"}
    assert fake.duplicate_entities() == []


def test_bom_06_a_list_this_stack_created_is_found_again_when_its_record_is_lost(
    connection: Any, fake: FakeBombora, function_settings: FunctionSettings
) -> None:
    existing = stack_made_list(fake, ["already.example"])  # created, then the registry write failed
    outcome = pipeline(function_settings).process(records(account("new.example")))["m-0"].outcome
    assert outcome.kind is Kind.DELIVERED
    assert creates(fake) == []
    assert fake.lists[existing].domains == {"already.example", "new.example"}


def test_bom_06_a_non_manual_list_of_that_name_is_a_config_error(
    connection: Any, fake: FakeBombora, function_settings: FunctionSettings
) -> None:
    fake.add_list(AUDIENCE_NAME, list_type="Surge")
    results = pipeline(function_settings).process(records(account("a.example")))
    outcome = results["m-0"].outcome
    assert outcome.kind is Kind.RETRY and outcome.reason.startswith("invalid_config:bombora-abm")
    assert "Manual lists only" in outcome.detail
    assert creates(fake) == [] and fake.requests_to(ADD) == []


def test_bom_06_two_concurrent_invocations_create_exactly_one_list(
    connection: Any, fake: FakeBombora, function_settings: FunctionSettings
) -> None:
    """Two invocations (separate pipelines, caches and tokens) for a new audience at the same time.

    The first parks inside Bombora's create call; the second then asks for the list while the first
    is still creating it, and must wait for the recorded id instead of creating a second list.
    """
    first_done = threading.Event()
    first_results: dict[str, Any] = {}
    fake.hold_creates()

    def first() -> None:
        first_results.update(pipeline(function_settings).process(records(account("one.example"))))
        first_done.set()

    thread = threading.Thread(target=first)
    thread.start()
    assert fake.create_arrived.wait(10), "the first invocation never reached the create call"

    def wait_for_first(_: float) -> None:
        # The second invocation is waiting for the list: let the first one finish creating it.
        fake.release_creates()
        assert first_done.wait(10)

    lists.clear_memory_cache()
    second_results = pipeline(function_settings, sleep=wait_for_first).process(
        records(account("two.example"))
    )
    thread.join(10)
    assert kinds(first_results) == {"m-0": Kind.DELIVERED}
    assert kinds(second_results) == {"m-0": Kind.DELIVERED}
    assert len(creates(fake)) == 1
    assert fake.duplicate_entities() == []
    assert fake.domains_of(AUDIENCE_NAME) == {"one.example", "two.example"}


def test_bom_06_a_create_cut_off_and_completed_late_is_not_created_again_meanwhile(
    connection: Any, fake: FakeBombora, function_settings: FunctionSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bombora takes longer to create a list than the read timeout: the first invocation's call is cut
    off and its looks find nothing (the create is still running), so its record retries. Another
    invocation arriving meanwhile must not create a second list (what a loaded machine did to
    `test_bombora_e2e.py::test_bom_06_two_concurrent_invocations...`: two lists once the creates
    ended). The list shows once the create ends, and the next attempt after the lease adopts it."""
    monkeypatch.setenv("HTTP_TIMEOUT_SECONDS", "0.5")
    http.reset_shared_client()
    try:
        fake.hold_creates()  # parked at Bombora until released
        first = pipeline(function_settings).process(records(account("one.example")))
        assert (first["m-0"].outcome.kind, first["m-0"].outcome.reason) == (
            Kind.RETRY,
            "bombora_list_create_unconfirmed",
        )
        lists.clear_memory_cache()
        second = pipeline(function_settings).process(records(account("two.example")))
        assert (second["m-0"].outcome.kind, second["m-0"].outcome.reason) == (
            Kind.RETRY,
            "bombora_list_pending",
        )
        assert len(creates(fake)) == 1  # the second did not create one
        fake.release_creates()
        deadline = time.monotonic() + 30  # a bound: the parked create ends as soon as it is released
        while not fake.named(AUDIENCE_NAME) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(fake.named(AUDIENCE_NAME)) == 1
    finally:
        http.reset_shared_client()
    # The lease has run out (its item deleted here, as DynamoDB's expiry check would treat it): the
    # next attempt lists Bombora's lists, adopts the list it created, and creates nothing.
    boto3.client("dynamodb").delete_item(
        TableName=STATE_TABLE,
        Key={"pk": {"S": _lease_key(fake)}, "sk": {"S": "lock"}},
    )
    lists.clear_memory_cache()
    third = pipeline(function_settings).process(records(account("two.example")))
    assert kinds(third) == {"m-0": Kind.DELIVERED}
    assert len(creates(fake)) == 1 and fake.duplicate_entities() == []
    assert fake.domains_of(AUDIENCE_NAME) == {"two.example"}


def test_bom_06_a_create_without_a_clear_answer_is_found_not_repeated(
    connection: Any, fake: FakeBombora, function_settings: FunctionSettings
) -> None:
    fake.create_answers = [504]  # Bombora created it, the answer was lost
    results = pipeline(function_settings).process(records(account("a.example")))
    assert results["m-0"].outcome.kind is Kind.DELIVERED
    assert len(creates(fake)) == 1
    assert fake.duplicate_entities() == []
    assert fake.domains_of(AUDIENCE_NAME) == {"a.example"}


def test_bom_06_a_failed_create_retries_and_the_next_attempt_creates_one_list(
    connection: Any, fake: FakeBombora, function_settings: FunctionSettings
) -> None:
    fake.fail_next(LISTS, 1, 503, body={"message": "busy"}, body_contains=b"Manual")
    run = pipeline(function_settings)
    first = run.process(records(account("a.example")))
    assert (first["m-0"].outcome.kind, first["m-0"].outcome.reason) == (
        Kind.RETRY,
        "bombora_list_create_unconfirmed",
    )
    second = run.process(records(account("a.example")))
    assert second["m-0"].outcome.kind is Kind.DELIVERED
    assert len(fake.named(AUDIENCE_NAME)) == 1


def test_bom_06_a_list_deleted_at_bombora_is_forgotten_then_recreated(
    connection: Any, fake: FakeBombora, function_settings: FunctionSettings
) -> None:
    run = pipeline(function_settings)
    run.process(records(account("a.example")))
    (old,) = fake.named(AUDIENCE_NAME)
    del fake.lists[old.id]
    gone = run.process(records(account("b.example")))
    assert (gone["m-0"].outcome.kind, gone["m-0"].outcome.reason) == (Kind.RETRY, "bombora_list_not_found")
    again = run.process(records(account("b.example")))
    assert again["m-0"].outcome.kind is Kind.DELIVERED
    (new,) = fake.named(AUDIENCE_NAME)
    assert new.id != old.id and new.domains == {"b.example"}


# ---------------------------------------------------------------- BOM-05: one dataflow per audience name


def test_bom_05_a_second_dataflow_on_the_same_bombora_account_is_refused_naming_both(
    connection: Any, fake: FakeBombora, function_settings: FunctionSettings
) -> None:
    """Two connection secrets with the same credentials reach one Bombora account: one list per name."""
    put_connection_secret(connection, "activation-local/bombora/abm-copy", secret_for(fake))
    second = {**bombora_instance(), "id": "bombora-abm-copy", "secret": "activation-local/bombora/abm-copy"}
    run = pipeline(function_settings, bombora_instance(), second)
    results = run.process(records(account("a.example")))
    outcome = results["m-0"].outcome
    assert outcome.kind is Kind.RETRY and outcome.reason.startswith("invalid_config:bombora-abm")
    assert "'bombora-abm'" in outcome.detail and "'bombora-abm-copy'" in outcome.detail
    assert len(fake.named(AUDIENCE_NAME)) == 1


def test_bom_05_the_name_passes_to_a_new_dataflow_once_the_old_one_stops_activating_it(
    connection: Any, fake: FakeBombora, function_settings: FunctionSettings
) -> None:
    pipeline(function_settings).process(records(account("a.example")))
    put_connection_secret(connection, "activation-local/bombora/abm-new", secret_for(fake))
    successor = {**bombora_instance(), "id": "bombora-abm-new", "secret": "activation-local/bombora/abm-new"}
    results = pipeline(function_settings, successor).process(records(account("b.example")))
    assert results["m-0"].outcome.kind is Kind.DELIVERED
    assert fake.domains_of(AUDIENCE_NAME) == {"a.example", "b.example"}
    dynamodb = boto3.client("dynamodb")
    assert registry_item(dynamodb, fake)["owner"]["S"] == "bombora-abm-new"


# ---------------------------------------------------------------- BOM-01 at run time


def test_bom_01_a_membership_of_another_origin_is_skipped_with_a_reason(
    connection: Any, fake: FakeBombora, function_settings: FunctionSettings
) -> None:
    results = pipeline(function_settings).process(
        records(account("a.example", origin="upload"), load_event("profile-membership-realized"))
    )
    assert (results["m-0"].outcome.kind, results["m-0"].outcome.reason) == (
        Kind.SKIPPED,
        "unsupported_origin",
    )
    assert (results["m-1"].outcome.kind, results["m-1"].outcome.reason) == (
        Kind.SKIPPED,
        "unsupported_entity",
    )
    assert fake.requests == []  # nothing to do at Bombora: not even a token


# ---------------------------------------------------------------- membership: exits, order, errors


def test_com_04_an_existing_member_account_is_added_like_a_realized_one(
    connection: Any, fake: FakeBombora, function_settings: FunctionSettings
) -> None:
    results = pipeline(function_settings).process(records(account("kept.example", status="existing")))
    assert results["m-0"].outcome.kind is Kind.DELIVERED
    assert fake.domains_of(AUDIENCE_NAME) == {"kept.example"}


def test_exited_accounts_are_deleted_from_the_list(
    connection: Any, fake: FakeBombora, function_settings: FunctionSettings
) -> None:
    list_id = stack_made_list(fake, ["stays.example", "leaves.example"])
    results = pipeline(function_settings).process(records(account("https://Leaves.example", status="exited")))
    assert results["m-0"].outcome.kind is Kind.DELIVERED
    (delete,) = fake.requests_to(DELETE)
    assert delete.json() == {"ids": ["leaves.example"]}
    assert fake.lists[list_id].domains == {"stays.example"}


def test_an_exit_for_an_audience_without_a_list_creates_nothing(
    connection: Any, fake: FakeBombora, function_settings: FunctionSettings
) -> None:
    results = pipeline(function_settings).process(records(account("a.example", status="exited")))
    assert (results["m-0"].outcome.kind, results["m-0"].outcome.reason) == (Kind.SKIPPED, "list_absent")
    assert creates(fake) == [] and fake.requests_to(DELETE) == []


def test_the_newest_change_of_an_account_in_a_batch_wins(
    connection: Any, fake: FakeBombora, function_settings: FunctionSettings
) -> None:
    list_id = stack_made_list(fake, ["churned.example"])
    results = pipeline(function_settings).process(
        records(
            account("churned.example", status="exited", occurred_at="2026-11-28T10:00:05Z"),
            account("churned.example", status="realized", occurred_at="2026-11-28T10:00:00Z"),
            account("won.example", status="realized", occurred_at="2026-11-28T10:00:00Z"),
            account("won.example", status="exited", occurred_at="2026-11-28T09:00:00Z"),
        )
    )
    assert [results[f"m-{i}"].outcome.reason for i in range(4)] == [
        "delivered",
        "superseded",
        "delivered",
        "superseded",
    ]
    assert fake.lists[list_id].domains == {"won.example"}


def test_a_409_update_pending_is_retried_in_process_then_from_the_queue(
    connection: Any, fake: FakeBombora, function_settings: FunctionSettings
) -> None:
    list_id = stack_made_list(fake)
    run = pipeline(function_settings)
    fake.set_pending(list_id, 1)
    assert run.process(records(account("a.example")))["m-0"].outcome.kind is Kind.DELIVERED
    fake.set_pending(list_id, 3)  # every in-process attempt
    outcome = run.process(records(account("b.example")))["m-0"].outcome
    assert (outcome.kind, outcome.reason) == (Kind.RETRY, "bombora_update_pending")
    assert outcome.retry_after is None  # back to SQS on the queue's visibility timeout
    assert run.process(records(account("b.example")))["m-0"].outcome.kind is Kind.DELIVERED
    assert fake.lists[list_id].domains == {"a.example", "b.example"}


@pytest.mark.parametrize(("status", "reason"), [(503, "http_503"), (429, "http_429")])
def test_transient_failures_leave_the_records_to_retry(
    connection: Any, fake: FakeBombora, function_settings: FunctionSettings, status: int, reason: str
) -> None:
    stack_made_list(fake)
    fake.fail_next(ADD, 3, status, body={"message": "try later"})
    outcome = pipeline(function_settings).process(records(account("a.example")))["m-0"].outcome
    assert (outcome.kind, outcome.reason) == (Kind.RETRY, reason)
    assert len(fake.requests_to(ADD)) == 3


def test_a_422_is_narrowed_down_to_the_accounts_it_is_about(
    connection: Any, fake: FakeBombora, function_settings: FunctionSettings
) -> None:
    list_id = stack_made_list(fake)
    fake.rejected_domains = {"refused.example"}
    domains = [f"ok{i}.example" for i in range(7)] + ["refused.example"]
    results = pipeline(function_settings).process(records(*(account(d) for d in domains)))
    refused = results[f"m-{domains.index('refused.example')}"].outcome
    assert (refused.kind, refused.reason) == (Kind.REJECTED, "http_422")
    assert sum(r.outcome.kind is Kind.DELIVERED for r in results.values()) == 7
    assert fake.lists[list_id].domains == {f"ok{i}.example" for i in range(7)}
    assert len(fake.requests_to(ADD)) <= 1 + 2 * 3  # one call, then halves down to the one account


def test_the_sample_sqs_batch_is_delivered(
    connection: Any, fake: FakeBombora, function_settings: FunctionSettings
) -> None:
    from tests.support import EVENTS

    batch = json.loads((EVENTS / "sqs" / "bombora-batch.json").read_text())
    results = pipeline(function_settings).process(batch["Records"])
    assert {r.outcome.kind for r in results.values()} == {Kind.DELIVERED}
    assert fake.domains_of(AUDIENCE_NAME) >= {"example.com"}
    assert AUDIENCE in {a for r in results.values() for o in r.per_instance for a in o.audience_ids}

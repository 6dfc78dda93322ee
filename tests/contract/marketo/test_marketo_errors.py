"""Marketo's errors against the fake: tokens (601/602), throttles (606/615/1029), the daily quota (607),
permanent and unknown codes, HTTP 200 with success:false, HTTP 413/414 (apis.md 1.7)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from activation_core.outcomes import Kind
from local.fakes.marketo import FakeMarketo
from marketo.client import next_quota_reset
from tests.contract.conftest import read_secret
from tests.contract.marketo.conftest import EXPO_LIST, SECRET, Recorder, Run, profile, settings_for

LEADS = r"^/rest/v1/leads\.json$"


def envelope(code: str, message: str = "error") -> dict[str, Any]:
    return {"requestId": "e42b#1", "success": False, "errors": [{"code": code, "message": message}]}


@pytest.fixture
def run(fake: FakeMarketo, run_with: Callable[..., Run]) -> Run:
    return run_with(**settings_for("audience_and_profile", "update_and_create"))


def test_fake_identity_returns_the_same_token_until_it_expires(fake: FakeMarketo) -> None:
    import httpx

    now = [1_000_000.0]
    fake.clock = lambda: now[0]
    fake.token_ttl = 3600
    form = {
        "grant_type": "client_credentials",
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
    }
    first = httpx.post(fake.base_url + "/identity/oauth/token", params=form).json()
    now[0] += 100
    second = httpx.get(fake.base_url + "/identity/oauth/token", params=form).json()
    now[0] += 3500
    third = httpx.post(fake.base_url + "/identity/oauth/token", params=form).json()
    assert first["access_token"] == second["access_token"] != third["access_token"]
    assert (first["expires_in"], second["expires_in"], third["expires_in"]) == (3600, 3500, 3600)
    refused = httpx.post(fake.base_url + "/identity/oauth/token", params={**form, "client_secret": "wrong"})
    assert refused.status_code == 401


def test_mkt_01_the_identity_call_carries_the_credentials_as_marketo_identity_json_declares(
    fake: FakeMarketo, run: Run
) -> None:
    """identityUsingPOST: client_id, client_secret and grant_type are required query parameters and
    the operation takes no body (apis.md also allows form data; the document does not)."""
    run([profile("ada@example.com")])
    (identity,) = fake.calls_to("identity")
    assert (identity.method, identity.body) == ("POST", b"")
    assert identity.query == {
        "grant_type": ["client_credentials"],
        "client_id": [fake.client_id],
        "client_secret": [fake.client_secret],
    }
    assert fake.violations == []


@pytest.mark.spec_violations
def test_fake_answers_a_request_its_openapi_refuses_as_marketo_does_and_records_it(
    fake: FakeMarketo, run: Run
) -> None:
    import httpx

    run([profile("ada@example.com")])  # a token
    assert fake.violations == []  # the function's own requests: the mark exempts only those below
    headers = {"Authorization": f"Bearer {fake.token}"}
    sync = fake.base_url + "/rest/v1/leads.json"

    def code(response: httpx.Response) -> str:
        body = response.json()
        assert response.status_code == 200 and body["success"] is False
        return str(body["errors"][0]["code"])

    assert code(httpx.post(sync, json={"action": "upsert", "input": []}, headers=headers)) == "1003"
    assert code(httpx.post(sync, json={"action": "createOnly"}, headers=headers)) == "1003"  # no input
    assert (
        code(httpx.post(sync, content=b"{", headers={**headers, "Content-Type": "application/json"})) == "609"
    )
    assert code(httpx.post(sync, data={"input": "x"}, headers=headers)) == "612"
    assert code(httpx.get(fake.base_url + "/rest/v1/leads.json", headers=headers)) == "1003"  # no filterType
    assert code(httpx.put(sync, json={"input": []}, headers=headers)) == "605"
    assert code(httpx.get(fake.base_url + "/rest/v1/nothing.json", headers=headers)) == "610"
    form = {"grant_type": "client_credentials", "client_id": fake.client_id, "client_secret": "x"}
    assert httpx.post(fake.base_url + "/identity/oauth/token", data=form).status_code == 400
    assert {v.kind for v in fake.violations} == {
        "body", "json", "content_type", "parameter", "method", "operation",
    }  # fmt: skip
    assert "is not one of" in fake.violations[0].detail


def test_one_token_serves_every_call_and_is_persisted(fake: FakeMarketo, run: Run, connection: Any) -> None:
    for i in range(3):
        run([profile(f"p{i}@example.com")])
    assert len(fake.calls_to("identity")) == 1
    stored = read_secret(connection, SECRET)
    assert stored["cachedToken"]["accessToken"] == fake.token
    assert stored["clientSecret"] == fake.client_secret


def test_602_an_expired_token_is_refreshed_once_mid_batch(fake: FakeMarketo, run: Run) -> None:
    run([profile("first@example.com")])
    fake.expire_tokens()
    outcomes = run([profile(f"p{i}@example.com") for i in range(3)])
    assert {o.kind for o in outcomes.values()} == {Kind.DELIVERED}
    assert fake.refusals["602"] == 1
    assert len(fake.calls_to("identity")) == 2
    assert len(fake.members(EXPO_LIST)) == 4


def test_601_is_refreshed_once_then_the_records_retry(fake: FakeMarketo, run: Run) -> None:
    fake.fail_next(LEADS, 2, 200, body=envelope("601", "Access token invalid"))
    outcomes = run([profile("ada@example.com")])
    assert (outcomes["m-0"].kind, outcomes["m-0"].reason) == (Kind.RETRY, "auth_failed_after_refresh")
    assert len(fake.calls_to("identity")) == 2  # one refresh, not a loop
    assert fake.leads == {}


def test_601_once_then_success_delivers(fake: FakeMarketo, run: Run) -> None:
    fake.fail_next(LEADS, 1, 200, body=envelope("601", "Access token invalid"))
    outcomes = run([profile("ada@example.com")])
    assert outcomes["m-0"].kind is Kind.DELIVERED


@pytest.mark.parametrize(("code", "retry_after"), [("606", 20.0), ("1029", 60.0)])
def test_throttles_back_off_and_the_records_retry(
    fake: FakeMarketo, run: Run, code: str, retry_after: float
) -> None:
    fake.fail_next(LEADS, 1, 200, body=envelope(code, "slow down"))
    outcomes = run([profile("ada@example.com"), profile("bob@example.com")])
    assert {(o.kind, o.reason, o.retry_after) for o in outcomes.values()} == {
        (Kind.RETRY, f"marketo_{code}", retry_after)
    }
    assert len(fake.calls_to("sync")) == 1  # no in-process hammering: SQS hides them until then


def test_615_backs_off_in_process_then_delivers(fake: FakeMarketo, run: Run, recorder: Recorder) -> None:
    fake.fail_next(LEADS, 1, 200, body=envelope("615", "Concurrent access limit reached"))
    outcomes = run([profile("ada@example.com")])
    assert outcomes["m-0"].kind is Kind.DELIVERED
    assert 2.0 in recorder.sleeps  # waited the back-off (injected sleep, no wall clock)
    assert len(fake.calls_to("sync")) == 2


def test_607_daily_quota_blocks_every_invocation_until_the_reset(
    fake: FakeMarketo, run_with: Callable[..., Run], recorder: Recorder
) -> None:
    fake.daily_quota = 2
    settings = settings_for("audience_and_profile", "update_and_create")
    first = run_with(**settings)
    outcomes = first([profile("a@example.com")])  # describe2 + partitions = the quota
    assert (outcomes["m-0"].kind, outcomes["m-0"].reason) == (Kind.RETRY, "marketo_607")
    retry_after = outcomes["m-0"].retry_after or 0.0
    expected = next_quota_reset(fake.clock()) - fake.clock()
    assert retry_after == pytest.approx(expected, abs=5)
    assert recorder.count("DailyQuotaExceeded") == 1
    calls = len(fake.arrivals)
    # Another invocation (another container) does not even call Marketo: the shared budget is blocked.
    second = run_with(**settings)
    again = second([profile("b@example.com")])
    assert (again["m-0"].kind, again["m-0"].reason) == (Kind.RETRY, "rate_budget_exhausted")
    assert len(fake.arrivals) == calls
    assert again["m-0"].retry_after == pytest.approx(expected, abs=5)


@pytest.mark.parametrize("code", ["603", "605", "609", "610", "612", "702", "711"])
def test_permanent_6xx_and_7xx_are_rejected_with_the_code(fake: FakeMarketo, run: Run, code: str) -> None:
    fake.fail_next(LEADS, 1, 200, body=envelope(code, "refused for ada@example.com"))
    outcomes = run([profile("ada@example.com")])
    assert (outcomes["m-0"].kind, outcomes["m-0"].reason) == (Kind.REJECTED, f"marketo_{code}")
    assert "ada@example.com" not in outcomes["m-0"].detail  # no plain email in a DLQ attribute


@pytest.mark.parametrize("code", ["604", "608", "611", "713", "719", "650"])
def test_transient_and_unknown_codes_retry(fake: FakeMarketo, run: Run, code: str) -> None:
    fake.fail_next(LEADS, 3, 200, body=envelope(code))
    outcomes = run([profile("ada@example.com")])
    assert (outcomes["m-0"].kind, outcomes["m-0"].reason) == (Kind.RETRY, f"marketo_{code}")
    assert len(fake.calls_to("sync")) == 3  # the layer's in-process attempts


def test_http_200_with_success_false_is_never_a_success(fake: FakeMarketo, run: Run) -> None:
    body = {"requestId": "x", "success": False, "result": [{"id": 1, "status": "created"}]}
    fake.fail_next(LEADS, 3, 200, body=body)
    outcomes = run([profile("ada@example.com")])
    assert outcomes["m-0"].kind is Kind.RETRY and fake.members(EXPO_LIST) == set()


def test_a_transient_failure_retried_in_process_delivers(fake: FakeMarketo, run: Run) -> None:
    fake.fail_next(LEADS, 1, 200, body=envelope("611", "System error"))
    outcomes = run([profile("ada@example.com")])
    assert outcomes["m-0"].kind is Kind.DELIVERED


def test_413_splits_the_batch_until_it_fits(fake: FakeMarketo, run: Run) -> None:
    fake.max_body_bytes = 12_000  # a few dozen leads per call instead of Marketo's 1 MB
    outcomes = run([profile(f"person{i:03d}@example.com", first="A" * 40) for i in range(120)])
    assert {o.kind for o in outcomes.values()} == {Kind.DELIVERED}
    assert fake.refusals["413"] >= 1  # refused whole, then split in halves until each half fits
    assert len(fake.calls_to("sync")) > fake.refusals["413"] + 1
    assert len(fake.leads) == 120 and len(fake.members(EXPO_LIST)) == 120


def test_414_on_a_lookup_splits_it_in_halves_as_gets(fake: FakeMarketo, run_with: Callable[..., Run]) -> None:
    fake.add_lead(email="ada@example.com")
    fake.add_lead(email="grace@example.com")
    fake.fail_next(LEADS, 1, 414)
    run = run_with(**settings_for("audience_only", None))
    outcomes = run([profile("ada@example.com"), profile("grace@example.com")])
    assert {o.kind for o in outcomes.values()} == {Kind.DELIVERED}
    lookups = fake.calls_to("lookup")
    assert [r.method for r in lookups] == ["GET"] * 3
    assert [r.query["filterValues"] for r in lookups] == [
        ["ada@example.com,grace@example.com"], ["ada@example.com"], ["grace@example.com"],
    ]  # fmt: skip


def test_mkt_07_a_lookup_split_after_a_414_stops_at_the_first_error_that_retries(
    fake: FakeMarketo, run_with: Callable[..., Run]
) -> None:
    """After the split, a server that keeps failing ends the lookup: the other half is not requested
    (its GETs would spend the rate limit for nothing) and the records go back to be retried."""
    fake.add_lead(email="ada@example.com")
    fake.add_lead(email="grace@example.com")
    fake.fail_next(LEADS, 1, 414)
    fake.fail_next(LEADS, 50, 503)
    run = run_with(**settings_for("audience_only", None))
    outcomes = run([profile("ada@example.com"), profile("grace@example.com")])
    assert {o.kind for o in outcomes.values()} == {Kind.RETRY}
    lookups = fake.calls_to("lookup")
    assert all(r.query["filterValues"] != ["grace@example.com"] for r in lookups)


def test_an_unknown_list_is_a_permanent_rejection(fake: FakeMarketo, run: Run) -> None:
    fake.lists.clear()
    outcomes = run([profile("ada@example.com")])
    assert (outcomes["m-0"].kind, outcomes["m-0"].reason) == (Kind.REJECTED, "marketo_1013")


def test_5xx_retry(fake: FakeMarketo, run: Run) -> None:
    fake.fail_next(LEADS, 3, 502, body={"error": "bad gateway"})
    outcomes = run([profile("ada@example.com")])
    assert (outcomes["m-0"].kind, outcomes["m-0"].reason) == (Kind.RETRY, "http_502")

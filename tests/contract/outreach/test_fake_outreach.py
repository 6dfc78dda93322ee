"""The fake Outreach itself, over HTTP: the OAuth and rate-limit behaviours the destination is tested
against (apis.md section 2), so a test passing against it means something."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from local.fakes.outreach import JSON_API, FakeOutreach

T0 = 1_795_860_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> Iterator[FakeOutreach]:
    server = FakeOutreach(clock=clock, rate_limit=3)
    server.start()
    server.add_prospect(1001, firstName="Ada")
    yield server
    threading.Thread(target=server.stop, daemon=True).start()  # its 0.5 s shutdown poll: not ours to wait


def token(fake: FakeOutreach, **form: str) -> httpx.Response:
    data = {
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "redirect_uri": fake.redirect_uri,
    }
    return httpx.post(f"{fake.base_url}/oauth/token", data={**data, **form})


def patch(fake: FakeOutreach, access_token: str, body: Any, content_type: str = JSON_API) -> httpx.Response:
    return httpx.patch(
        f"{fake.base_url}/api/v2/prospects/1001",
        content=json.dumps(body),
        headers={"Authorization": f"Bearer {access_token}", "Content-Type": content_type},
    )


def test_fake_code_exchange_then_rotating_refresh_tokens_capped_and_one_mint_per_minute(
    fake: FakeOutreach, clock: Clock
) -> None:
    fake.max_refresh_tokens = 5  # 100 in the fake's default, like Outreach
    code = fake.authorize()
    first = token(fake, grant_type="authorization_code", code=code).json()
    assert {"access_token", "refresh_token", "expires_in"} <= set(first) and first["expires_in"] == 7200
    clock.now += 60
    assert token(fake, grant_type="authorization_code", code=code).status_code == 400  # single use
    assert token(fake, grant_type="refresh_token", refresh_token=first["refresh_token"]).status_code == 200
    clock.now += 30
    again = token(fake, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert again.status_code == 429 and again.headers["Retry-After"] == "30"  # one mint per 60 s

    refresh_tokens = [first["refresh_token"]]
    for _ in range(6):
        clock.now += 60
        response = token(fake, grant_type="refresh_token", refresh_token=refresh_tokens[-1])
        assert response.status_code == 200
        refresh_tokens.append(response.json()["refresh_token"])
    assert len(set(refresh_tokens)) == len(refresh_tokens)  # a new refresh token on every refresh
    assert len(fake.refresh_tokens) == 5  # the cap: the oldest ones were revoked
    clock.now += 60
    assert token(fake, grant_type="refresh_token", refresh_token=refresh_tokens[0]).status_code == 400
    # Older but still among the active ones: valid until its TTL, not only the newest.
    assert token(fake, grant_type="refresh_token", refresh_token=refresh_tokens[-3]).status_code == 200


def test_fake_rate_headers_on_every_response_and_the_documented_429(fake: FakeOutreach, clock: Clock) -> None:
    access = token(fake, grant_type="refresh_token", refresh_token=fake.issue_refresh_token()).json()[
        "access_token"
    ]
    body = {"data": {"type": "prospect", "id": 1001, "attributes": {"custom4": "realized"}}}
    responses = [patch(fake, access, body) for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in responses] == ["2", "1", "0", "0"]
    assert {r.headers["X-RateLimit-Limit"] for r in responses} == {"3"}
    assert {r.headers["X-RateLimit-Reset"] for r in responses} == {str(int(T0 + 3600))}
    error = responses[-1].json()["errors"][0]
    assert error["id"] == "rateLimitExceeded"
    assert error["detail"] == (
        "You have exceeded your permitted rate limit of 3; please try again at 2026-11-28T11:00:00."
    )
    assert responses[-1].headers["Retry-After"] == "3600"
    clock.now += 3600
    assert patch(fake, access, body).status_code == 200  # a new window


@pytest.mark.parametrize(
    ("body", "content_type", "status", "error_id"),
    [
        ({"data": {"type": "prospect", "id": 1001, "attributes": {"custom150": "x"}}}, JSON_API, 200, None),
        ({"data": {"type": "prospect", "id": 1001}}, "application/json", 415, "unsupportedMediaType"),
        ({"data": {"type": "account", "id": 1001}}, JSON_API, 422, "validationError"),
        ({"data": {"type": "prospect", "id": "1001"}}, JSON_API, 422, "validationError"),
        (
            {"data": {"type": "prospect", "id": 1001, "attributes": {"custom151": "x"}}},
            JSON_API,
            422,
            "validationError",
        ),
        (
            {"data": {"type": "prospect", "id": 1001, "attributes": {"createdAt": "x"}}},
            JSON_API,
            422,
            "validationError",
        ),
    ],
)
@pytest.mark.spec_violations
def test_fake_validates_the_json_api_body_and_custom_fields(
    fake: FakeOutreach, body: Any, content_type: str, status: int, error_id: str | None
) -> None:
    fake.rate_limit = 100
    access = token(fake, grant_type="refresh_token", refresh_token=fake.issue_refresh_token()).json()[
        "access_token"
    ]
    response = patch(fake, access, body, content_type)
    assert response.status_code == status
    if error_id:
        assert response.json()["errors"][0]["id"] == error_id
    assert "X-RateLimit-Remaining" in response.headers


def test_fake_unknown_prospect_is_the_documented_404(fake: FakeOutreach) -> None:
    access = token(fake, grant_type="refresh_token", refresh_token=fake.issue_refresh_token()).json()[
        "access_token"
    ]
    response = httpx.patch(
        f"{fake.base_url}/api/v2/prospects/1",
        content=json.dumps({"data": {"type": "prospect", "id": 1, "attributes": {}}}),
        headers={"Authorization": f"Bearer {access}", "Content-Type": JSON_API},
    )
    assert response.status_code == 404
    assert response.json()["errors"][0]["detail"] == "Could not find 'prospect' with ID '1'."


@pytest.mark.spec_violations
def test_fake_refuses_what_its_documents_refuse_with_json_api_errors_and_records_it(
    fake: FakeOutreach,
) -> None:
    fake.rate_limit = 100
    access = token(fake, grant_type="refresh_token", refresh_token=fake.issue_refresh_token()).json()[
        "access_token"
    ]
    headers = {"Authorization": f"Bearer {access}", "Content-Type": JSON_API}
    url = f"{fake.base_url}/api/v2/prospects"
    too_long = {"data": {"type": "prospect", "id": 1001, "attributes": {"custom7": "x" * 32_001}}}
    refused = httpx.patch(f"{url}/1001", content=json.dumps(too_long), headers=headers)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["source"]["pointer"] == "/data/attributes/custom7"
    assert httpx.patch(f"{url}/1001", content=b"{", headers=headers).status_code == 400
    assert httpx.patch(f"{url}/ada", content=b"{}", headers=headers).status_code == 404  # id: integer
    assert httpx.put(f"{url}/1001", content=b"{}", headers=headers).status_code == 404  # no such operation
    assert httpx.delete(f"{url}/1001", params={"force": "1"}, headers=headers).status_code == 400
    assert fake.prospects[1001] == {"firstName": "Ada"}  # nothing refused was applied
    # The token endpoint (not in outreach-v2.json): the form apis.md 2.1 documents, nothing else.
    form = {"client_id": fake.client_id, "client_secret": fake.client_secret, "grant_type": "refresh_token"}
    assert httpx.post(f"{fake.base_url}/oauth/token", data=form).json()["error"] == "invalid_request"
    assert httpx.post(f"{fake.base_url}/oauth/token", json=form).status_code == 400
    kinds = [(v.kind, v.location) for v in fake.violations]
    assert kinds == [
        ("body", "body"), ("json", "body"), ("parameter", "path"), ("method", ""), ("parameter", "query"),
        ("parameter", ""), ("parameter", ""), ("content_type", ""),
    ]  # fmt: skip

"""A fake RainFocus API. RainFocus publishes no spec: every behaviour here is the **[INFER]** contract
of apis.md section 5.2, kept in one place so it is easy to correct when the real API is known.

- `POST /oauth/token` (client credentials, form body) -> {access_token, token_type, expires_in};
- `POST /api/{orgId}/v3/attendee/store` with `Authorization: Bearer` and the API-profile header:
  upsert keyed by (event, lower(email)); the `{responseCode, responseMessage}` envelope everywhere;
  400 + code 103 without the API profile; 401 for an unknown or expired token.
- `profile_from_token=True`: the AEP document's connection has no API-profile field (client ID,
  client secret, environment, org ID): a token minted with the "OAuth (Global)" API profile's client
  credentials names that profile, so the header may be left out (a wrong one still gives 103).
"""

from __future__ import annotations

import itertools
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from local.fakes.base import FakeServer, Request, Response


def _envelope(status: int, code: str, message: str, **extra: object) -> Response:
    return Response(status, {"responseCode": code, "responseMessage": message, **extra})


class FakeRainfocus(FakeServer):
    def __init__(
        self,
        *,
        client_id: str = "rf-client",
        client_secret: str = "rf-secret-value",  # noqa: S107 - a fake's test credential
        org_id: str = "org-1",
        api_profile: str = "activation-profile",
        event_codes: tuple[str, ...] = ("expo2026",),
        token_ttl: float = 3600.0,
        api_profile_header: str = "apiProfile",
        clock: Callable[[], float] = time.time,
        profile_from_token: bool = False,
    ) -> None:
        super().__init__()
        self.client_id, self.client_secret, self.org_id = client_id, client_secret, org_id
        self.api_profile, self.api_profile_header = api_profile, api_profile_header
        self.profile_from_token = profile_from_token
        self.event_codes = set(event_codes)
        self.token_ttl = token_ttl
        self.clock = clock
        self.tokens: dict[str, float] = {}
        self.attendees: dict[tuple[str, str], dict[str, str]] = {}
        self._ids = itertools.count(1)
        self.creations: Counter[tuple[str, str]] = Counter()
        self._state = threading.Lock()
        self.route("POST", "/oauth/token", self._token)
        self.route("POST", r"/api/(?P<org>[^/]+)/v3/attendee/store", self._store)

    def duplicate_entities(self) -> list[str]:
        return [f"{event}/{email}" for (event, email), count in self.creations.items() if count > 1]

    def throttle_response(self) -> Response:
        response = _envelope(429, "429", "Too many requests")
        response.headers["Retry-After"] = "1"
        return response

    def server_error_response(self) -> Response:
        return _envelope(503, "503", "Service temporarily unavailable")

    @property
    def token_requests(self) -> int:
        return len(self.requests_to(r"^/oauth/token$"))

    def expire_tokens(self) -> None:
        """Every issued token stops working now (token expiry in the middle of a batch)."""
        with self._state:
            self.tokens = dict.fromkeys(self.tokens, 0.0)

    def _token(self, request: Request, _: re.Match[str]) -> Response:
        form = request.form()
        if form.get("grant_type") != "client_credentials":
            return _envelope(400, "unsupported_grant_type", "grant_type must be client_credentials")
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return _envelope(401, "invalid_client", "Invalid client credentials")
        token = secrets.token_urlsafe(24)
        with self._state:
            self.tokens[token] = self.clock() + self.token_ttl
        return Response(
            200, {"access_token": token, "token_type": "Bearer", "expires_in": int(self.token_ttl)}
        )

    def _store(self, request: Request, match: re.Match[str]) -> Response:  # noqa: PLR0911 - one return per documented error
        named = request.header(self.api_profile_header)
        if named != self.api_profile and not (self.profile_from_token and not named):
            return _envelope(400, "103", f"Required parameter missing: {self.api_profile_header}")
        token = request.header("authorization").removeprefix("Bearer ")
        with self._state:
            expires_at = self.tokens.get(token)
        if expires_at is None or expires_at <= self.clock():
            return _envelope(401, "401", "Unauthorized: invalid or expired token")
        if match["org"] != self.org_id:
            return _envelope(404, "404", "Unknown organisation")
        try:
            body = request.json()
        except ValueError:
            return _envelope(400, "100", "Body is not JSON")
        if not isinstance(body, dict) or not body.get("email") or not body.get("event"):
            return _envelope(400, "101", "event and email are required")
        if body["event"] not in self.event_codes:
            return _envelope(400, "104", "Unknown event code")
        key = (str(body["event"]), str(body["email"]).lower())
        with self._state:
            existing = self.attendees.get(key)
            attendee_id = existing["attendeeId"] if existing else f"att-{next(self._ids)}"
            if existing is None:
                self.creations[key] += 1
            self.attendees[key] = {**(existing or {}), **{k: str(v) for k, v in body.items()},
                                   "attendeeId": attendee_id}  # fmt: skip
        return _envelope(200, "0", "Success", data={"attendeeId": attendee_id})


class Plug:
    """Plugs the fake into the local stack (see local/harness.py)."""

    def __init__(self) -> None:
        self.fake: FakeRainfocus = FakeRainfocus()

    def connection_secret(self) -> dict[str, Any]:
        fake = self.fake
        return {
            "baseUrl": fake.base_url,
            "clientId": fake.client_id,
            "clientSecret": fake.client_secret,
            "orgId": fake.org_id,
            "apiProfile": fake.api_profile,
        }

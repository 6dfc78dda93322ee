"""The only file that knows RainFocus URLs, headers, payloads and response codes.

Contract (all **[INFER]**, apis.md section 5.2): client-credentials token at `{base}{tokenPath}`;
`POST {base}/api/{orgId}/v3/attendee/store` upserts an attendee keyed by (event, lower(email)); every
response is the `{responseCode, responseMessage}` envelope, "0" meaning success.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from activation_core import http
from activation_core.credentials import Credentials
from activation_core.errors import ActivationError, AuthError, PermanentError, RetryableError
from activation_core.oauth import TokenGrant
from rainfocus.models import HOST_PATTERN, RainfocusConnection, RainfocusSettings, api_base_url

# responseCode values that mean "your token is not valid": refresh once and retry.
AUTH_RESPONSE_CODES = frozenset({"401", "auth_expired", "invalid_token"})


def classify(response: httpx.Response) -> ActivationError | None:
    """HTTP status first (5xx/429 retry, 401 auth), then the envelope's responseCode."""
    error = http.classify_response(response)
    code, message = _envelope(response)
    if isinstance(error, PermanentError) and code:
        return PermanentError(f"rainfocus_{code}", message)
    if error is not None:
        return error
    if code in AUTH_RESPONSE_CODES:
        return AuthError(f"rainfocus_{code}", message)
    if code != "0":
        return PermanentError(f"rainfocus_{code or 'no_code'}", message or "no responseCode in the response")
    return None


def _envelope(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    return str(body.get("responseCode", "")), str(body.get("responseMessage", ""))[:200]


class RainfocusClient:
    def __init__(
        self,
        connection: RainfocusConnection,
        settings: RainfocusSettings,
        tokens: Credentials,
        *,
        allow_loopback: bool,
        client: httpx.Client | None = None,
    ) -> None:
        self._base = _base(connection, settings, allow_loopback)
        self._settings = settings
        self._connection = connection
        self._tokens = tokens
        self._client = client or http.shared_client()
        self.api_calls = 0

    def _count(self) -> None:
        self.api_calls += 1

    def store_attendee(self, attendee: Mapping[str, str]) -> str:
        """Create or update one attendee (RNF-05); returns its attendeeId."""
        url = self._base + self._settings.store_path.replace("{orgId}", self._connection.org_id)

        def call(token: str) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            if self._connection.api_profile:
                headers[self._settings.api_profile_header] = self._connection.api_profile
            return http.send(
                "POST", url, client=self._client, classify=classify, on_attempt=self._count,
                headers=headers, json=dict(attendee),
            )  # fmt: skip

        response = self._tokens.call_with_token(call)
        data = response.json().get("data") or {}
        return str(data.get("attendeeId", ""))


def fetch_token(
    connection: Mapping[str, Any], settings: RainfocusSettings, *, allow_loopback: bool
) -> TokenGrant:
    """Client-credentials grant against the API profile's token endpoint (RNF-01)."""
    parsed = RainfocusConnection.model_validate(connection)
    base = _base(parsed, settings, allow_loopback)
    response = http.send(
        "POST",
        base + settings.token_path,
        data={
            "grant_type": "client_credentials",
            "client_id": parsed.client_id,
            "client_secret": parsed.client_secret,
        },
    )
    body = response.json()
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise RetryableError("token_response_invalid", "the token endpoint returned no access_token")
    return TokenGrant(access_token=token, expires_in=float(body.get("expires_in", 3600)))


def _base(connection: RainfocusConnection, settings: RainfocusSettings, allow_loopback: bool) -> str:
    base = api_base_url(settings, connection)
    if base is None:  # the connector checks this first, naming the setting; kept for direct callers
        raise PermanentError("unknown_environment", f"no API base for environment '{settings.environment}'")
    return http.validate_base_url(base, host_pattern=HOST_PATTERN, allow_loopback=allow_loopback)

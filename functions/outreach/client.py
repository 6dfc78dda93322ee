"""The only file that knows Outreach URLs, headers, payloads, error bodies and rate-limit headers.

Contract (apis.md section 2; **[DOC]** unless marked):
- token: `POST {base}/oauth/token`, form `grant_type=authorization_code|refresh_token, client_id,
  client_secret, redirect_uri, code|refresh_token` -> `{access_token, expires_in, refresh_token, ...}`;
  access tokens live 2 h, one mint per user/app per 60 s (429 beyond) **[3P]**; each refresh returns a
  refresh token that we persist, rotation semantics being **[UNKNOWN]**;
- update: `PATCH {base}/api/v2/prospects/{id}` with `Content-Type: application/vnd.api+json` and
  `{"data": {"type": "prospect", "id": <int>, "attributes": {...}}}` (415 with any other content type);
- errors: JSON:API `{"errors": [{"id", "title", "detail", "source": {"pointer"}}]}`: 404
  resourceNotFound, 422 validationError (pointer `/data/attributes/<name>`), 429 rateLimitExceeded,
  503 scheduledServerMaintenance (`Retry-After` as an ISO timestamp);
- rate: 10,000 requests per hour per user; `X-RateLimit-Limit/-Remaining/-Reset` (epoch seconds)
  on every response **[3P/OSS]**.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx

from activation_core import http
from activation_core.credentials import Credentials
from activation_core.errors import (
    ActivationError,
    AuthError,
    PermanentError,
    RetryableError,
    ThrottledError,
)
from activation_core.oauth import TokenGrant
from activation_core.rate_budget import RateBudget
from outreach.models import HOST_PATTERN, MAX_CONCURRENCY, OutreachConnection

TOKEN_PATH = "/oauth/token"  # noqa: S105 - a path
AUTHORIZE_PATH = "/oauth/authorize"
PROSPECT_PATH = "/api/v2/prospects/{id}"
JSON_API = "application/vnd.api+json"
DEFAULT_SCOPE = "prospects.read prospects.write"
ACCESS_TOKEN_SECONDS = 7200.0  # when a token response omits expires_in
MIN_MINT_INTERVAL = 60.0  # one access token per user/app per 60 s
# A 429 without a usable reset time: wait a minute rather than hammer the API.
DEFAULT_THROTTLE_SECONDS = 60.0
# Outreach's waits are its hourly reset or a maintenance window: anything longer than a short backoff
# goes back to SQS (the message hidden until then) instead of holding the function.
RETRY_POLICY = http.RetryPolicy(attempts=3, base_delay=0.2, max_delay=1.0, max_in_process_wait=2.0)
# How long one invocation may wait for the shared budget before deferring its records.
BUDGET_MAX_WAIT = 5.0

BAD_REQUEST_MESSAGE = (
    "Bad request reported while pushing events to the destination. "
    "Please contact the administrator and try again."
)
_TRY_AGAIN_AT = re.compile(r"try again at ([0-9T:.+\-Z ]+?)\.?\s*$", re.IGNORECASE)
_ATTRIBUTE_POINTER = re.compile(r"^/data/attributes/([A-Za-z0-9_]+)$")


class FieldRejectedError(PermanentError):
    """A 422 naming one attribute (`source.pointer`): the prospect refused that attribute's value."""

    def __init__(self, field: str | None, detail: str) -> None:
        super().__init__(f"invalid_field:{field}" if field else "outreach_validation_error", detail)
        self.field = field


def _errors(response: httpx.Response) -> tuple[str, str, str | None]:
    """(error id, human detail, attribute named by source.pointer) of a JSON:API error body."""
    try:
        body = response.json()
    except ValueError:
        return "", http.safe_excerpt(response.text), None
    if not isinstance(body, dict):
        return "", "", None
    errors = body.get("errors")
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    # The 415 example in the docs says "details"; everything else says "detail". OAuth errors are flat.
    text = first.get("detail") or first.get("details") or first.get("title") or body.get("error_description")
    source = first.get("source")
    pointer = source.get("pointer") if isinstance(source, dict) else None
    match = _ATTRIBUTE_POINTER.match(pointer) if isinstance(pointer, str) else None
    error_id = str(first.get("id") or body.get("error") or "")
    return error_id, http.safe_excerpt(str(text or "")), match[1] if match else None


def _retry_at_in_message(detail: str, now: float) -> float | None:
    """Seconds until the time in "...please try again at 2017-01-01T00:00:00." (naive = UTC)."""
    match = _TRY_AGAIN_AT.search(detail)
    if match is None:
        return None
    try:
        at = datetime.fromisoformat(match[1].strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return max(0.0, at.timestamp() - now)


class RateGate:
    """The Outreach user's hourly budget as seen by one connector, shared by all invocations.

    Calls are taken from the layer's `RateBudget` (a strict sliding hour in DynamoDB) in chunks, so an
    invocation pays one DynamoDB round trip per `chunk` calls rather than per call. The vendor's own
    count is the truth for the whole user (other apps spend it too): once `X-RateLimit-Remaining`
    drops to `reserve`, or on a 429, everybody waits for `X-RateLimit-Reset` (`block_until`).
    """

    def __init__(
        self,
        budget: RateBudget,
        *,
        reserve: int,
        chunk: int,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = BUDGET_MAX_WAIT,
    ) -> None:
        self._budget = budget
        self._reserve = reserve
        self._chunk = max(1, chunk)
        self._clock = clock
        self._sleep = sleep
        self._max_wait = max_wait
        self._lock = threading.Lock()
        self._allowance = 0
        self._planned = 0
        self._blocked_until = 0.0
        self.remaining: int | None = None  # the vendor's last word (metrics, tests)

    def plan(self, calls: int) -> None:
        """The calls the coming invocation expects to make (sizes the chunks; nothing is taken yet)."""
        with self._lock:
            # Calls taken earlier but never made were counted in the window: dropping them errs safe.
            self._allowance = 0
            self._planned = max(0, calls)

    def take(self) -> None:
        """One call's worth of budget, or ThrottledError with the time to wait (the record is deferred)."""
        with self._lock:
            wait = self._blocked_until - self._clock()
            if wait > self._max_wait:
                raise ThrottledError("rate_limit_reset_pending", "Outreach's hourly budget is spent", wait)
            if wait > 0:
                self._sleep(wait)  # a short block (a brief throttle): cheaper to wait than to requeue
            if self._allowance == 0:
                self._allowance = self._acquire()
            self._allowance -= 1
            self._planned = max(0, self._planned - 1)

    def _acquire(self) -> int:
        calls = max(1, min(self._chunk, self._planned, self._budget.window.limit))
        try:
            self._budget.acquire(calls, max_wait=self._max_wait)
        except ThrottledError:
            if calls == 1:
                raise
            # Nearly spent: a single call may still fit where a whole chunk does not.
            self._budget.acquire(1, max_wait=self._max_wait)
            return 1
        return calls

    def observe(self, headers: Mapping[str, str], now: float) -> None:
        """Re-synchronise with the vendor's count from the X-RateLimit headers of any response."""
        remaining_text = headers.get("X-RateLimit-Remaining")
        if remaining_text is None:
            return
        try:
            remaining = int(float(remaining_text))
        except ValueError:
            return
        self.remaining = remaining
        if remaining > self._reserve:
            return
        reset = headers.get("X-RateLimit-Reset")
        delta = http.parse_retry_after({"X-RateLimit-Reset": reset}, now) if reset else None
        self.block_until(now + (delta if delta is not None else DEFAULT_THROTTLE_SECONDS))

    def block_until(self, epoch_seconds: float) -> None:
        """Nobody (this invocation, or any other through the shared budget) calls before then."""
        with self._lock:
            if epoch_seconds <= self._blocked_until:
                return  # already known: spare DynamoDB the write
            self._blocked_until = epoch_seconds
        self._budget.block_until(epoch_seconds)


def authorize_url(base_url: str, client_id: str, redirect_uri: str, scope: str, state: str) -> str:
    """The browser URL of the one-time login (OUT-01); Outreach redirects back with `?code=`."""
    query = urlencode(
        {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": scope,
            "state": state,
        }
    )
    return f"{base_url.rstrip('/')}{AUTHORIZE_PATH}?{query}"


def _classify_token(response: httpx.Response) -> ActivationError | None:
    status = response.status_code
    if 200 <= status < 300:
        return None
    error_id, detail, _ = _errors(response)
    if status == 429:
        retry_after = http.parse_retry_after(response.headers, time.time())
        return ThrottledError("token_mint_throttled", "one token per 60 s", retry_after or MIN_MINT_INTERVAL)
    if status in (400, 401, 403):
        # A refused grant (revoked or expired refresh token, wrong client): only a person can fix it,
        # so the records go to the DLQ now, to be replayed after re-authorisation.
        return PermanentError(
            f"oauth_{error_id or status}",
            f"{detail or 'the token endpoint refused the grant'}; re-run the one-time authorization"
            " (python -m outreach.authorize)",
        )
    return http.classify_response(response)


def _token_request(
    connection: OutreachConnection,
    grant: Mapping[str, str],
    *,
    allow_loopback: bool,
    client: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> TokenGrant:
    base = http.validate_base_url(
        connection.base_url, host_pattern=HOST_PATTERN, allow_loopback=allow_loopback
    )
    response = http.send(
        "POST",
        base + TOKEN_PATH,
        client=client,
        classify=_classify_token,
        policy=RETRY_POLICY,
        sleep=sleep,
        data={
            **grant,
            "client_id": connection.client_id,
            "client_secret": connection.client_secret,
            "redirect_uri": connection.redirect_uri,
        },
    )
    try:
        body = response.json()
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    token, refresh, expires_in = body.get("access_token"), body.get("refresh_token"), body.get("expires_in")
    if not isinstance(token, str) or not token:
        raise RetryableError("token_response_invalid", "the token endpoint returned no access_token")
    return TokenGrant(
        access_token=token,
        expires_in=float(expires_in)
        if isinstance(expires_in, int | float) and expires_in > 0
        else ACCESS_TOKEN_SECONDS,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
    )


def refresh_access_token(
    connection: Mapping[str, Any],
    *,
    allow_loopback: bool,
    client: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> TokenGrant:
    """The refresh-token grant (OUT-01); the TokenProvider persists the returned refresh token first."""
    parsed = OutreachConnection.model_validate(connection)
    if not parsed.refresh_token:
        raise RetryableError(
            "not_authorized",
            "the connection secret has no refreshToken: run the one-time authorization"
            " (python -m outreach.authorize)",
        )
    return _token_request(
        parsed,
        {"grant_type": "refresh_token", "refresh_token": parsed.refresh_token},
        allow_loopback=allow_loopback,
        client=client,
        sleep=sleep,
    )


def exchange_code(
    connection: OutreachConnection, code: str, *, allow_loopback: bool, client: httpx.Client | None = None
) -> TokenGrant:
    """The authorization-code grant of the one-time step (see outreach.authorize)."""
    return _token_request(
        connection,
        {"grant_type": "authorization_code", "code": code},
        allow_loopback=allow_loopback,
        client=client,
    )


_http: httpx.Client | None = None
_http_lock = threading.Lock()


def http_client() -> httpx.Client:
    """The container's HTTP client for Outreach (connection reuse across warm invocations).

    Like the layer's shared client (same timeouts, no redirects) but keeping as many idle connections
    as an invocation runs calls in parallel: the shared one keeps 10, and each connection dropped
    between batches costs a TLS handshake on the next one.
    """
    global _http
    if _http is None:
        with _http_lock:
            if _http is None:
                connections = MAX_CONCURRENCY
                _http = httpx.Client(
                    timeout=http.shared_client().timeout,
                    limits=httpx.Limits(
                        max_connections=connections,
                        max_keepalive_connections=connections,
                        keepalive_expiry=30.0,
                    ),
                    follow_redirects=False,
                    headers={"User-Agent": "activation-core"},
                )
    return _http


class OutreachClient:
    """PATCHes prospects through the shared token provider, inside the shared rate budget."""

    def __init__(
        self,
        connection: OutreachConnection,
        tokens: Credentials,
        gate: RateGate,
        *,
        allow_loopback: bool,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._base = http.validate_base_url(
            connection.base_url, host_pattern=HOST_PATTERN, allow_loopback=allow_loopback
        )
        self._tokens = tokens
        self.gate = gate
        self._client = client or http_client()
        self._clock = clock
        self._sleep = sleep
        self._count_lock = threading.Lock()
        self.api_calls = 0

    def warm_token(self) -> None:
        """Get the access token once before fanning out, so parallel calls do not race for it."""
        self._tokens.get()

    def _attempt(self) -> None:
        self.gate.take()  # raises when the budget is spent: the call is never made
        with self._count_lock:
            self.api_calls += 1

    def classify(self, response: httpx.Response) -> ActivationError | None:  # noqa: PLR0911 - one per status
        """Every response re-synchronises the budget; errors map onto the layer's taxonomy."""
        now = self._clock()
        self.gate.observe(response.headers, now)
        status = response.status_code
        if 200 <= status < 300:
            return None
        error_id, detail, field = _errors(response)
        if status == 401:
            return AuthError("http_401", detail or "access token refused")
        if status == 404:
            return PermanentError("prospect_not_found", detail or "no prospect with this OutreachId")
        if status == 415:  # a bug on our side: visible in the DLQ, replayable once fixed
            return PermanentError("unsupported_media_type", detail or "unsupported media type")
        if status == 422:
            return FieldRejectedError(field, detail or "validation error")
        if status == 429:
            retry_after = (
                http.parse_retry_after(response.headers, now)
                or _retry_at_in_message(detail, now)
                or DEFAULT_THROTTLE_SECONDS
            )
            self.gate.block_until(now + retry_after)
            return ThrottledError("http_429", detail or "rate limit exceeded", retry_after)
        if status == 403:
            return PermanentError(f"outreach_{error_id or 'forbidden'}", detail or "forbidden")
        if status == 408 or status >= 500:
            # Only Retry-After counts here: X-RateLimit-Reset is on every response and says nothing
            # about when a failing server comes back (the layer's default would read it as a wait).
            retry_after = response.headers.get("Retry-After")
            wait = http.parse_retry_after({"Retry-After": retry_after}, now) if retry_after else None
            return RetryableError(f"http_{status}", detail or response.reason_phrase, retry_after=wait)
        return http.classify_response(response)  # other 4xx: permanent

    def delete_prospect(self, prospect_id: int) -> bool:
        """`DELETE /api/v2/prospects/{id}` (204 Deleted); False when Outreach has no such prospect (404)."""
        url = self._base + PROSPECT_PATH.format(id=prospect_id)

        def call(token: str) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}", "Accept": JSON_API}
            return http.send(
                "DELETE", url, client=self._client, classify=self.classify, policy=RETRY_POLICY,
                sleep=self._sleep, on_attempt=self._attempt, headers=headers,
            )  # fmt: skip

        try:
            self._tokens.call_with_token(call)
        except PermanentError as exc:
            if exc.reason == "prospect_not_found":
                return False
            raise
        return True

    def update_prospect(self, prospect_id: int, attributes: Mapping[str, Any]) -> None:
        """Update one existing prospect (never creates one): OUT-02..04."""
        url = self._base + PROSPECT_PATH.format(id=prospect_id)
        body = json.dumps(
            {"data": {"type": "prospect", "id": prospect_id, "attributes": dict(attributes)}}
        ).encode()

        def call(token: str) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}", "Content-Type": JSON_API, "Accept": JSON_API}
            return http.send(
                "PATCH", url, client=self._client, classify=self.classify, policy=RETRY_POLICY,
                sleep=self._sleep, on_attempt=self._attempt, headers=headers, content=body,
            )  # fmt: skip

        self._tokens.call_with_token(call)

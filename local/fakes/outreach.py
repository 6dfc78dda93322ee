"""A fake Outreach API (apis.md section 2): OAuth token endpoint and prospect updates.

- `POST /oauth/token` (form): `authorization_code` (a code from `authorize()`, the stand-in for the
  browser login) and `refresh_token` grants; every mint returns a new refresh token, older ones stay
  valid until their TTL (14 days), at most 100 are active (the oldest is revoked), and at most one
  token is minted per 60 s (429 beyond). Rotation and the 60 s rule are **[INFER]/[3P]** facts.
- `PATCH /api/v2/prospects/{id}`: Bearer token, `Content-Type: application/vnd.api+json` (else 415),
  `data.type == "prospect"` and `data.id` equal to the URL's id, attributes `custom1`..`custom150`
  (minus `undefined_custom_fields`, an org without that field) and writable standard attributes
  (else 422 with `source.pointer`); an unknown id is a 404 and nothing is ever created by a PATCH.
- Rate: `rate_limit` requests per `rate_window` seconds per user (a fixed window); every response
  carries X-RateLimit-Limit/-Remaining/-Reset (epoch seconds); beyond the limit, or during
  `throttle_for()`, 429 with the documented message and Retry-After.
- Every request is recorded (`requests`), with its answer and time in `log`; `latency` delays each
  prospect call (benchmarks) and `peak_in_flight` counts how many ran at once.
- Every API request is first checked against `outreach-v2.json` (local/fakes/openapi.py: operation,
  path and query parameters, content type, JSON:API body against the operation's schema); one it
  refuses is recorded in `violations` and answered with a JSON:API error as Outreach does (404 no such
  operation or a path id that is not an integer, 400 a query parameter or a body that is not JSON, 415
  the content type, 422 the body's schema with `source.pointer`). The token endpoint is not in the
  OpenAPI file: `_token` checks the form fields apis.md 2.1 documents per grant, recorded the same way.
"""

from __future__ import annotations

import itertools
import math
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from local.fakes.base import FakeServer, Request, Response
from local.fakes.openapi import Violation, vendor_spec

JSON_API = "application/vnd.api+json"
CUSTOM = re.compile(r"^custom([0-9]+)$")
# Attributes the OpenAPI file badges read-only: a PATCH that sets one is refused.
READ_ONLY = frozenset(
    """callsOptedAt clickCount contactHistogram createdAt emailsOptedAt engagedAt engagedScore linkedInSlug
    name openCount optedOutAt replyCount timeZoneIana timeZoneInferred touchedAt updatedAt""".split()  # noqa: SIM905 - a compact table
)
_NAME_LIMIT = 255
FORM = "application/x-www-form-urlencoded"
# The token endpoint's form fields per grant (apis.md 2.1; not in outreach-v2.json): all required.
TOKEN_FIELDS = {
    "authorization_code": frozenset({"grant_type", "client_id", "client_secret", "redirect_uri", "code"}),
    "refresh_token": frozenset({"grant_type", "client_id", "client_secret", "redirect_uri", "refresh_token"}),
}


def _errors(
    status: int, error_id: str, title: str, detail: str, pointer: str = "", **headers: str
) -> Response:
    error: dict[str, Any] = {"id": error_id, "title": title, "detail": detail}
    if pointer:
        error["source"] = {"pointer": pointer}
    return Response(status, {"errors": [error]}, dict(headers))


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Logged:
    at: float
    method: str
    path: str
    status: int


class FakeOutreach(FakeServer):
    # The OAuth endpoint is not in outreach-v2.json: `_token_violations` checks its documented form.
    unchecked_prefixes = ("/oauth/",)

    def __init__(
        self,
        *,
        client_id: str = "outreach-client",
        client_secret: str = "outreach-secret-value",  # noqa: S107 - a fake's test credential
        redirect_uri: str = "https://activation.example.com/oauth/outreach",
        access_ttl: float = 7200.0,
        refresh_ttl: float = 14 * 86400.0,
        max_refresh_tokens: int = 100,
        mint_interval: float = 60.0,
        rate_limit: int = 10_000,
        rate_window: float = 3600.0,
        latency: float = 0.0,
        clock: Callable[[], float] = time.time,
        spec: bool = True,
    ) -> None:
        super().__init__()
        # Checked against the vendor's document unless a test turns it off (spec=False).
        self.spec = vendor_spec("outreach", "outreach-v2.json") if spec else None
        self.client_id, self.client_secret, self.redirect_uri = client_id, client_secret, redirect_uri
        self.access_ttl, self.refresh_ttl = access_ttl, refresh_ttl
        self.max_refresh_tokens, self.mint_interval = max_refresh_tokens, mint_interval
        self.rate_limit, self.rate_window = rate_limit, rate_window
        self.latency = latency
        self.clock = clock
        self.prospects: dict[int, dict[str, Any]] = {}
        self.undefined_custom_fields: set[int] = set()
        self.access_tokens: dict[str, float] = {}  # token -> expires at
        self.refresh_tokens: dict[str, float] = {}  # active, oldest first -> expires at
        self.issued_refresh_tokens: list[str] = []
        self.grants: list[str] = []  # grant types of successful mints
        self.codes: dict[str, str] = {}  # one-time authorization code -> redirect_uri
        self.last_mint: float | None = None
        self.log: list[Logged] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self.created = 0  # prospects created through the API (the destination must never do it)
        self.on_patch: Callable[[Request], None] | None = None
        self._window_start: float | None = None
        self._window_count = 0
        self._throttled_until = 0.0
        self._ids = itertools.count(1)
        self._state = threading.RLock()
        self.route("POST", "/oauth/token", self._token)
        self.route("PATCH", r"/api/v2/prospects/(?P<id>[^/]+)", self._patch)
        self.route("GET", r"/api/v2/prospects/(?P<id>[^/]+)", self._get)
        self.route("DELETE", r"/api/v2/prospects/(?P<id>[^/]+)", self._delete)
        self.route("POST", "/api/v2/prospects", self._create)

    def start(self) -> str:
        url = super().start()
        if self._server is not None:
            # socketserver listens with a backlog of 5: a burst of parallel connections would see SYNs
            # dropped and retried after 1 s. A real API accepts them; so does this fake.
            self._server.socket.listen(128)
        return url

    # ------------------------------------------------------------------ set-up helpers
    def add_prospect(self, prospect_id: int, **attributes: Any) -> None:
        with self._state:
            self.prospects[prospect_id] = dict(attributes)

    def authorize(self, redirect_uri: str | None = None) -> str:
        """The browser login (outside the stack): a one-time authorization code for the token endpoint."""
        code = f"code-{secrets.token_urlsafe(12)}"
        with self._state:
            self.codes[code] = redirect_uri or self.redirect_uri
        return code

    def issue_refresh_token(self) -> str:
        """A refresh token as a finished login would have left it (no mint, no throttle)."""
        with self._state:
            return self._new_refresh_token(self.clock())

    def expire_tokens(self) -> None:
        """Every issued access token stops working now."""
        with self._state:
            self.access_tokens = dict.fromkeys(self.access_tokens, 0.0)

    def throttle_for(self, seconds: float) -> float:
        """Answer 429 to every API call for `seconds`; returns the reset time (epoch seconds)."""
        with self._state:
            self._throttled_until = math.ceil(self.clock() + seconds)
            return self._throttled_until

    @property
    def tokens(self) -> dict[str, float]:
        """Every access and refresh token issued (what the harness's secret scans look for)."""
        with self._state:
            return {**self.access_tokens, **dict.fromkeys(self.issued_refresh_tokens, 0.0)}

    @property
    def latest_refresh_token(self) -> str:
        return self.issued_refresh_tokens[-1]

    @property
    def token_requests(self) -> int:
        return len(self.requests_to(r"^/oauth/token$"))

    def patches(self, prospect_id: int | None = None) -> list[Request]:
        suffix = str(prospect_id) if prospect_id is not None else "[^/]+"
        return [r for r in self.requests_to(rf"^/api/v2/prospects/{suffix}$") if r.method == "PATCH"]

    def statuses(self) -> list[int]:
        with self._state:
            return [entry.status for entry in self.log]

    # ------------------------------------------------------------------ the layer's fault hooks
    def throttle_response(self) -> Response:
        """An injected throttle: a short one (the hourly limit itself is `rate_limit`/`throttle_for`)."""
        with self._state:
            now = self.clock()
            self._throttled_until = max(self._throttled_until, math.ceil(now + 1))
        return self._rate_limited(now)

    def server_error_response(self) -> Response:
        retry_at = _iso(self.clock() + 1)
        return _errors(
            503, "scheduledServerMaintenance", "Scheduled Server Maintenance",
            "The API is down for scheduled maintenance.", **{"Retry-After": retry_at},
        )  # fmt: skip

    def duplicate_entities(self) -> list[str]:
        return [f"prospects created: {self.created}"] if self.created else []

    def spec_refusal(self, request: Request, violations: list[Violation]) -> Response:
        """A request outreach-v2.json (or the token endpoint's documented form) refuses, answered with
        Outreach's JSON:API errors (apis.md 2.4); the token endpoint answers as an OAuth server does."""
        first = violations[0]
        detail = "; ".join(v.detail for v in violations)[:500]
        if request.path.startswith("/oauth/"):
            return Response(400, {"error": "invalid_request", "error_description": detail})
        if first.kind == "content_type":
            return Response(
                415,
                {"errors": [{"id": "unsupportedMediaType", "title": "Unsupported Media Type",
                             "details": f"Expected Content-Type header to be '{JSON_API}'."}]},
            )  # fmt: skip
        if first.kind in ("operation", "method") or first.location == "path":
            return _errors(404, "resourceNotFound", "Resource Not Found", detail)
        if first.kind == "body":
            return _validation(first.pointer or "/data", detail)
        return _errors(400, "badRequest", "Bad Request", detail)

    # ------------------------------------------------------------------ serving
    def dispatch(self, request: Request) -> Response:
        api = request.path.startswith("/api/")
        with self._state:
            now = self.clock()
            limited = api and not self._count_call(now)
            if api:
                self.in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if limited:
                with self._lock:
                    self.requests.append(request)
                response = self.check_spec(request) or self._rate_limited(now)
            else:
                response = super().dispatch(request)
        finally:
            with self._state:
                if api:
                    self.in_flight -= 1
        with self._state:
            response.headers.update(self._rate_headers(now))
            self.log.append(Logged(now, request.method, request.path, response.status))
        return response

    def _window(self, now: float) -> float:
        if self._window_start is None or now >= self._window_start + self.rate_window:
            self._window_start, self._window_count = now, 0
        return self._window_start + self.rate_window

    def _count_call(self, now: float) -> bool:
        """Count one API call in the user's window; False when it is over the limit (429)."""
        self._window(now)
        if now < self._throttled_until or self._window_count >= self.rate_limit:
            return False
        self._window_count += 1
        return True

    def _reset_at(self, now: float) -> float:
        return self._throttled_until if now < self._throttled_until else self._window(now)

    def _rate_headers(self, now: float) -> dict[str, str]:
        remaining = 0 if now < self._throttled_until else max(0, self.rate_limit - self._window_count)
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(math.ceil(self._reset_at(now))),
        }

    def _rate_limited(self, now: float) -> Response:
        with self._state:
            reset = math.ceil(self._reset_at(now))
        return _errors(
            429, "rateLimitExceeded", "Rate Limit Exceeded",
            f"You have exceeded your permitted rate limit of {self.rate_limit:,}; please try again at {_iso(reset)}.",
            **{"Retry-After": str(max(1, math.ceil(reset - now)))},
        )  # fmt: skip

    # ------------------------------------------------------------------ OAuth
    def _new_refresh_token(self, now: float) -> str:
        token = f"rt-{next(self._ids)}-{secrets.token_urlsafe(16)}"
        self.refresh_tokens = {t: e for t, e in self.refresh_tokens.items() if e > now}
        self.refresh_tokens[token] = now + self.refresh_ttl
        while len(self.refresh_tokens) > self.max_refresh_tokens:  # the oldest active one is revoked
            del self.refresh_tokens[next(iter(self.refresh_tokens))]
        self.issued_refresh_tokens.append(token)
        return token

    def _token_violations(self, request: Request, form: dict[str, str]) -> list[Violation]:
        def bad(kind: str, detail: str) -> Violation:
            return Violation("outreach", "POST /oauth/token", kind, detail)

        if request.header("content-type").split(";")[0].strip() != FORM:
            return [bad("content_type", f"the token request must be {FORM}")]
        if request.query:
            return [bad("parameter", "the token request takes its fields in the form body, not the query")]
        fields = TOKEN_FIELDS.get(form.get("grant_type", ""))
        if fields is None:
            return [bad("parameter", "grant_type must be authorization_code or refresh_token")]
        problems = [bad("parameter", f"missing form field '{f}'") for f in sorted(fields - set(form))]
        return problems + [bad("parameter", f"unknown form field '{f}'") for f in sorted(set(form) - fields)]

    def _token(self, request: Request, _: re.Match[str]) -> Response:  # noqa: PLR0911 - one per documented error
        form = request.form()
        refused = self.refuse_violations(request, self._token_violations(request, form))
        if refused is not None:
            return refused
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return Response(
                401, {"error": "invalid_client", "error_description": "Client authentication failed"}
            )
        grant = form.get("grant_type")
        with self._state:
            now = self.clock()
            if grant == "authorization_code":
                if self.codes.get(form.get("code", "")) != form.get("redirect_uri"):
                    return Response(400, {"error": "invalid_grant", "error_description": "Invalid code"})
            elif grant == "refresh_token":
                if self.refresh_tokens.get(form.get("refresh_token", ""), 0.0) <= now:
                    return Response(
                        400, {"error": "invalid_grant", "error_description": "Invalid refresh token"}
                    )
            else:
                return Response(400, {"error": "unsupported_grant_type"})
            if self.last_mint is not None and now - self.last_mint < self.mint_interval:
                wait = math.ceil(self.last_mint + self.mint_interval - now)
                return _errors(
                    429, "rateLimitExceeded", "Rate Limit Exceeded",
                    "Only one access token may be requested per minute.", **{"Retry-After": str(wait)},
                )  # fmt: skip
            if grant == "authorization_code":
                del self.codes[form["code"]]
            access = f"at-{secrets.token_urlsafe(24)}"
            self.access_tokens[access] = now + self.access_ttl
            refresh = self._new_refresh_token(now)
            self.last_mint = now
            self.grants.append(str(grant))
        return Response(
            200,
            {
                "access_token": access, "token_type": "bearer", "expires_in": int(self.access_ttl),
                "refresh_token": refresh, "scope": "prospects.read prospects.write", "created_at": int(now),
            },
        )  # fmt: skip

    def _authorized(self, request: Request) -> bool:
        token = request.header("authorization").removeprefix("Bearer ")
        with self._state:
            return self.access_tokens.get(token, 0.0) > self.clock()

    # ------------------------------------------------------------------ prospects
    def _get(self, request: Request, match: re.Match[str]) -> Response:
        if not self._authorized(request):
            return _errors(401, "unauthorized", "Unauthorized", "Invalid or expired access token.")
        prospect = self.prospects.get(int(match["id"])) if match["id"].isdigit() else None
        if prospect is None:
            return _not_found(match["id"])
        return Response(200, {"data": {"type": "prospect", "id": int(match["id"]), "attributes": prospect}})

    def _delete(self, request: Request, match: re.Match[str]) -> Response:
        """Delete an Existing Prospect by ID: 204, or 404 for an unknown id (outreach-v2.json)."""
        if not self._authorized(request):
            return _errors(401, "unauthorized", "Unauthorized", "Invalid or expired access token.")
        with self._state:
            prospect = self.prospects.pop(int(match["id"]), None) if match["id"].isdigit() else None
        if prospect is None:
            return _not_found(match["id"])
        return Response(204)

    def _create(self, request: Request, _: re.Match[str]) -> Response:
        """Present so that a destination creating prospects would be caught doing it."""
        with self._state:
            self.created += 1
            new_id = 900_000 + self.created
            self.prospects[new_id] = dict((request.json() or {}).get("data", {}).get("attributes", {}))
        return Response(201, {"data": {"type": "prospect", "id": new_id}})

    def _patch(self, request: Request, match: re.Match[str]) -> Response:  # noqa: PLR0911 - one per documented error
        if self.latency:
            time.sleep(self.latency)  # the vendor's round trip (benchmarks); callers run in parallel
        if self.on_patch is not None:
            self.on_patch(request)
        if not self._authorized(request):
            return _errors(401, "unauthorized", "Unauthorized", "Invalid or expired access token.")
        if request.header("content-type").split(";")[0].strip() != JSON_API:
            return Response(
                415,
                {"errors": [{"id": "unsupportedMediaType", "title": "Unsupported Media Type",
                             "details": f"Expected Content-Type header to be '{JSON_API}'."}]},
            )  # fmt: skip
        if not match["id"].isdigit():
            return _not_found(match["id"])
        prospect_id = int(match["id"])
        try:
            body = request.json()
        except ValueError:
            return _errors(400, "badRequest", "Bad Request", "The request body is not JSON.")
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or data.get("type") != "prospect":
            return _validation("/data/type", "data.type must be 'prospect'.")
        if data.get("id") != prospect_id or isinstance(data.get("id"), bool):
            return _validation("/data/id", "data.id must be the integer id of the URL.")
        attributes = data.get("attributes") or {}
        if not isinstance(attributes, dict):
            return _validation("/data/attributes", "attributes must be an object.")
        refused = self._refused_attribute(attributes)
        if refused is not None:
            return refused
        with self._state:
            prospect = self.prospects.get(prospect_id)
            if prospect is None:
                return _not_found(match["id"])
            prospect.update(attributes)
            prospect["updatedAt"] = _iso(self.clock())
            current = dict(prospect)
        return Response(200, {"data": {"type": "prospect", "id": prospect_id, "attributes": current}})

    def _refused_attribute(self, attributes: dict[str, Any]) -> Response | None:
        for name, value in attributes.items():
            pointer = f"/data/attributes/{name}"
            custom = CUSTOM.match(name)
            if custom is not None:
                number = int(custom[1])
                if not 1 <= number <= 150 or number in self.undefined_custom_fields:
                    return _validation(pointer, f"{name} is not a valid attribute for prospect.")
                if value is not None and (not isinstance(value, str) or len(value) > 32_000):
                    return _validation(pointer, f"{name} must be a string of at most 32000 characters.")
            elif name in READ_ONLY or not re.fullmatch(r"[a-z][A-Za-z0-9]*", name):
                return _validation(pointer, f"{name} is not a writable attribute for prospect.")
            elif name in ("firstName", "lastName") and isinstance(value, str) and len(value) > _NAME_LIMIT:
                return _validation(pointer, f"{name} is too long (maximum is 255 characters).")
        return None


def _not_found(prospect_id: str) -> Response:
    return _errors(
        404, "resourceNotFound", "Resource Not Found", f"Could not find 'prospect' with ID '{prospect_id}'."
    )


def _validation(pointer: str, detail: str) -> Response:
    return _errors(422, "validationError", "Validation Error", detail, pointer)


# The prospects the sample events (events/eventbridge/, events/outreach/) point at.
SAMPLE_PROSPECTS: dict[int, dict[str, Any]] = {
    1001: {"firstName": "Ada", "lastName": "L.", "emails": ["ada.lovelace@example.com"]},
    1002: {"firstName": "Grace", "lastName": "H.", "emails": ["grace.hopper@example.org"]},
    1003: {"firstName": "Alan", "lastName": "T.", "emails": ["alan.turing@example.co.uk"]},
    1004: {"firstName": "Ada", "lastName": "No-Contact", "emails": ["no.contact@example.com"]},
}


# The soak test's profiles (tests/integration/test_soak.py) carry outreachId 100000 + i.
SOAK_PROSPECTS = range(100_000, 110_000)


class Plug:
    """Plugs the fake into the local stack (see local/harness.py)."""

    def __init__(self) -> None:
        self.fake: FakeOutreach = FakeOutreach()
        for prospect_id, attributes in SAMPLE_PROSPECTS.items():
            self.fake.add_prospect(prospect_id, **attributes)
        for prospect_id in SOAK_PROSPECTS:
            self.fake.add_prospect(prospect_id)
        self._refresh_token: str | None = None

    def connection_secret(self) -> dict[str, Any]:
        # A refresh token as left by an earlier login: the secret works even if written again later.
        if self._refresh_token is None:
            self._refresh_token = self.fake.issue_refresh_token()
        fake = self.fake
        return {
            "baseUrl": fake.base_url,
            "clientId": fake.client_id,
            "clientSecret": fake.client_secret,
            "redirectUri": fake.redirect_uri,
            "refreshToken": self._refresh_token,
        }

    def install(self, harness: Any) -> None:
        """The documented one-time step (OUT-01) for each Outreach instance: exchange a login's code."""
        from outreach.authorize import exchange

        instances = [d for d in harness.config["destinations"] if d["type"] == "outreach"]
        if instances:
            # One login per Outreach user; the fake mints once a minute, so other instances of this
            # user keep the refresh token connection_secret() gave them.
            exchange(
                instances[0]["secret"],
                self.fake.authorize(),
                secrets=harness.stack.client("secretsmanager"),
                allow_loopback=True,
            )

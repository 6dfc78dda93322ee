"""A fake Bombora API after apis.md section 4 (the Account List API 1.1 and OAuth specs, [3P spec]).

- `POST /oauth/token`, JSON body `{client_id, client_secret}` -> `{access_token, token_type, expires_in}`;
- under `/account-list/v1`, all with `Authorization: Bearer` (401 otherwise):
  `GET|POST /account-list`, `GET|DELETE /account-list/{id}`, `POST /account-list/{id}/accounts`
  (upsert keyed by `id`, else `domain`; duplicate identifiers reject the whole request),
  `POST /account-list/{id}/delete-accounts` `{"ids": [...]}`, `DELETE /account-list/{id}/accounts`,
  `GET /account-list/{id}/accounts/domains`;
- errors `{"message": ...}`: 400 syntax (and duplicates), 401, 403 (not a Manual list), 404 (no such
  list), 409 (update pending; `set_pending`), 422 (semantic: a bad domain or attribute value), 429.

Test hooks: `add_list` seeds a list; `hold_creates` parks list creation until `release_creates` (to
prove two invocations create one list); `create_answers` applies the next creates but answers them with
an error status (a lost answer); `rejected_domains` makes Bombora's own validation refuse domains;
`set_pending` answers the next writes of a list 409; `reset` empties it all (one server, many tests).
"""

from __future__ import annotations

import re
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from local.fakes.base import FakeServer, Request, Response

API = "/account-list/v1"
_LIST_TYPES = ("Manual", "Derived", "Surge", "VisitorInsights")
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{1,62}$", re.IGNORECASE
)
_HOLD_TIMEOUT = 30.0  # a parked create never blocks a test for longer than this


def _error(status: int, message: str) -> Response:
    return Response(status, {"message": message})


@dataclass
class FakeList:
    id: str
    name: str
    type: str
    description: str
    created: str
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)  # identifier -> account

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "name": self.name,
            "description": self.description,
            "accountTotal": len(self.accounts),
            "pendingUpdate": False,
            "createdDate": self.created,
            "modifiedDate": self.created,
        }

    @property
    def domains(self) -> set[str]:
        return {str(a["domain"]) for a in self.accounts.values()}


class FakeBombora(FakeServer):
    def __init__(
        self,
        *,
        client_id: str = "bombora-client",
        client_secret: str = "bombora-secret-value",  # noqa: S107 - a fake's test credential
        token_ttl: float = 86400.0,
        write_status: int = 200,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.client_id, self.client_secret = client_id, client_secret
        self.token_ttl = token_ttl
        self.write_status = write_status  # 200, or 202 (accepted, applied asynchronously)
        self.clock = clock
        self.tokens: dict[str, float] = {}
        self.lists: dict[str, FakeList] = {}
        self.creations: Counter[str] = Counter()  # list name -> lists created with it through the API
        self.rejected_domains: set[str] = set()
        self.pending: dict[str, int] = {}  # list id -> writes still answered 409
        self.create_arrived = threading.Event()
        self.create_answers: list[int] = []  # statuses for the next creates, applied but answered so
        self._hold: threading.Event | None = None
        self._state = threading.Lock()
        self._sequence = 0
        self.route("POST", "/oauth/token", self._token)
        self.route("GET", f"{API}/account-list", self._list_lists)
        self.route("POST", f"{API}/account-list", self._create)
        self.route("GET", f"{API}/account-list/(?P<id>[^/]+)", self._get)
        self.route("DELETE", f"{API}/account-list/(?P<id>[^/]+)", self._delete)
        self.route("POST", f"{API}/account-list/(?P<id>[^/]+)/accounts", self._add_accounts)
        self.route("DELETE", f"{API}/account-list/(?P<id>[^/]+)/accounts", self._clear)
        self.route("POST", f"{API}/account-list/(?P<id>[^/]+)/delete-accounts", self._delete_accounts)
        self.route("GET", f"{API}/account-list/(?P<id>[^/]+)/accounts/domains", self._domains)

    # ------------------------------------------------------------------ test hooks
    def reset(self) -> None:
        """Forget every list, token, recorded request and injected fault (reuse one server across tests)."""
        with self._lock:
            self.requests.clear()
            self._faults.clear()
        with self._state:
            self.tokens.clear()
            self.lists.clear()
            self.creations.clear()
            self.pending.clear()
            self.rejected_domains = set()
            self.create_answers = []
        self._hold = None
        self.create_arrived.clear()

    @property
    def token_requests(self) -> int:
        return len(self.requests_to(r"^/oauth/token$"))

    def expire_tokens(self) -> None:
        """Every issued token stops working now (token expiry in the middle of a batch)."""
        with self._state:
            self.tokens = dict.fromkeys(self.tokens, 0.0)

    def add_list(
        self,
        name: str,
        domains: Iterable[str] = (),
        *,
        list_type: str = "Manual",
        description: str = "seeded",
    ) -> str:
        """A list that exists before the stack runs (made by hand in Bombora, or by the stack earlier)."""
        with self._state:
            created = self._stamp()
            found = FakeList(str(uuid.uuid4()), name, list_type, description, created)
            found.accounts = {d: {"domain": d} for d in domains}
            self.lists[found.id] = found
        return found.id

    def named(self, name: str) -> list[FakeList]:
        with self._state:
            return [lst for lst in self.lists.values() if lst.name == name]

    def domains_of(self, name: str) -> set[str]:
        """Domains of the one list called `name` (fails if there are several: that is the bug to catch)."""
        (found,) = self.named(name)
        return found.domains

    def set_pending(self, list_id: str, writes: int) -> None:
        """The next `writes` writes to the list answer 409: an asynchronous update job is queued."""
        with self._state:
            self.pending[list_id] = writes

    def hold_creates(self) -> None:
        self._hold = threading.Event()
        self.create_arrived.clear()

    def release_creates(self) -> None:
        if self._hold is not None:
            self._hold.set()

    def duplicate_entities(self) -> list[str]:
        with self._state:
            names = Counter(lst.name for lst in self.lists.values())
        return sorted(name for name, count in names.items() if count > 1)

    def throttle_response(self) -> Response:
        # The only published Bombora limit message; no rate-limit headers are documented.
        return _error(429, "Too many API calls to this endpoint in 1 minute time period. Try again later.")

    def server_error_response(self) -> Response:
        return _error(503, "Service unavailable")

    # ------------------------------------------------------------------ routes
    def _stamp(self) -> str:
        self._sequence += 1  # strictly increasing creation dates, whatever the clock
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.clock())) + f".{self._sequence:06d}"

    def _token(self, request: Request, _: re.Match[str]) -> Response:
        try:
            body = request.json()
        except ValueError:
            return _error(400, "The request body must be JSON")
        if not isinstance(body, dict) or not body.get("client_id") or not body.get("client_secret"):
            return _error(400, "client_id and client_secret are required")
        if body["client_id"] != self.client_id or body["client_secret"] != self.client_secret:
            return _error(401, "Invalid client credentials")
        token = secrets.token_urlsafe(32)
        with self._state:
            self.tokens[token] = self.clock() + self.token_ttl
        return Response(
            200, {"access_token": token, "token_type": "Bearer", "expires_in": int(self.token_ttl)}
        )

    def _authorised(self, request: Request) -> bool:
        token = request.header("authorization").removeprefix("Bearer ")
        with self._state:
            expires_at = self.tokens.get(token)
        return expires_at is not None and expires_at > self.clock()

    def _list_lists(self, request: Request, _: re.Match[str]) -> Response:
        if not self._authorised(request):
            return _error(401, "The access token is missing or invalid.")
        with self._state:
            return Response(200, [lst.summary() for lst in self.lists.values()])

    def _create(self, request: Request, _: re.Match[str]) -> Response:  # noqa: PLR0911 - one return per documented error
        if not self._authorised(request):
            return _error(401, "The access token is missing or invalid.")
        try:
            body = request.json()
        except ValueError:
            return _error(400, "The request body must be JSON")
        metadata = body.get("metadata") if isinstance(body, dict) else None
        if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
            return _error(400, "metadata.name is required")
        if body.get("type") not in _LIST_TYPES:
            return _error(422, f"type must be one of {list(_LIST_TYPES)}")
        if not metadata["name"].strip():
            return _error(422, "metadata.name must not be empty")
        hold = self._hold
        if hold is not None:
            self.create_arrived.set()
            hold.wait(_HOLD_TIMEOUT)
        with self._state:
            created = FakeList(
                str(uuid.uuid4()),
                metadata["name"],
                body["type"],
                str(metadata.get("description", "")),
                self._stamp(),
            )
            self.lists[created.id] = created
            self.creations[created.name] += 1
            answer = self.create_answers.pop(0) if self.create_answers else None
        if answer is not None:
            # Created, but the answer is lost (a gateway timeout after the backend applied it).
            return _error(answer, "Gateway timeout")
        return Response(self.write_status, {"id": created.id})

    def _get(self, request: Request, match: re.Match[str]) -> Response:
        if not self._authorised(request):
            return _error(401, "The access token is missing or invalid.")
        with self._state:
            found = self.lists.get(match["id"])
            if found is None:
                return _error(404, "Account list not found")
            return Response(
                200, {"type": found.type, "metadata": {"name": found.name, "description": found.description},
                      "specification": {}},
            )  # fmt: skip

    def _delete(self, request: Request, match: re.Match[str]) -> Response:
        if not self._authorised(request):
            return _error(401, "The access token is missing or invalid.")
        with self._state:
            if self.lists.pop(match["id"], None) is None:
                return _error(404, "Account list not found")
        return Response(200)

    def _writable(self, list_id: str) -> tuple[Response | None, FakeList | None]:
        """(an error response, or the Manual list a write may change); the state lock is held."""
        found = self.lists.get(list_id)
        if found is None:
            return _error(404, "Account list not found"), None
        if found.type != "Manual":
            return _error(403, "Accounts can only be changed in Manual account lists"), None
        if self.pending.get(list_id, 0) > 0:
            self.pending[list_id] -= 1
            return _error(409, "An update of this account list is pending"), None
        return None, found

    def _add_accounts(self, request: Request, match: re.Match[str]) -> Response:  # noqa: PLR0911 - one return per documented error
        if not self._authorised(request):
            return _error(401, "The access token is missing or invalid.")
        try:
            body = request.json()
        except ValueError:
            return _error(400, "The request body must be JSON")
        if not isinstance(body, list) or not all(
            isinstance(a, dict) and isinstance(a.get("domain"), str) for a in body
        ):
            return _error(400, "The body must be an array of accounts, each with a domain")
        identifiers = [str(a.get("id") or a["domain"]) for a in body]
        if len(identifiers) != len(set(identifiers)):
            return _error(400, "Duplicate account identifiers in the request")
        for account in body:
            if not _DOMAIN.match(account["domain"]) or account["domain"].lower() in self.rejected_domains:
                return _error(422, "Invalid domain in the request")
            attributes = account.get("attributes") or {}
            if not isinstance(attributes, dict) or any('"' in str(v) for v in attributes.values()):
                return _error(422, 'Attribute values are strings without "')
        with self._state:
            error, found = self._writable(match["id"])
            if error is not None or found is None:
                return error or _error(404, "Account list not found")
            for identifier, account in zip(identifiers, body, strict=True):
                found.accounts[identifier] = {**found.accounts.get(identifier, {}), **account}
        return Response(self.write_status)

    def _delete_accounts(self, request: Request, match: re.Match[str]) -> Response:
        if not self._authorised(request):
            return _error(401, "The access token is missing or invalid.")
        try:
            body = request.json()
        except ValueError:
            return _error(400, "The request body must be JSON")
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return _error(400, "ids must be an array of strings")
        with self._state:
            error, found = self._writable(match["id"])
            if error is not None or found is None:
                return error or _error(404, "Account list not found")
            for identifier in ids:  # state-based: an absent identifier is not an error [INFER]
                found.accounts.pop(identifier, None)
        return Response(200)

    def _clear(self, request: Request, match: re.Match[str]) -> Response:
        if not self._authorised(request):
            return _error(401, "The access token is missing or invalid.")
        with self._state:
            error, found = self._writable(match["id"])
            if error is not None or found is None:
                return error or _error(404, "Account list not found")
            found.accounts.clear()
        return Response(200)

    def _domains(self, request: Request, match: re.Match[str]) -> Response:
        if not self._authorised(request):
            return _error(401, "The access token is missing or invalid.")
        with self._state:
            found = self.lists.get(match["id"])
            if found is None:
                return _error(404, "Account list not found")
            return Response(200, sorted(found.domains))


class Plug:
    """Plugs the fake into the local stack (see local/harness.py)."""

    def __init__(self) -> None:
        self.fake: FakeBombora = FakeBombora()

    def connection_secret(self) -> dict[str, Any]:
        fake = self.fake
        return {"baseUrl": fake.base_url, "clientId": fake.client_id, "clientSecret": fake.client_secret}

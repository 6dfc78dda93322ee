"""A fake Marketo Engage REST API, shaped by the vendor's OpenAPI (Swagger 2.0) files and apis.md section 1.

Served (paths and parameter names as in `marketo-rest.json` / `marketo-identity.json`):
- `GET|POST /identity/oauth/token`: client credentials (query or form); the same token is handed back
  until it expires, with `expires_in` counting down; identity calls are not counted by the limits.
- `POST /rest/v1/leads.json` Sync Leads (`createOnly | updateOnly | createOrUpdate | createDuplicate`,
  `lookupField`, `partitionName`): per-record `created | updated | skipped` + reasons (1001..1011),
  in input order; several leads matching one key give 1007; a match in another partition gives 1010.
- `GET /rest/v1/leads.json`: lookup by a searchable field, across every partition, paged with
  `nextPageToken`; `filterValues` comma-separated (or repeated). leads.md's `POST ...?_method=GET` (form
  body) is served only with `spec=False`: the OpenAPI file has no such operation, so the check refuses it.
- `GET /rest/v1/leads/describe.json`, `describe2.json`, `partitions.json`.
- `POST|DELETE|GET /rest/v1/lists/{listId}/leads.json`, `GET .../leads/ismember.json`.
- Asset API (MKTO-DOCS `help/rest-api/static-lists.md`, `folders.md`; not in the stored OpenAPI, so
  checked here against the documented parameters): `GET /rest/asset/v1/folder/byName.json` (`name`,
  `type`, `workSpace`), `GET /rest/asset/v1/staticList/byName.json` (`name`, exact match across the
  instance), `POST /rest/asset/v1/staticLists.json` (form: `folder` as `{"id","type"}` JSON, `name`
  unique, `description`). Nothing found answers `success:true` with a warning and no result; a
  duplicate list name 709 [INFER].

Every REST call needs `Authorization: Bearer`: an unknown token gives 601, an expired one 602 (both
HTTP 200, `success:false`, not counted). Counted calls: more than `rate_limit` in any `rate_window`
seconds gives 606, more than `concurrency_limit` in flight 615, more than `daily_quota` per day (reset
at midnight CST) 607. Bodies over 1 MB give HTTP 413, URIs over 8 KB HTTP 414.

Every request is first checked against the two OpenAPI files (local/fakes/openapi.py: operation,
parameters, content type, JSON body); one they refuse is recorded in `violations` and answered as
Marketo answers a malformed call (`spec_refusal`): HTTP 200, `success:false`, 609 (not JSON, or no
body where one is required), 612 (content type), 605/610 (no such method / resource), 1003 (a
parameter or a body field); on the Identity endpoint an OAuth-style HTTP 400 [INFER]. The Asset API
paths are not in the files: the fake checks their documented parameters itself and reports through
the same `refuse_violations`. Behaviours the spec leaves open are marked [INFER] below.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlencode

from local.fakes.base import FakeServer, Request, Response, Route
from local.fakes.openapi import Violation, vendor_spec

_CST = timezone(timedelta(hours=-6), "CST")
STANDARD_FILTERS = (
    "cookies", "email", "facebookId", "id", "leadPartitionId", "linkedInId", "sfdcAccountId",
    "sfdcContactId", "sfdcLeadId", "sfdcLeadOwnerId", "sfdcOpptyId", "twitterId",
)  # fmt: skip
DEFAULT_LOOKUP_FIELDS = ("id", "email", "updatedAt", "createdAt", "firstName", "lastName")
SYSTEM_FIELDS = frozenset({"id", "createdAt", "updatedAt", "leadPartitionId"})

# name -> (dataType, updateable)
DEFAULT_FIELDS: dict[str, tuple[str, bool]] = {
    "id": ("integer", False),
    "email": ("email", True),
    "firstName": ("string", True),
    "lastName": ("string", True),
    "title": ("string", True),
    "company": ("string", True),
    "phone": ("phone", True),
    "address": ("text", True),
    "city": ("string", True),
    "state": ("string", True),
    "country": ("string", True),
    "postalCode": ("string", True),
    "numberOfEmployees": ("integer", True),
    "unsubscribed": ("boolean", True),
    "crmId": ("string", True),  # a custom field, searchable
    "leadPartitionId": ("integer", False),
    "createdAt": ("datetime", False),
    "updatedAt": ("datetime", False),
}
DEFAULT_SEARCHABLE = (("email",), ("id",), ("crmId",), ("sfdcLeadId",), ("cookies",), ("leadPartitionId",))


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _norm(value: Any) -> str:
    return str(value).strip().casefold()


def _reason(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


class FakeMarketo(FakeServer):
    # The Asset API is not in the stored OpenAPI files: `_asset_params` checks its documented parameters.
    unchecked_prefixes = ("/rest/asset/",)

    def __init__(
        self,
        *,
        munchkin_id: str = "123-ABC-456",
        client_id: str = "mkto-client",
        client_secret: str = "mkto-secret-value",  # noqa: S107 - a fake's test credential
        token_ttl: float = 3600.0,
        rate_limit: int = 100,
        rate_window: float = 20.0,
        concurrency_limit: int = 10,
        daily_quota: int = 50_000,
        latency: float = 0.0,
        max_body_bytes: int = 1_048_576,
        max_uri_bytes: int = 8192,
        clock: Callable[[], float] = time.time,
        spec: bool = True,
    ) -> None:
        super().__init__()
        self.munchkin_id, self.client_id, self.client_secret = munchkin_id, client_id, client_secret
        self.token_ttl = token_ttl
        self.rate_limit, self.rate_window = rate_limit, rate_window
        self.concurrency_limit, self.daily_quota = concurrency_limit, daily_quota
        self.latency = latency
        self.max_body_bytes, self.max_uri_bytes = max_body_bytes, max_uri_bytes
        self.clock = clock
        # Checked against the vendor's documents unless a test turns it off (spec=False).
        self.spec = vendor_spec("marketo", "marketo-rest.json", "marketo-identity.json") if spec else None
        self.before_handling: Callable[[Request], None] | None = None
        self._tunables = {
            "token_ttl": token_ttl, "rate_limit": rate_limit, "rate_window": rate_window,
            "concurrency_limit": concurrency_limit, "daily_quota": daily_quota, "latency": latency,
            "max_body_bytes": max_body_bytes, "max_uri_bytes": max_uri_bytes, "clock": clock,
        }  # fmt: skip
        self._state = threading.RLock()
        self._init_state()

        self.route("GET", "/identity/oauth/token", self._identity)
        self.route("POST", "/identity/oauth/token", self._identity)
        self.route("GET", r"/rest/v1/leads\.json", self._api(self._lookup_route))
        self.route("POST", r"/rest/v1/leads\.json", self._api(self._sync_or_lookup))
        self.route("POST", r"/rest/v1/leads/delete\.json", self._api(self._delete_leads))
        self.route("GET", r"/rest/v1/leads/describe\.json", self._api(self._describe))
        self.route("GET", r"/rest/v1/leads/describe2\.json", self._api(self._describe2))
        self.route("GET", r"/rest/v1/leads/partitions\.json", self._api(self._partitions))
        lists = r"/rest/v1/lists/(?P<list>[0-9]+)/leads\.json"
        self.route("POST", lists, self._api(self._list_add))
        self.route("DELETE", lists, self._api(self._list_remove))
        self.route("GET", lists, self._api(self._list_members))
        self.route("GET", r"/rest/v1/lists/(?P<list>[0-9]+)/leads/ismember\.json", self._api(self._is_member))
        self.route("GET", r"/rest/asset/v1/folder/byName\.json", self._api(self._folder_by_name))
        self.route("GET", r"/rest/asset/v1/staticList/byName\.json", self._api(self._static_list_by_name))
        self.route("POST", r"/rest/asset/v1/staticLists\.json", self._api(self._create_static_list))

    def start(self) -> str:
        url = super().start()
        if self._server is not None:
            # Many invocations connect at once: the standard library's listen backlog of 5 drops the
            # rest, and a dropped connection waits out a retransmit or the client's read timeout.
            self._server.socket.listen(128)
            # Headers and body leave in two writes; with Nagle on, the body waits for the client's
            # delayed ACK (~40 ms per response on Linux).
            self._server.RequestHandlerClass.disable_nagle_algorithm = True  # type: ignore[attr-defined]
        return url

    def _init_state(self) -> None:
        # Identity: one current token per custom service.
        self.token: str | None = None
        self.token_expires_at = 0.0
        self.issued_tokens: list[str] = []
        # Limits, observed.
        self.arrivals: list[float] = []  # counted calls, by arrival time (fake clock)
        self.in_flight = 0
        self.peak_in_flight = 0
        self.refusals: Counter[str] = Counter()  # 601/602/606/607/615/413/414 answers given
        # Data.
        self.fields: dict[str, tuple[str, bool]] = dict(DEFAULT_FIELDS)
        self.searchable: list[tuple[str, ...]] = list(DEFAULT_SEARCHABLE)
        self.partitions: dict[int, str] = {1: "Default"}
        self.leads: dict[int, dict[str, Any]] = {}
        self._index: dict[str, dict[str, set[int]]] = {}  # field -> normalised value -> lead ids
        self.lists: dict[int, set[int]] = {}
        self.list_names: dict[int, str] = {}
        self.list_folders: dict[int, int] = {}  # static list id -> folder id (Asset API)
        self.folders: dict[int, dict[str, Any]] = {}  # folder id -> {name, workspace}
        self.list_creations: Counter[str] = Counter()  # static lists created through the API, by name
        self._asset_ids = itertools.count(5001)
        self.creations: Counter[str] = Counter()  # leads created through the API, per lookup key
        self._ids = itertools.count(318_581)  # lead ids as in the docs' examples
        self._request_ids = itertools.count(1)

    def reset(self) -> None:
        """Back to an empty instance, keeping the socket (a server restart costs ~0.5 s per test)."""
        self.set_fault_profile(None)
        with self._lock:
            self.requests.clear()
            self._faults.clear()
            self.injected.clear()
        with self._state:
            self._init_state()
            self.violations.clear()
            self.before_handling = None
            for name, value in self._tunables.items():
                setattr(self, name, value)

    # ------------------------------------------------------------------ seeding (tests, demo)
    def add_partition(self, name: str) -> int:
        with self._state:
            partition_id = max(self.partitions) + 1
            self.partitions[partition_id] = name
            return partition_id

    def add_list(self, list_id: int, name: str = "", *, folder: int | None = None) -> None:
        with self._state:
            self.lists.setdefault(list_id, set())
            self.list_names[list_id] = name or f"List {list_id}"
            if folder is not None:
                self.list_folders[list_id] = folder

    def add_folder(self, name: str, workspace: str = "Default") -> int:
        """A marketing folder (Asset API) in a workspace; its id."""
        with self._state:
            folder_id = next(self._asset_ids)
            self.folders[folder_id] = {"name": name, "workspace": workspace}
            return folder_id

    def lists_named(self, name: str) -> list[int]:
        with self._state:
            return sorted(i for i, n in self.list_names.items() if n == name)

    def add_lead(self, *, partition: str = "Default", updated_at: float | None = None, **fields: Any) -> int:
        """A lead that already exists in Marketo (not counted as an API creation)."""
        with self._state:
            lead_id = next(self._ids)
            at = self.clock() if updated_at is None else updated_at
            self._store({
                **fields, "id": lead_id, "leadPartitionId": self._partition_id(partition),
                "createdAt": _iso(at), "updatedAt": _iso(at),
            })  # fmt: skip
            return lead_id

    def add_field(self, name: str, data_type: str = "string", *, searchable: bool = False) -> None:
        with self._state:
            self.fields[name] = (data_type, True)
            if searchable:
                self.searchable.append((name,))

    def expire_tokens(self) -> None:
        """The current token stops working now (expiry in the middle of a batch): 602 on its next use."""
        with self._state:
            self.token_expires_at = min(self.token_expires_at, self.clock())

    # ------------------------------------------------------------------ observations (tests)
    def leads_where(self, field: str, value: Any) -> list[dict[str, Any]]:
        with self._state:
            return [dict(lead) for lead in self._matching(field, [value])]

    def members(self, list_id: int) -> set[int]:
        with self._state:
            return set(self.lists.get(list_id, set()))

    def partition_of(self, lead_id: int) -> str:
        with self._state:
            return self.partitions[int(self.leads[lead_id]["leadPartitionId"])]

    def operation(self, request: Request) -> str:
        return _operation(request)  # one route serves Sync Leads and the lookup (_method=GET)

    def calls_to(self, operation: str) -> list[Request]:
        """Recorded REST requests of one operation: sync, lookup, list_add, list_remove, describe, ..."""
        return [r for r in list(self.requests) if _operation(r) == operation]

    def max_calls_in_any_window(self, seconds: float | None = None) -> int:
        """The most counted calls that arrived within any `seconds` (default: the rate window)."""
        window = self.rate_window if seconds is None else seconds
        with self._state:
            times = sorted(self.arrivals)
        best, start = 0, 0
        for end, at in enumerate(times):
            while at - times[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    def duplicate_entities(self) -> list[str]:
        with self._state:
            leads = [key for key, count in self.creations.items() if count > 1]
            lists = [f"list:{name}" for name, count in self.list_creations.items() if count > 1]
            return sorted(leads + lists)

    def throttle_response(self) -> Response:
        return self._error(
            "606", f"Max rate limit '{self.rate_limit}' exceeded with in '{int(self.rate_window)}' secs"
        )

    def server_error_response(self) -> Response:
        return self._error("611", "System error")

    def spec_refusal(self, request: Request, violations: list[Violation]) -> Response:
        """A request the OpenAPI files refuse, answered as Marketo does (apis.md 1.7): HTTP 200 with
        `success:false` and the response-level code; the Identity endpoint answers OAuth-style [INFER]."""
        first = violations[0]
        message = "; ".join(v.detail for v in violations)[:500]
        if request.path == "/identity/oauth/token":
            return Response(400, {"error": "invalid_request", "error_description": message})
        code = {
            "json": "609", "content_type": "612", "method": "605", "operation": "610",
        }.get(first.kind, "1003")  # fmt: skip
        return self._error(code, message)

    # ------------------------------------------------------------------ identity
    def _identity(self, request: Request, _: re.Match[str]) -> Response:
        params = {k: v[0] for k, v in request.query.items()}
        if request.body:
            params.update(request.form())
        if params.get("grant_type") != "client_credentials":
            return Response(400, {"error": "unsupported_grant_type", "error_description": "grant_type"})
        if params.get("client_id") != self.client_id or params.get("client_secret") != self.client_secret:
            # [INFER] the 401 body is undocumented; an OAuth-style error is the plausible shape.
            return Response(401, {"error": "invalid_client", "error_description": "Bad client credentials"})
        with self._state:
            now = self.clock()
            if self.token is None or self.token_expires_at <= now:
                self.token = secrets.token_hex(16) + ":ab"
                self.token_expires_at = now + self.token_ttl
                self.issued_tokens.append(self.token)
            remaining = int(max(0.0, self.token_expires_at - now))
            token = self.token
        return Response(
            200,
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": remaining,
                "scope": "api@example.com",
            },
        )

    # ------------------------------------------------------------------ the REST gate
    def _api(self, handler: Callable[[Request, re.Match[str]], Response]) -> Route:
        def serve(request: Request, match: re.Match[str]) -> Response:
            refused = self._admit(request)
            if refused is not None:
                return refused
            try:
                if self.latency:
                    time.sleep(self.latency)
                if self.before_handling is not None:  # tests: hold a call in flight, outside the state lock
                    self.before_handling(request)
                with self._state:
                    return handler(request, match)
            finally:
                with self._state:
                    self.in_flight -= 1

        return serve

    def _admit(self, request: Request) -> Response | None:  # noqa: PLR0911 - one return per documented refusal
        """HTTP limits, token, then the counted limits; None when the call may run (in flight)."""
        uri = len(request.path) + (1 + len(urlencode(request.query, doseq=True)) if request.query else 0)
        with self._state:
            if uri > self.max_uri_bytes:
                self.refusals["414"] += 1
                return Response(414, None)
            if len(request.body) > self.max_body_bytes:
                self.refusals["413"] += 1
                return Response(413, None)
            now = self.clock()
            token = request.header("authorization").removeprefix("Bearer ").strip()
            if not token or token not in self.issued_tokens:
                return self._refuse("601", "Access token invalid")
            if token != self.token or self.token_expires_at <= now:
                return self._refuse("602", "Access token expired")
            # Counted from here on (601/602 are not, per the error-code table).
            self.arrivals.append(now)
            window = sum(1 for at in self.arrivals if at > now - self.rate_window)
            if window > self.rate_limit:
                return self._refuse(
                    "606",
                    f"Max rate limit '{self.rate_limit}' exceeded with in '{int(self.rate_window)}' secs",
                )
            reset = _last_reset(now)
            if sum(1 for at in self.arrivals if at >= reset) > self.daily_quota:
                return self._refuse("607", "Daily quota reached")
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            if self.in_flight > self.concurrency_limit:
                self.in_flight -= 1
                return self._refuse("615", "Concurrent access limit reached")
        return None

    def _refuse(self, code: str, message: str) -> Response:
        self.refusals[code] += 1
        return self._error(code, message)

    def _error(self, code: str, message: str) -> Response:
        return Response(
            200, {"requestId": self._request_id(), "success": False, "errors": [_reason(code, message)]}
        )

    def _ok(self, result: list[Any], **extra: Any) -> Response:
        return Response(
            200,
            {
                "requestId": self._request_id(),
                "success": True,
                "result": result,
                "errors": [],
                "warnings": [],
                **extra,
            },
        )

    def _request_id(self) -> str:
        return f"{next(self._request_ids):x}#fake"

    # ------------------------------------------------------------------ leads
    def _sync_or_lookup(self, request: Request, match: re.Match[str]) -> Response:
        if request.query.get("_method") == ["GET"]:
            # Long lookups: POST with _method=GET, the query string form-encoded in the body.
            return self._lookup(request, parse_qs(request.body.decode()))
        try:
            body = request.json()
        except ValueError:
            return self._error("609", "Invalid JSON")
        if not isinstance(body, dict) or not isinstance(body.get("input"), list):
            return self._error("609", "Invalid JSON")
        records: list[Any] = body["input"]
        if len(records) > 300:
            return self._error("1003", "Invalid data: more than 300 records")  # [INFER] undocumented
        action = str(body.get("action") or "createOrUpdate")
        lookup = str(body.get("lookupField") or "email")
        partition = body.get("partitionName")
        results = [self._sync_one(r, action, lookup, partition) for r in records]
        return self._ok(results)

    def _sync_one(self, record: Any, action: str, lookup: str, partition: Any) -> dict[str, Any]:  # noqa: PLR0911 - one return per documented reason
        def skipped(code: str, message: str) -> dict[str, Any]:
            return {"status": "skipped", "reasons": [_reason(code, message)]}

        if not isinstance(record, dict):
            return skipped("1003", "Invalid data")
        problem = self._field_problem(record)
        if problem is not None:
            return skipped(*problem)
        if lookup not in self._searchable():
            return skipped("1011", f"Field '{lookup}' not supported")
        if "id" in record and action in ("createOnly", "createDuplicate"):
            return skipped("1003", "Invalid data")
        key = record.get(lookup)
        if key is None or key == "":
            return skipped("1002", f"Missing value for the required parameter '{lookup}'")
        creates = action in ("createOnly", "createOrUpdate", "createDuplicate")
        partition_name = str(partition) if partition else "Default"
        partition_id = next((i for i, n in self.partitions.items() if n == partition_name), None)
        if creates and partition_id is None:
            return skipped("1008", f"Access denied to partition '{partition_name}'")  # [INFER]
        matches = self._matching(lookup, [key])
        if action == "createDuplicate" or (creates and not matches):
            assert partition_id is not None
            return self._create(record, lookup, partition_id)
        if action == "createOnly":
            return skipped("1005", "Lead already exists")
        if not matches:
            return skipped("1004", "Lead not found")
        if len(matches) > 1:
            return skipped("1007", "Multiple lead match lookup criteria")
        lead = matches[0]
        if action == "createOrUpdate" and lead["leadPartitionId"] != partition_id:
            return skipped("1010", "Partition update not allowed")
        updates = {k: v for k, v in record.items() if k not in SYSTEM_FIELDS}
        self._store({**lead, **updates, "updatedAt": _iso(self.clock())})
        return {"id": lead["id"], "status": "updated"}

    def _create(self, record: dict[str, Any], lookup: str, partition_id: int) -> dict[str, Any]:
        lead_id = next(self._ids)
        now = _iso(self.clock())
        self._store({
            **{k: v for k, v in record.items() if k not in SYSTEM_FIELDS},
            "id": lead_id, "leadPartitionId": partition_id, "createdAt": now, "updatedAt": now,
        })  # fmt: skip
        self.creations[f"{lookup}={_norm(record.get(lookup, ''))}"] += 1
        return {"id": lead_id, "status": "created"}

    def _field_problem(self, record: dict[str, Any]) -> tuple[str, str] | None:
        for name, value in record.items():
            known = self.fields.get(name)
            if known is None:
                return "1006", f"Field '{name}' not found"
            data_type = known[0]
            if data_type == "integer" and not _is_int(value):
                return "1001", f"Invalid value '{str(value)[:40]}'. Required of type 'integer'"
            if (
                data_type == "boolean"
                and not isinstance(value, bool)
                and str(value).lower() not in ("true", "false")
            ):
                return "1001", f"Invalid value '{str(value)[:40]}'. Required of type 'boolean'"
            if isinstance(value, dict | list):
                return "1001", f"Invalid value for '{name}'. Required of type '{data_type}'"
            if data_type == "email" and not str(value).isascii():
                return "1003", "Invalid data"
        return None

    def _searchable(self) -> set[str]:
        return {group[0] for group in self.searchable if len(group) == 1}

    def _lookup_route(self, request: Request, _: re.Match[str]) -> Response:
        return self._lookup(request, dict(request.query))

    def _lookup(self, request: Request, params: dict[str, list[str]]) -> Response:
        filter_type = (params.get("filterType") or [""])[0]
        values = [v for raw in params.get("filterValues", []) for v in raw.split(",") if v != ""]
        fields = [f for raw in params.get("fields", []) for f in raw.split(",") if f] or list(
            DEFAULT_LOOKUP_FIELDS
        )
        batch = int((params.get("batchSize") or ["300"])[0])
        offset = _page_offset((params.get("nextPageToken") or [""])[0])
        if filter_type not in set(STANDARD_FILTERS) | self._searchable():
            return self._error("1003", f"Invalid filterType '{filter_type[:40]}'")
        if len(values) > 300 or batch > 300:
            return self._error("1003", "Too many values: at most 300")
        matches = self._matching(filter_type, values)
        if len(matches) > 1000:
            return self._error("1003", "Too many results match the filter")
        page = matches[offset : offset + batch]
        result = [{f: lead[f] for f in fields if f in lead} for lead in page]
        if offset + batch < len(matches):
            return self._ok(result, moreResult=True, nextPageToken=_page_token(offset + batch))
        return self._ok(result)

    def _describe(self, request: Request, _: re.Match[str]) -> Response:
        result = [
            {"id": i, "displayName": name, "dataType": data_type, "length": 255,
             "rest": {"name": name, "readOnly": not updateable}, "soap": {"name": name, "readOnly": not updateable}}
            for i, (name, (data_type, updateable)) in enumerate(self.fields.items(), start=1)
        ]  # fmt: skip
        return self._ok(result)

    def _describe2(self, request: Request, _: re.Match[str]) -> Response:
        fields = [
            {"name": name, "displayName": name, "dataType": data_type, "length": 255,
             "updateable": updateable, "crmManaged": False}
            for name, (data_type, updateable) in self.fields.items()
        ]  # fmt: skip
        return self._ok(
            [{"name": "API Lead", "searchableFields": [list(g) for g in self.searchable], "fields": fields}]
        )

    def _partitions(self, request: Request, _: re.Match[str]) -> Response:
        return self._ok(
            [{"id": i, "name": n, "description": f"{n} partition"} for i, n in self.partitions.items()]
        )

    # ------------------------------------------------------------------ Asset API: folders, static lists
    def _asset_params(self, request: Request, allowed: set[str], required: set[str]) -> Response | None:
        """The documented parameters only (the stored OpenAPI has no Asset API to check against)."""
        params = set(request.query) | (set(request.form()) if request.body else set())
        problems = [f"unknown parameter '{p}'" for p in sorted(params - allowed)]
        problems += [f"missing required parameter '{p}'" for p in sorted(required - params)]
        return self.refuse_violations(
            request, [Violation("marketo", request.path, "parameter", p) for p in problems]
        )

    def _nothing_found(self) -> Response:
        return Response(
            200,
            {"requestId": self._request_id(), "success": True, "errors": [],
             "warnings": ["No assets found for the given search criteria."]},
        )  # fmt: skip

    def _folder_json(self, folder_id: int) -> dict[str, Any]:
        folder = self.folders[folder_id]
        return {
            "id": folder_id, "name": folder["name"], "type": "Folder", "folderType": "Marketing Folder",
            "folderId": {"id": folder_id, "type": "Folder"}, "workspace": folder["workspace"],
            "isArchive": False, "isSystem": False,
        }  # fmt: skip

    def _folder_by_name(self, request: Request, _: re.Match[str]) -> Response:
        refused = self._asset_params(request, {"name", "type", "root", "workSpace"}, {"name"})
        if refused is not None:
            return refused
        name = request.query["name"][0]
        workspace: str | None = (request.query.get("workSpace") or [""])[0] or None
        found = [
            self._folder_json(i)
            for i, f in sorted(self.folders.items())
            if f["name"] == name and (workspace is None or f["workspace"] == workspace)
        ]
        return self._ok(found) if found else self._nothing_found()

    def _static_list_json(self, list_id: int) -> dict[str, Any]:
        folder = self.list_folders.get(list_id)
        return {
            "id": list_id, "name": self.list_names[list_id], "createdAt": "2026-11-28T10:00:00Z+0000",
            "folder": {"id": folder, "type": "Folder"} if folder is not None else None,
        }  # fmt: skip

    def _static_list_by_name(self, request: Request, _: re.Match[str]) -> Response:
        refused = self._asset_params(request, {"name"}, {"name"})
        if refused is not None:
            return refused
        name = request.query["name"][0]
        found = [self._static_list_json(i) for i, n in sorted(self.list_names.items()) if n == name]
        return self._ok(found[:1]) if found else self._nothing_found()

    def _create_static_list(self, request: Request, _: re.Match[str]) -> Response:
        if request.header("content-type").split(";")[0] != "application/x-www-form-urlencoded":
            violation = Violation(
                "marketo", "createStaticList", "content_type", "must be application/x-www-form-urlencoded"
            )
            return self.refuse_violations(request, [violation]) or self._error("612", "Invalid Content Type")
        refused = self._asset_params(request, {"folder", "name", "description"}, {"folder", "name"})
        if refused is not None:
            return refused
        form = request.form()
        try:
            folder = json.loads(form["folder"])
            folder_id = int(folder["id"])
        except (ValueError, KeyError, TypeError):
            return self._error("1003", "Invalid folder")
        if folder.get("type") not in ("Folder", "Program") or folder_id not in self.folders:
            return self._error("702", "Folder not found")  # [INFER]
        name = form["name"]
        if name in self.list_names.values():
            return self._error("709", f"Static list with name '{name[:60]}' already exists")  # [INFER]
        list_id = next(self._asset_ids)
        self.lists[list_id] = set()
        self.list_names[list_id] = name
        self.list_folders[list_id] = folder_id
        self.list_creations[name] += 1
        return self._ok([self._static_list_json(list_id)])

    # ------------------------------------------------------------------ static lists
    def _list_ids(self, request: Request) -> tuple[list[int] | None, Response | None]:
        has_body = bool(request.body)
        body: Any = None
        if has_body:
            try:
                body = request.json()
            except ValueError:
                return None, self._error("609", "Invalid JSON")
        raw = [v for value in request.query.get("id", []) for v in value.split(",") if v]
        if isinstance(body, dict):
            raw += [str(item.get("id")) for item in body.get("input", []) if isinstance(item, dict)]
        # [INFER] ids in the query and the body (the OpenAPI requires both on removal) name one set.
        raw = list(dict.fromkeys(raw))
        if not all(_is_int(v) for v in raw):
            return None, self._error("1003", "Invalid lead id")
        if len(raw) > 300:
            return None, self._error("1003", "Invalid data: more than 300 ids")  # [INFER]
        return [int(v) for v in raw], None

    def _list(self, match: re.Match[str]) -> set[int] | None:
        return self.lists.get(int(match["list"]))

    def _list_add(self, request: Request, match: re.Match[str]) -> Response:
        ids, refused = self._list_ids(request)
        if refused is not None or ids is None:
            return refused or self._error("1003", "Invalid data")
        members = self._list(match)
        if members is None:
            return self._error("1013", "Static list not found")
        result: list[dict[str, Any]] = []
        for lead_id in ids:
            if lead_id in self.leads:
                members.add(lead_id)  # [INFER] adding a member again answers "added"
                result.append({"id": lead_id, "status": "added"})
            else:
                result.append(
                    {"id": lead_id, "status": "skipped", "reasons": [_reason("1004", "Lead not found")]}
                )
        return self._ok(result)

    def _list_remove(self, request: Request, match: re.Match[str]) -> Response:
        ids, refused = self._list_ids(request)
        if refused is not None or ids is None:
            return refused or self._error("1003", "Invalid data")
        members = self._list(match)
        if members is None:
            return self._error("1013", "Static list not found")
        result: list[dict[str, Any]] = []
        for lead_id in ids:
            if lead_id not in self.leads:
                result.append(
                    {"id": lead_id, "status": "skipped", "reasons": [_reason("1004", "Lead not found")]}
                )
            elif lead_id in members:
                members.discard(lead_id)
                result.append({"id": lead_id, "status": "removed"})
            else:
                # [INFER] whether Marketo answers 1015 or "removed" for a non-member is undocumented.
                result.append(
                    {"id": lead_id, "status": "skipped", "reasons": [_reason("1015", "Lead not in list")]}
                )
        return self._ok(result)

    def _list_members(self, request: Request, match: re.Match[str]) -> Response:
        members = self._list(match)
        if members is None:
            return self._error("1013", "Static list not found")
        batch = int((request.query.get("batchSize") or ["300"])[0])
        offset = _page_offset((request.query.get("nextPageToken") or [""])[0])
        ordered = sorted(members)
        page = [
            {k: self.leads[i].get(k) for k in DEFAULT_LOOKUP_FIELDS} for i in ordered[offset : offset + batch]
        ]
        if offset + batch < len(ordered):
            return self._ok(page, moreResult=True, nextPageToken=_page_token(offset + batch))
        return self._ok(page)

    def _is_member(self, request: Request, match: re.Match[str]) -> Response:
        ids, refused = self._list_ids(request)
        if refused is not None or ids is None:
            return refused or self._error("1003", "Invalid data")
        members = self._list(match)
        if members is None:
            return self._error("1013", "Static list not found")
        return self._ok(
            [
                {"id": i, "status": "memberof" if i in members else "notmemberof"}
                if i in self.leads
                else {"id": i, "status": "skipped", "reasons": [_reason("1004", "Lead not found")]}
                for i in ids
            ]
        )

    def _delete_leads(self, request: Request, _: re.Match[str]) -> Response:
        """Delete Leads (`POST /rest/v1/leads/delete.json`, body `{"input": [{"id": ..}]}`, <= 300): per
        id `deleted`, or `skipped` 1004 for an unknown id (as list operations answer). The lead leaves
        every static list too."""
        try:
            body = request.json()
        except ValueError:
            return self._error("609", "Invalid JSON")
        items = body.get("input") if isinstance(body, dict) else None
        if not isinstance(items, list) or not all(
            isinstance(i, dict) and _is_int(i.get("id")) for i in items
        ):
            return self._error("609", "Invalid JSON")
        if len(items) > 300:
            return self._error("1003", "Invalid data: more than 300 records")  # [INFER] as Sync Leads
        result: list[dict[str, Any]] = []
        for lead_id in (int(i["id"]) for i in items):
            lead = self.leads.pop(lead_id, None)
            if lead is None:
                result.append(
                    {"id": lead_id, "status": "skipped", "reasons": [_reason("1004", "Lead not found")]}
                )
                continue
            for name, value in lead.items():
                self._index.get(name, {}).get(_norm(value), set()).discard(lead_id)
            for members in self.lists.values():
                members.discard(lead_id)
            result.append({"id": lead_id, "status": "deleted"})
        return self._ok(result)

    def _store(self, lead: dict[str, Any]) -> None:
        """Insert or replace a lead, keeping the per-field index in step (lookups stay O(1) at 10k leads)."""
        lead_id = int(lead["id"])
        for name, value in self.leads.get(lead_id, {}).items():
            self._index.get(name, {}).get(_norm(value), set()).discard(lead_id)
        self.leads[lead_id] = lead
        for name, value in lead.items():
            if isinstance(value, str | int) and not isinstance(value, bool):
                self._index.setdefault(name, {}).setdefault(_norm(value), set()).add(lead_id)

    def _matching(self, field: str, values: Iterable[Any]) -> list[dict[str, Any]]:
        """Leads whose `field` equals one of `values` (case-insensitive), in every partition, by id."""
        by_value = self._index.get(field, {})
        ids = set().union(*(by_value.get(_norm(v), set()) for v in values))
        return [self.leads[i] for i in sorted(ids)]

    def _partition_id(self, name: str) -> int:
        found = next((i for i, n in self.partitions.items() if n == name), None)
        return found if found is not None else self.add_partition(name)


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()) is not None


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _page_offset(token: str) -> int:
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(token.encode()).decode().split(":", 1)[1])
    except (ValueError, IndexError):
        return 0


def _last_reset(now: float) -> float:
    local = datetime.fromtimestamp(now, _CST)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def _operation(request: Request) -> str:
    path, method = request.path, request.method
    if path == "/identity/oauth/token":
        return "identity"
    if path == "/rest/v1/leads.json":
        return "lookup" if method == "GET" or request.query.get("_method") == ["GET"] else "sync"
    if path.startswith("/rest/asset/v1/"):
        return {"folder/byName.json": "folder_by_name", "staticList/byName.json": "list_by_name"}.get(
            path.removeprefix("/rest/asset/v1/"), "create_list"
        )
    if path.startswith("/rest/v1/lists/"):
        if path.endswith("ismember.json"):
            return "ismember"
        return {"POST": "list_add", "DELETE": "list_remove"}.get(method, "list_members")
    return path.rsplit("/", 1)[-1].removesuffix(".json")


# ---------------------------------------------------------------------- the local stack's plug
EXPO_LIST_ID = 1001


class Plug:
    """Plugs the fake into the local stack (see local/harness.py), seeded for the sample events:
    Alan Turing is an existing lead in the expo list (his exit removes him), Grace Hopper has two
    leads (only the most recently updated one is updated, MKT-08), the other profiles are new leads
    created in the "Expo" partition (MKT-07)."""

    def __init__(self) -> None:
        fake = FakeMarketo()
        fake.add_partition("Expo")
        fake.add_list(EXPO_LIST_ID, "Expo 2026 invitees")
        alan = fake.add_lead(email="alan.turing@example.co.uk", firstName="Alan", lastName="Turing")
        fake.lists[EXPO_LIST_ID].add(alan)
        earlier = fake.clock() - 86_400 * 30
        fake.add_lead(email="grace.hopper@example.org", firstName="Grace", updated_at=earlier)
        fake.add_lead(
            email="grace.hopper@example.org", firstName="Grace", lastName="Hopper", updated_at=earlier + 3600
        )
        self.fake = fake

    def connection_secret(self) -> dict[str, Any]:
        fake = self.fake
        return {"baseUrl": fake.base_url, "clientId": fake.client_id, "clientSecret": fake.client_secret}

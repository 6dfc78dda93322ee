"""A fake Salesforce Marketing Cloud: the token endpoint and the data extension rowset API
(apis.md section 3), with data extensions of any size, paging over a server-side snapshot, faults.

- `POST /v2/token` (JSON client credentials, optional `account_id`) -> `{access_token, expires_in,
  rest_instance_url, soap_instance_url, ...}`; 401 for unknown credentials. Tokens expire after
  `token_ttl` seconds of the fake's clock, or at once with `expire_tokens()`.
- `GET /data/v1/customobjectdata/key/{key}/rowset?$page&$pageSize&$filter&$orderBy&$fields`: the matching rows
  are snapshotted under a `requestToken`; the response carries `count` (total matches), `page`,
  `pageSize` (at most 2500 **[INFER]**), `links.self` and, while more pages exist, `links.next`
  (`/v1/customobjectdata/token/{requestToken}/rowset?$page=N&$pageSize=M`, the captured form, without
  the route's `/data` prefix **[INFER]**). Every value is a string; names are lower-cased.
- Errors use `{"message", "errorcode", "documentation"}`: 401/0 bad token, 403/20002 for keys in
  `forbidden`, 404/10000 for unknown keys, 400/10000 for system data views (`_...`); plus
  `fail_next(...)` for 429/50100 with Retry-After or 5xx.
- `on_page(key, page, callback)` runs a callback after a page is served (a row modified mid-run).
- `POST /Service.asmx`: SOAP `Retrieve` of `DataExtension` and `DataExtensionField` (discovery),
  `soap_page_size` objects an answer with `MoreDataAvailable` / `ContinueRequest`; a fault (HTTP 500)
  for a bad token.

The fake's account time zone is the fixed UTC-6 SFMC uses.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape as xml_escape

from local.fakes.base import FakeServer, Request, Response

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SOURCES = ROOT / "shared" / "config" / "sources"
SECRET_NAME = "activation-local/sfmc/main"
ACCOUNT_ZONE = timezone(timedelta(hours=-6))
MAX_PAGE_SIZE = 2500
SNAPSHOT_TTL = 20 * 60.0
_FILTER = re.compile(r"^\s*(\w+)\s+(eq|neq|gt|gte|lt|lte)\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)
_SFMC_FORMAT = "%m/%d/%Y %I:%M:%S %p"


def sfmc_date(moment: datetime) -> str:
    """A datetime as SFMC prints it: US locale, account time zone (`6/23/2024 12:00:00 AM`)."""
    local = moment.astimezone(ACCOUNT_ZONE)
    return f"{local.month}/{local.day}/{local.year} {local.strftime('%I:%M:%S %p').lstrip('0')}"


def _parse_date(text: str) -> datetime | None:
    text = text.strip()
    for fmt in (_SFMC_FORMAT, "%m/%d/%Y"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=ACCOUNT_ZONE)
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=ACCOUNT_ZONE)


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status,
        {"message": message, "errorcode": code, "documentation": "https://developer.salesforce.com/docs"},
        headers or {},
    )


def throttle_response(retry_after: int = 5) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The documented 429 (status, body, headers), for `fail_next`."""
    body = {
        "message": "Rate limit exceeded",
        "errorcode": 50100,
        "retryAfter": retry_after,
        "documentation": "",
    }
    return 429, body, {"Retry-After": str(retry_after)}


@dataclass
class DataExtension:
    """Rows as SFMC holds them: field name -> string value (a row dict is replaced, never mutated)."""

    key: str
    primary_key: tuple[str, ...]
    fields: dict[str, str]  # name -> SFMC FieldType
    rows: list[dict[str, str]] = field(default_factory=list)
    object_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    name: str = ""  # the display name (SOAP `Name`); defaults to the key
    required: tuple[str, ...] = ()  # fields other than the primary key that are IsRequired

    def upsert(self, row: dict[str, str]) -> None:
        key = tuple(row[k] for k in self.primary_key)
        for index, existing in enumerate(self.rows):
            if tuple(existing[k] for k in self.primary_key) == key:
                self.rows[index] = {**existing, **row}
                return
        self.rows.append(dict(row))


@dataclass
class _Snapshot:
    key: str
    rows: list[dict[str, str]]
    de: DataExtension
    expires_at: float


class FakeSfmc(FakeServer):
    def __init__(
        self,
        *,
        client_id: str = "sfmc-client",
        client_secret: str = "sfmc-secret-value",  # noqa: S107 - a fake's test credential
        account_id: str = "510000123",
        token_ttl: float = 1200.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.client_id, self.client_secret, self.account_id = client_id, client_secret, account_id
        self.token_ttl = token_ttl
        self.clock = clock
        self.tokens: dict[str, float] = {}
        self.data_extensions: dict[str, DataExtension] = {}
        self.forbidden: set[str] = set()
        # What the token endpoint returns as `rest_instance_url` (default: this fake); a test may point
        # it elsewhere, e.g. at another tenant's host.
        self.rest_instance_url: str | None = None
        self.snapshots: dict[str, _Snapshot] = {}
        self._hooks: dict[tuple[str, int], Callable[[FakeSfmc], None]] = {}
        self._state = threading.RLock()
        self.route("POST", "/v2/token", self._token)
        self.route("GET", r"/data/v1/customobjectdata/key/(?P<key>[^/]+)/rowset", self._rowset_by_key)
        self.route("GET", r"/data/v1/customobjectdata/token/(?P<token>[^/]+)/rowset", self._rowset_by_token)
        self.route("POST", r"/Service\.asmx", self._soap)
        self.soap_page_size = 2500  # objects per Retrieve answer (RetrieveOptions.BatchSize in TAP-ET)
        self._continuations: dict[str, list[tuple[str, dict[str, Any]]]] = {}

    # ------------------------------------------------------------------ set-up and assertions
    def add(self, de: DataExtension) -> DataExtension:
        with self._state:
            self.data_extensions[de.key.lower()] = de
        return de

    def de(self, key: str) -> DataExtension:
        return self.data_extensions[key.lower()]

    def upsert(self, key: str, row: dict[str, str]) -> None:
        with self._state:
            self.de(key).upsert(row)

    def delete(self, key: str, predicate: Callable[[dict[str, str]], bool]) -> int:
        """Delete the rows of data extension `key` for which `predicate` holds; returns how many."""
        with self._state:
            de = self.de(key)
            kept = [row for row in de.rows if not predicate(row)]
            deleted, de.rows = len(de.rows) - len(kept), kept
        return deleted

    def on_page(self, key: str, page: int, callback: Callable[[FakeSfmc], None]) -> None:
        """Run `callback(fake)` right after page `page` of `key` is served (once)."""
        self._hooks[(key.lower(), page)] = callback

    def expire_tokens(self) -> None:
        with self._state:
            self.tokens = dict.fromkeys(self.tokens, 0.0)

    @property
    def token_requests(self) -> int:
        return len(self.requests_to(r"^/v2/token$"))

    def rowset_requests(self, key: str | None = None) -> list[Request]:
        requests = self.requests_to(r"/rowset$")
        if key is None:
            return requests
        tokens = {t for t, snap in self.snapshots.items() if snap.key == key.lower()}
        return [r for r in requests if f"/key/{key}/" in r.path or r.path.split("/")[-2] in tokens]

    # ------------------------------------------------------------------ routes
    def _token(self, request: Request, _: re.Match[str]) -> Response:
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("grant_type") != "client_credentials":
            return Response(400, {"error": "unsupported_grant_type", "error_description": "grant_type"})
        if body.get("client_id") != self.client_id or body.get("client_secret") != self.client_secret:
            return Response(
                401, {"error": "invalid_client", "error_description": "Invalid client credentials"}
            )
        if body.get("account_id") not in (None, self.account_id):
            return Response(401, {"error": "invalid_grant", "error_description": "Unknown account_id"})
        token = secrets.token_urlsafe(32)
        with self._state:
            self.tokens[token] = self.clock() + self.token_ttl
        return Response(
            200,
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": int(self.token_ttl),
                "scope": "data_extensions_read",
                "soap_instance_url": self.base_url + "/",
                "rest_instance_url": self.rest_instance_url or self.base_url + "/",
            },
        )

    def _authorised(self, request: Request) -> bool:
        token = request.header("authorization").removeprefix("Bearer ")
        with self._state:
            expires_at = self.tokens.get(token)
        return expires_at is not None and expires_at > self.clock()

    def _rowset_by_key(self, request: Request, match: re.Match[str]) -> Response:
        if not self._authorised(request):
            return _error(401, 0, "Not Authorized")
        key = match["key"].lower()
        if key.startswith("_"):
            return _error(400, 10000, "System data views are not available through this resource")
        with self._state:
            de = self.data_extensions.get(key)
            if key in {k.lower() for k in self.forbidden}:
                return _error(403, 20002, "Insufficient privileges: Data Extensions Read")
            if de is None:
                return _error(404, 10000, "Data extension not found")
            try:
                rows = self._select(de, _first(request, "$filter"), _first(request, "$orderBy"))
            except ValueError as exc:
                return _error(400, 10003, f"Invalid query: {exc}")
            token = str(uuid.uuid4())
            self.snapshots[token] = _Snapshot(key, rows, de, self.clock() + SNAPSHOT_TTL)
        return self._serve(token, request)

    def _rowset_by_token(self, request: Request, match: re.Match[str]) -> Response:
        if not self._authorised(request):
            return _error(401, 0, "Not Authorized")
        with self._state:
            snapshot = self.snapshots.get(match["token"])
        if snapshot is None or snapshot.expires_at <= self.clock():
            return _error(400, 10000, "Request token is invalid or expired")
        return self._serve(match["token"], request)

    def _serve(self, token: str, request: Request) -> Response:
        snapshot = self.snapshots[token]
        page = max(1, int(_first(request, "$page") or 1))
        size = min(
            MAX_PAGE_SIZE, max(1, int(_first(request, "$pageSize") or _first(request, "$pagesize") or 2500))
        )
        start = (page - 1) * size
        chunk = snapshot.rows[start : start + size]
        pk = {k.lower() for k in snapshot.de.primary_key}
        wanted = {f.strip().lower() for f in (_first(request, "$fields") or "").split(",") if f.strip()}
        links = {"self": f"/v1/customobjectdata/token/{token}/rowset?$page={page}"}
        if start + size < len(snapshot.rows):
            links["next"] = f"/v1/customobjectdata/token/{token}/rowset?$page={page + 1}&$pageSize={size}"
        body = {
            "links": links,
            "requestToken": token,
            "tokenExpireDateUtc": datetime.fromtimestamp(snapshot.expires_at, UTC).strftime(
                "%Y-%m-%dT%H:%M:%S.%f"
            )[:-3],
            "customObjectId": snapshot.de.object_id,
            "customObjectKey": snapshot.de.key,
            "pageSize": size,
            "page": page,
            "count": len(snapshot.rows),
            "top": 0,
            "items": [
                {
                    "keys": {k.lower(): v for k, v in row.items() if k.lower() in pk},
                    "values": {
                        k.lower(): v
                        for k, v in row.items()
                        if k.lower() not in pk and (not wanted or k.lower() in wanted)
                    },
                }
                for row in chunk
            ],
        }
        hook = self._hooks.pop((snapshot.key, page), None)
        if hook is not None:
            hook(self)
        return Response(200, body)

    def _soap(self, request: Request, _: re.Match[str]) -> Response:
        """SOAP `Retrieve` of `DataExtension` and `DataExtensionField` (apis.md 3.2, option B), paged
        with `MoreDataAvailable` / `ContinueRequest`; the token in the `fueloauth` header."""
        try:
            root = ElementTree.fromstring(request.body)  # noqa: S314 - the project's own requests
        except ElementTree.ParseError:
            return _soap_fault("Client", "Malformed request")
        token = next((e.text or "" for e in root.iter() if e.tag.endswith("fueloauth")), "")
        with self._state:
            expires_at = self.tokens.get(token)
        if expires_at is None or expires_at <= self.clock():
            return _soap_fault("Client", "Login Failed")
        continue_id = next((e.text or "" for e in root.iter() if e.tag.endswith("ContinueRequest")), "")
        if continue_id:
            with self._state:
                results = self._continuations.pop(continue_id, None)
            if results is None:
                return _soap_fault("Client", "Invalid ContinueRequest")
        else:
            object_type = next((e.text or "" for e in root.iter() if e.tag.endswith("ObjectType")), "")
            results = self._objects(object_type)
            if results is None:
                return _soap_fault("Client", f"Unsupported ObjectType {object_type[:40]}")
        page, rest = results[: self.soap_page_size], results[self.soap_page_size :]
        request_id = str(uuid.uuid4())
        if rest:
            with self._state:
                self._continuations[request_id] = rest
        return Response(200, _retrieve_response("MoreDataAvailable" if rest else "OK", request_id, page),
                        {"Content-Type": "text/xml; charset=utf-8"})  # fmt: skip

    def _objects(self, object_type: str) -> list[tuple[str, dict[str, Any]]] | None:
        with self._state:
            extensions = sorted(self.data_extensions.values(), key=lambda d: d.key.lower())
        if object_type == "DataExtension":
            return [
                ("DataExtension", {"CustomerKey": de.key, "Name": de.name or de.key, "CategoryID": "1001"})
                for de in extensions
            ]
        if object_type == "DataExtensionField":
            return [
                (
                    "DataExtensionField",
                    {
                        "Name": name,
                        "FieldType": kind,
                        "IsPrimaryKey": str(name in de.primary_key).lower(),
                        "IsRequired": str(name in de.primary_key or name in de.required).lower(),
                        "DataExtension": {"CustomerKey": de.key},
                    },
                )
                for de in extensions
                for name, kind in de.fields.items()
            ]
        return None

    def _select(
        self, de: DataExtension, filter_expr: str | None, order_by: str | None
    ) -> list[dict[str, str]]:
        rows = list(de.rows)
        types = {name.lower(): kind for name, kind in de.fields.items()}
        if filter_expr:
            match = _FILTER.match(filter_expr)
            if match is None:
                raise ValueError("unsupported $filter")
            column, op, literal = match[1].lower(), match[2].lower(), match[3].replace("''", "'")
            is_date = types.get(column) == "Date"
            wanted = _parse_date(literal) if is_date else literal
            if is_date and wanted is None:
                raise ValueError("not a date")
            rows = [r for r in rows if _compare(_value(r, column), wanted, op, is_date)]
        if order_by:
            for part in reversed([p.strip() for p in order_by.split(",") if p.strip()]):
                name, _, direction = part.partition(" ")
                column = name.lower()
                is_date = types.get(column) == "Date"

                def sort_key(row: dict[str, str], column: str = column, is_date: bool = is_date) -> Any:
                    value = _value(row, column)
                    if is_date:
                        parsed = _parse_date(value) if value else None
                        return (parsed is None, parsed or datetime.min.replace(tzinfo=UTC))
                    return (value == "", value)

                rows.sort(key=sort_key, reverse=direction.strip().lower() == "desc")
        return rows


_SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
_PARTNER_NS = "http://exacttarget.com/wsdl/partnerAPI"
_XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"


def _xml_fields(values: dict[str, Any]) -> str:
    return "".join(
        f"<{k}>{_xml_fields(v) if isinstance(v, dict) else xml_escape(str(v))}</{k}>"
        for k, v in values.items()
    )


def _retrieve_response(status: str, request_id: str, results: list[tuple[str, dict[str, Any]]]) -> bytes:
    items = "".join(f'<Results xsi:type="{kind}">{_xml_fields(values)}</Results>' for kind, values in results)
    return (
        f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{_SOAP_NS}" xmlns:xsi="{_XSI_NS}">'
        f'<soap:Body><RetrieveResponseMsg xmlns="{_PARTNER_NS}"><OverallStatus>{status}</OverallStatus>'
        f"<RequestID>{request_id}</RequestID>{items}</RetrieveResponseMsg></soap:Body></soap:Envelope>"
    ).encode()


def _soap_fault(code: str, message: str) -> Response:
    body = (
        f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{_SOAP_NS}"><soap:Body><soap:Fault>'
        f"<faultcode>soap:{code}</faultcode><faultstring>{xml_escape(message)}</faultstring>"
        "</soap:Fault></soap:Body></soap:Envelope>"
    ).encode()
    return Response(500, body, {"Content-Type": "text/xml; charset=utf-8"})


def _first(request: Request, name: str) -> str | None:
    for key, values in request.query.items():
        if key.lower() == name.lower() and values:
            return values[0]
    return None


def _value(row: dict[str, str], column: str) -> str:
    for key, value in row.items():
        if key.lower() == column:
            return value
    return ""


def _compare(value: str, wanted: Any, op: str, is_date: bool) -> bool:
    if is_date:
        parsed = _parse_date(value) if value else None
        if parsed is None:
            return False  # null dates match no comparison, as in SQL
        left: Any = parsed
    else:
        left = value
    return bool(
        {
            "eq": left == wanted,
            "neq": left != wanted,
            "gt": left > wanted,
            "gte": left >= wanted,
            "lt": left < wanted,
            "lte": left <= wanted,
        }[op]
    )


# ---------------------------------------------------------------------- sample data (SFMC-04)

_FIRST = ("Ada", "Grace", "Alan", "Katherine", "Edsger", "Barbara", "Donald", "Frances", "John", "Margaret")
_LAST = (
    "Lovelace",
    "Hopper",
    "Turing",
    "Johnson",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Backus",
    "Hamilton",
)
_STATES = ("MA", "VA", "NY", "CA", "TX", "WA", "IL", "CO")
_STAGES = ("new", "repeat_buyer", "loyal", "inactive")
BASE_TIME = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)


def contact_key(n: int) -> str:
    return f"SK-{n:06d}"


def contacts(count: int, *, start: int = 1, base: datetime = BASE_TIME) -> DataExtension:
    """Contact data extension: lifecycle stage and purchase behaviour (SFMC-04, first use case).

    Every 7th contact shares the previous one's ModifiedDate (watermark ties); contact 5 has no email
    (a row that cannot become a profile), contact 6 opted out of email (consent 'n').
    """
    de = DataExtension(
        key="Contacts",
        primary_key=("SubscriberKey",),
        fields={
            "SubscriberKey": "Text", "EmailAddress": "EmailAddress", "FirstName": "Text", "LastName": "Text",
            "Company": "Text", "Country": "Text", "State": "Text", "PostalCode": "Text",
            "LifecycleStage": "Text", "PurchaseCount": "Number", "LifetimeValue": "Decimal",
            "LastPurchaseDate": "Date", "EmailOptIn": "Boolean", "ModifiedDate": "Date",
        },
    )  # fmt: skip
    de.rows = [contact_row(n, base) for n in range(start, start + count)]
    return de


def contact_row(n: int, base: datetime = BASE_TIME, *, modified: datetime | None = None) -> dict[str, str]:
    first, last = _FIRST[n % len(_FIRST)], _LAST[(n // len(_FIRST)) % len(_LAST)]
    stamp = modified or base + timedelta(minutes=n - (1 if n % 7 == 0 else 0))
    return {
        "SubscriberKey": contact_key(n),
        "EmailAddress": "" if n == 5 else f"{first}.{last}.{n}@example.com".lower(),
        "FirstName": first,
        "LastName": last,
        "Company": f"{last} Labs",
        "Country": "US",
        "State": _STATES[n % len(_STATES)],
        "PostalCode": f"{2100 + n:05d}",
        "LifecycleStage": _STAGES[n % len(_STAGES)],
        "PurchaseCount": str(n % 9),
        "LifetimeValue": f"{(n * 37.5) % 1000:.2f}",
        "LastPurchaseDate": "" if n % 4 == 0 else sfmc_date(base - timedelta(days=n % 30)),
        "EmailOptIn": "False" if n == 6 else "True",
        "ModifiedDate": sfmc_date(stamp),
    }


def campaign_engagement(count: int, *, base: datetime = BASE_TIME) -> DataExtension:
    """Campaign data extension: opens, clicks and responses per contact and campaign (SFMC-04)."""
    de = DataExtension(
        key="Campaign_Engagement",
        primary_key=("SubscriberKey", "CampaignId"),
        fields={
            "SubscriberKey": "Text", "EmailAddress": "EmailAddress", "CampaignId": "Text", "Opens": "Number",
            "Clicks": "Number", "Responded": "Boolean", "Response": "Text", "LastEngagedAt": "Date",
        },
    )  # fmt: skip
    for n in range(1, count + 1):
        contact = (n % 12) + 1
        first, last = _FIRST[contact % len(_FIRST)], _LAST[(contact // len(_FIRST)) % len(_LAST)]
        de.rows.append(
            {
                "SubscriberKey": contact_key(contact),
                "EmailAddress": f"{first}.{last}.{contact}@example.com".lower(),
                "CampaignId": f"CMP-{2026_00 + n // 12}",
                "Opens": str(n % 6),
                "Clicks": str(n % 3),
                "Responded": "True" if n % 3 == 0 else "False",
                "Response": ("positive", "negative", "")[n % 3],
                "LastEngagedAt": sfmc_date(base + timedelta(minutes=2 * n)),
            }
        )
    return de


def web_activity(count: int, *, start: int = 1, base: datetime = BASE_TIME) -> DataExtension:
    """Activity data extension: site visits and form submissions (SFMC-04)."""
    de = DataExtension(
        key="Web_Activity",
        primary_key=("ActivityId",),
        fields={
            "ActivityId": "Text", "SubscriberKey": "Text", "EmailAddress": "EmailAddress",
            "ActivityType": "Text", "PageUrl": "Text", "FormName": "Text", "VisitCount": "Number",
            "OccurredAt": "Date",
        },
    )  # fmt: skip
    de.rows = [activity_row(n, base) for n in range(start, start + count)]
    return de


def activity_row(n: int, base: datetime = BASE_TIME) -> dict[str, str]:
    contact = (n % 12) + 1
    first, last = _FIRST[contact % len(_FIRST)], _LAST[(contact // len(_FIRST)) % len(_LAST)]
    form = n % 4 == 0
    return {
        "ActivityId": f"ACT-{n:07d}",
        "SubscriberKey": contact_key(contact),
        "EmailAddress": f"{first}.{last}.{contact}@example.com".lower(),
        "ActivityType": "form_submission" if form else "site_visit",
        "PageUrl": f"https://www.example.com/{'contact' if form else 'pricing'}",
        "FormName": "Demo request" if form else "",
        "VisitCount": str(1 + n % 5),
        "OccurredAt": sfmc_date(base + timedelta(seconds=30 * n)),
    }


def example_ingestion_config() -> dict[str, Any]:
    """The example ingestion config: every shared/config/sources/*.example.json source."""
    sources = [json.loads(p.read_text()) for p in sorted(EXAMPLE_SOURCES.glob("*.example.json"))]
    return {"schemaVersion": "1", "sources": sources}


class Plug:
    """Plugs the fake into the local stack: the connection secret and the ingestion config (a source
    has no destination instance, so `install` does what `install_config` does for destinations)."""

    CONFIG_OUTPUT = "SfmcIngestionConfigParameterName"

    def __init__(self, contacts_count: int = 30, campaign_count: int = 20, activity_count: int = 20) -> None:
        self.fake: FakeSfmc = FakeSfmc()
        self.fake.add(contacts(contacts_count))
        self.fake.add(campaign_engagement(campaign_count))
        self.fake.add(web_activity(activity_count))

    def connection_secret(self) -> dict[str, Any]:
        fake = self.fake
        return {
            # As a user pastes it: the path after the host is removed by the connection (SFMC-02).
            "authBaseUri": fake.base_url + "/v2/token",
            "clientId": fake.client_id,
            "clientSecret": fake.client_secret,
            "accountId": fake.account_id,
        }

    def install(self, harness: Any) -> None:
        if self.CONFIG_OUTPUT not in harness.outputs:
            return  # a template without the ingestion block (older checkouts)
        config = example_ingestion_config()
        secrets_client = harness.stack.client("secretsmanager")
        value = json.dumps(self.connection_secret())
        for name in sorted({source["secret"] for source in config["sources"]}):
            try:
                secrets_client.create_secret(Name=name, SecretString=value)
            except secrets_client.exceptions.ResourceExistsException:
                secrets_client.put_secret_value(SecretId=name, SecretString=value)
        harness.stack.client("ssm").put_parameter(
            Name=harness.outputs[self.CONFIG_OUTPUT], Value=json.dumps(config), Type="String", Overwrite=True
        )

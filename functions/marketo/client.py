"""The only file that knows Marketo's URLs, payloads and codes (apis.md section 1, the OpenAPI files).

Every attempt of a REST call takes a share of the rate budget (`CallGate.take`), inside the slot the
invocation holds; both are shared by every invocation through DynamoDB and keyed by Munchkin ID
(Marketo's limits are per instance, across all integrations). `classify` maps Marketo's HTTP-200
`success:false` envelopes and its HTTP 413/414 onto the layer's error taxonomy; per-record reasons are
returned to the service, which turns them into outcomes.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from typing import Any
from urllib.parse import urlencode

import httpx

from activation_core import http
from activation_core.chunking import Failed, isolate, packed
from activation_core.credentials import Credentials
from activation_core.errors import (
    ActivationError,
    AuthError,
    PermanentError,
    RetryableError,
    ThrottledError,
)
from activation_core.oauth import TokenGrant
from marketo.models import BATCH_LIMIT, MarketoConnection

IDENTITY_PATH = "/identity/oauth/token"
LEADS_PATH = "/rest/v1/leads.json"
DELETE_LEADS_PATH = "/rest/v1/leads/delete.json"
DESCRIBE2_PATH = "/rest/v1/leads/describe2.json"
PARTITIONS_PATH = "/rest/v1/leads/partitions.json"
LIST_LEADS_PATH = "/rest/v1/lists/{list_id}/leads.json"
# Asset API (MKTO-DOCS static-lists.md, folders.md): by-name queries and the static list create.
FOLDER_BY_NAME_PATH = "/rest/asset/v1/folder/byName.json"
STATIC_LIST_BY_NAME_PATH = "/rest/asset/v1/staticList/byName.json"
STATIC_LISTS_PATH = "/rest/asset/v1/staticLists.json"

# Marketo answers 414 past 8 KB of URI; stay under it with room for the host.
MAX_URI_LENGTH = 8000
# Room kept in a lookup's URI for the `nextPageToken` of a later page (Marketo's are ~50 characters).
PAGE_TOKEN_ROOM = 200
# GETs a lookup of 300 values takes, for the call plan: 300 e-mails of ~25 characters are ~9 KB of
# `filterValues` (the @ and each comma encoded), more than one URI under 8 KB carries.
LOOKUP_GETS_PER_GROUP = 2
# The daily quota resets at 12:00 AM CST (apis.md 1.8); CST read as a fixed UTC-6, documented.
QUOTA_RESET_ZONE = timezone(timedelta(hours=-6), "CST")

# --- error codes (apis.md 1.7): the connector's classes --------------------------------------------
AUTH_CODES = frozenset({"601", "602"})  # refresh the token once, then retry
DAILY_QUOTA_CODE = "607"
# Throttles and how long to back off (s): 606 is the 20-s window (shared with other integrations),
# 615 the in-flight limit, 1029 the bulk/export queue quota.
THROTTLE_BACKOFF = {"606": 20.0, "615": 2.0, "1029": 60.0}
RETRYABLE_CODES = frozenset({"500", "502", "604", "608", "611", "614", "713", "719", "1016", "1019"})
PERMANENT_CODES = frozenset(
    {"603", "605", "609", "610", "612", "613", "616"}
    | {"701", "702", "703", "704", "709", "710", "711", "712", "714", "718"}
    # Record-level (1xxx) codes that a resend will never change.
    | {"1001", "1002", "1003", "1005", "1006", "1008", "1009", "1011", "1013", "1014", "1021"}
)
LEAD_NOT_FOUND = "1004"
MULTIPLE_MATCHES = "1007"
OTHER_PARTITION = "1010"
NOT_IN_LIST = "1015"


class PayloadTooLarge(PermanentError):
    """HTTP 413: the body passed 1 MB; the caller splits the batch."""


class UriTooLong(PermanentError):
    """HTTP 414: the URI passed 8 KB; a lookup splits its values (`MarketoClient.find_leads`)."""


class DailyQuotaExceeded(ThrottledError):
    """Marketo 607: nothing more until the daily reset."""


def next_quota_reset(now: float) -> float:
    """Epoch seconds of the next 12:00 AM CST after `now`."""
    local = datetime.fromtimestamp(now, QUOTA_RESET_ZONE)
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.astimezone(UTC).timestamp()


def error_for_code(code: str, message: str, *, now: float | None = None) -> ActivationError:
    """One Marketo code (response- or record-level) onto the layer's taxonomy; unknown codes retry."""
    reason = f"marketo_{code or 'no_code'}"
    detail = http.safe_excerpt(message) or reason
    if code in AUTH_CODES:
        return AuthError(reason, detail)
    if code == DAILY_QUOTA_CODE:
        at = time.time() if now is None else now
        return DailyQuotaExceeded(reason, detail, retry_after=max(1.0, next_quota_reset(at) - at))
    if code in THROTTLE_BACKOFF:
        return ThrottledError(reason, detail, retry_after=THROTTLE_BACKOFF[code])
    if code in PERMANENT_CODES or (len(code) == 3 and code.startswith("7") and code not in RETRYABLE_CODES):
        return PermanentError(reason, detail)
    # Retryable, and anything Marketo documents later: it retries until the DLQ rather than vanishing.
    return RetryableError(reason, detail)


def _first_error(body: Mapping[str, Any]) -> tuple[str, str]:
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
        return str(errors[0].get("code", "")), str(errors[0].get("message", ""))
    return "", "success is not true and no error was given"


def classify(response: httpx.Response) -> ActivationError | None:
    """HTTP status first (413 and 414 split, 401/429/5xx), then the `success` envelope."""
    if response.status_code == 413:
        return PayloadTooLarge("http_413", "request body over Marketo's 1 MB limit")
    if response.status_code == 414:
        return UriTooLong("http_414", "request URI over Marketo's 8 KB limit")
    error = http.classify_response(response)
    if error is not None:
        return error
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, Mapping):
        return RetryableError("marketo_invalid_response", "the response is not a JSON object")
    if body.get("success") is True:
        return None
    # HTTP 200 with success:false is a failure, whatever else the body holds.
    return error_for_code(*_first_error(body))


@dataclass(frozen=True)
class RecordStatus:
    """One per-record result (Sync Leads, list add/remove): its status, lead id and first reason."""

    status: str
    lead_id: int | None = None
    code: str = ""
    message: str = ""


def _statuses_by_lead(body: dict[str, Any]) -> dict[int, RecordStatus]:
    """A result array's status per lead id (items without an id carry no lead to report on)."""
    statuses: dict[int, RecordStatus] = {}
    for item in body.get("result") or []:
        status = _record_status(item)
        if status.lead_id is not None:
            statuses[status.lead_id] = status
    return statuses


def _record_status(item: Any) -> RecordStatus:
    if not isinstance(item, Mapping):
        return RecordStatus("skipped", code="", message="malformed result item")
    lead_id = item.get("id")
    reasons = item.get("reasons")
    if not isinstance(reasons, list):
        single = item.get("reason")  # the OpenAPI names a single `reason`, the docs a `reasons` list
        reasons = [single] if isinstance(single, Mapping) else []
    first = reasons[0] if reasons and isinstance(reasons[0], Mapping) else {}
    return RecordStatus(
        status=str(item.get("status", "")),
        lead_id=lead_id if isinstance(lead_id, int) and not isinstance(lead_id, bool) else None,
        code=str(first.get("code", "")),
        message=str(first.get("message", "")),
    )


@dataclass(frozen=True)
class Folder:
    id: int
    name: str
    workspace: str


@dataclass(frozen=True)
class Partition:
    id: int
    name: str


@dataclass(frozen=True)
class FoundLead:
    lead_id: int
    value: str  # the filter field's value, as Marketo holds it
    updated_at: str  # ISO-8601; compared as instants


def updated_instant(lead: FoundLead) -> float:
    try:
        return datetime.fromisoformat(lead.updated_at.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return float("-inf")


class CallGate:
    """Marketo's per-instance limits, shared by every invocation (see the service for the numbers).

    `slot()` is held by an invocation for as long as it talks to Marketo: its calls are sequential, so
    slots bound the calls in flight, and taking one per invocation instead of per call keeps the
    shared item quiet. `take()` is a share of the rate budget, taken right before every attempt
    (Marketo counts attempts), so Marketo counts a call the moment the budget does.
    """

    def __init__(
        self,
        slot: Callable[[], AbstractContextManager[None]],
        take: Callable[[], None],
        block_until: Callable[[float], None],
    ) -> None:
        self.slot = slot
        self.take = take
        self.block_until = block_until


def _open_gate() -> CallGate:
    return CallGate(nullcontext, lambda: None, lambda _: None)


@dataclass
class CallCounter:
    """Calls per Marketo operation (benchmarks, metrics)."""

    by_operation: dict[str, int] = field(default_factory=dict)

    def add(self, operation: str) -> None:
        self.by_operation[operation] = self.by_operation.get(operation, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.by_operation.values())


class MarketoClient:
    def __init__(
        self,
        connection: MarketoConnection,
        munchkin_id: str,
        tokens: Credentials,
        *,
        allow_loopback: bool,
        gate: CallGate | None = None,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_uri_length: int = MAX_URI_LENGTH,
    ) -> None:
        self._base = base_url(connection, munchkin_id, allow_loopback=allow_loopback)
        self._tokens = tokens
        self.gate = gate or _open_gate()
        self._client = client
        self._clock = clock
        self._sleep = sleep
        self._max_uri = max_uri_length
        self.calls = CallCounter()

    # -- the one way out ----------------------------------------------------------------------------

    def _call(self, operation: str, method: str, path: str, **request: Any) -> dict[str, Any]:
        url = self._base + path

        def attempt() -> None:
            self.gate.take()  # raises ThrottledError (retry later) when the budget stays exhausted
            self.calls.add(operation)

        def call(token: str) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"}
            return http.send(
                method, url, client=self._client, classify=classify, on_attempt=attempt,
                sleep=self._sleep, headers=headers, **request,
            )  # fmt: skip

        try:
            response = self._tokens.call_with_token(call)
        except DailyQuotaExceeded as exc:
            # Every invocation stops calling until the reset instead of each discovering the 607.
            self.gate.block_until(self._clock() + (exc.retry_after or 0.0))
            raise
        body = response.json()
        return body if isinstance(body, dict) else {}

    # -- Sync Leads ---------------------------------------------------------------------------------

    def sync_leads(
        self,
        leads: Sequence[Mapping[str, Any]],
        *,
        action: str,
        lookup_field: str,
        partition: str | None,
    ) -> list[RecordStatus]:
        """`POST /rest/v1/leads.json` (at most 300 records); one status per input record, in order."""
        if len(leads) > BATCH_LIMIT:
            raise ValueError(f"at most {BATCH_LIMIT} leads per call")
        payload: dict[str, Any] = {"action": action, "lookupField": lookup_field, "input": list(leads)}
        if partition is not None:
            payload["partitionName"] = partition
        body = self._call("sync_leads", "POST", LEADS_PATH, json=payload)
        result = body.get("result")
        if not isinstance(result, list) or len(result) != len(leads):
            raise RetryableError("marketo_result_mismatch", "Sync Leads did not return one result per record")
        return [_record_status(item) for item in result]

    # -- lookup -------------------------------------------------------------------------------------

    def find_leads(self, filter_type: str, values: Sequence[str]) -> list[FoundLead]:
        """Leads whose `filter_type` is one of `values` (<= 300), every partition, all pages.

        `GET /rest/v1/leads.json` only (getLeadsByFilterUsingGET), `filterValues` and `fields` each one
        comma-separated parameter, as the OpenAPI's descriptions and leads.md's examples write them
        (its `collectionFormat: multi` array then holds that one string; repeated parameters are not
        shown anywhere), the values packed into as many GETs as keep each URI under 8 KB. The POST with
        `_method=GET` that leads.md offers for long lookups is not in the OpenAPI file (its POST is Sync
        Leads, a JSON body): not sent.
        """
        if len(values) > BATCH_LIMIT:
            raise ValueError(f"at most {BATCH_LIMIT} filter values per call")
        fields = list(dict.fromkeys(["id", filter_type, "updatedAt"]))
        fixed = len(
            self._base + LEADS_PATH + "?" + urlencode(self._lookup_query(filter_type, fields, [], None))
        )
        groups = packed(
            values,
            [len(urlencode([("", v)])) + 2 for v in values],  # each value and its encoded comma
            max_count=BATCH_LIMIT,
            max_bytes=self._max_uri - fixed - PAGE_TOKEN_ROOM,
        )
        found: list[FoundLead] = []
        for group in groups:
            # A 414 all the same (a proxy counting otherwise) halves the group until each half fits;
            # a throttle, a server error or an expired token ends the lookup at once (no further GETs).
            for sent in isolate(
                group,
                partial(self._find_group, filter_type, fields),
                split_on=lambda e: isinstance(e, UriTooLong),
                raise_on=(RetryableError, AuthError),
            ):
                if isinstance(sent, Failed):
                    raise sent.error
                found += sent.result
        return found

    def _lookup_query(
        self, filter_type: str, fields: Sequence[str], values: Sequence[str], page_token: str | None
    ) -> list[tuple[str, str]]:
        query = [("filterType", filter_type), ("filterValues", ",".join(values))]
        query += [("fields", ",".join(fields)), ("batchSize", str(BATCH_LIMIT))]
        return query + ([("nextPageToken", page_token)] if page_token else [])

    def _find_group(self, filter_type: str, fields: Sequence[str], values: Sequence[str]) -> list[FoundLead]:
        """Every page of one lookup."""
        found: list[FoundLead] = []
        token: str | None = None
        while True:
            query = self._lookup_query(filter_type, fields, values, token)
            body = self._call("find_leads", "GET", LEADS_PATH, params=query)
            for item in body.get("result") or []:
                if isinstance(item, Mapping) and isinstance(item.get("id"), int):
                    found.append(
                        FoundLead(
                            int(item["id"]), str(item.get(filter_type, "")), str(item.get("updatedAt", ""))
                        )
                    )
            token = body.get("nextPageToken") if body.get("moreResult") else None
            if not token:
                return found

    # -- erasure ------------------------------------------------------------------------------------

    def delete_leads(self, lead_ids: Sequence[int]) -> dict[int, RecordStatus]:
        """`POST /rest/v1/leads/delete.json` (<= 300 ids): `deleted`, or `skipped` (1004: not found)."""
        if len(lead_ids) > BATCH_LIMIT:
            raise ValueError(f"at most {BATCH_LIMIT} lead ids per call")
        payload = {"input": [{"id": int(i)} for i in lead_ids]}
        body = self._call("delete_leads", "POST", DELETE_LEADS_PATH, json=payload)
        return _statuses_by_lead(body)

    # -- static lists -------------------------------------------------------------------------------

    def add_to_list(self, list_id: int, lead_ids: Sequence[int]) -> dict[int, RecordStatus]:
        return self._list_operation("add_to_list", "POST", list_id, lead_ids)

    def remove_from_list(self, list_id: int, lead_ids: Sequence[int]) -> dict[int, RecordStatus]:
        return self._list_operation("remove_from_list", "DELETE", list_id, lead_ids)

    def _list_operation(
        self, operation: str, method: str, list_id: int, lead_ids: Sequence[int]
    ) -> dict[int, RecordStatus]:
        """`POST|DELETE /rest/v1/lists/{listId}/leads.json?id=..` (<= 300 ids); status per lead id."""
        if len(lead_ids) > BATCH_LIMIT:
            raise ValueError(f"at most {BATCH_LIMIT} lead ids per call")
        path = LIST_LEADS_PATH.format(list_id=int(list_id))
        request: dict[str, Any] = {"params": [("id", str(i)) for i in lead_ids]}
        if method == "DELETE":
            # removeLeadsFromListUsingDELETE requires both the `id` query and the ListOperationRequest
            # body (marketo-rest.json); the two carry the same ids. Add requires neither: the query.
            request["json"] = {"input": [{"id": int(i)} for i in lead_ids]}
        body = self._call(operation, method, path, **request)
        return _statuses_by_lead(body)

    # -- describe and partitions (validated once a day per container) -------------------------------

    def describe_fields(self) -> tuple[set[str], set[str]]:
        """(every lead field's REST name, the fields that can be searched on alone) from Describe2."""
        body = self._call("describe", "GET", DESCRIBE2_PATH)
        fields: set[str] = set()
        searchable: set[str] = set()
        for entry in body.get("result") or []:
            if not isinstance(entry, Mapping):
                continue
            fields.update(str(f.get("name")) for f in entry.get("fields") or [] if isinstance(f, Mapping))
            for group in entry.get("searchableFields") or []:
                if isinstance(group, list) and len(group) == 1:
                    searchable.add(str(group[0]))
        return fields, searchable

    def partitions(self) -> list[Partition]:
        """`GET /rest/v1/leads/partitions.json`: every lead partition (id, name) the API user sees."""
        body = self._call("partitions", "GET", PARTITIONS_PATH)
        return [
            Partition(int(p["id"]), str(p.get("name", "")))
            for p in body.get("result") or []
            if isinstance(p, Mapping) and isinstance(p.get("id"), int)
        ]

    # -- Asset API: folders and static lists (lists named after audiences) ----------------------------

    def folders_named(self, name: str, workspace: str) -> list[Folder]:
        """`GET /rest/asset/v1/folder/byName.json`: folders of that name in the workspace."""
        params = {"name": name, "type": "Folder", "workSpace": workspace}
        body = self._call("folder_by_name", "GET", FOLDER_BY_NAME_PATH, params=params)
        return [
            Folder(int(f["id"]), str(f.get("name", "")), str(f.get("workspace", "")))
            for f in body.get("result") or []
            if isinstance(f, Mapping) and isinstance(f.get("id"), int)
        ]

    def static_list_named(self, name: str) -> int | None:
        """`GET /rest/asset/v1/staticList/byName.json`: the id of the list of that exact name, if any."""
        body = self._call("list_by_name", "GET", STATIC_LIST_BY_NAME_PATH, params={"name": name})
        for item in body.get("result") or []:  # nothing found: success, a warning, no result
            if isinstance(item, Mapping) and isinstance(item.get("id"), int) and item.get("name") == name:
                return int(item["id"])
        return None

    def create_static_list(self, name: str, folder_id: int, description: str) -> int:
        """`POST /rest/asset/v1/staticLists.json` (form): a new list in the folder; its id."""
        form = {
            "folder": json.dumps({"id": folder_id, "type": "Folder"}),
            "name": name,
            "description": description,
        }
        body = self._call("create_list", "POST", STATIC_LISTS_PATH, data=form)
        for item in body.get("result") or []:
            if isinstance(item, Mapping) and isinstance(item.get("id"), int):
                return int(item["id"])
        raise RetryableError("marketo_result_missing", "the static list create returned no id")


def base_url(connection: MarketoConnection, munchkin_id: str, *, allow_loopback: bool) -> str:
    """`https://{munchkinId}.mktorest.com`, or the secret's `baseUrl` if it names that very host."""
    url = connection.base_url or f"https://{munchkin_id}.mktorest.com"
    url = re.sub(r"/rest/?$", "", url.rstrip("/"))  # the UI's "Endpoint" ends in /rest
    host = rf"{re.escape(munchkin_id)}\.mktorest\.com"
    return http.validate_base_url(url, host_pattern=host, allow_loopback=allow_loopback)


def fetch_token(
    connection: Mapping[str, Any],
    munchkin_id: str,
    *,
    allow_loopback: bool,
    client: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> TokenGrant:
    """Client-credentials grant at the instance's Identity endpoint (not counted by the rate limit).

    Marketo returns the same token until it expires, with `expires_in` counting down; one that is at
    its very end (0 s) is waited out once so the next request mints a fresh one.
    """
    parsed = MarketoConnection.model_validate(connection)
    url = base_url(parsed, munchkin_id, allow_loopback=allow_loopback) + IDENTITY_PATH
    # Query parameters, no body: marketo-identity.json declares all three `in: query` and required
    # (identityUsingPOST takes no body). The URL is never logged (activation_core.http logs the host).
    params = {
        "grant_type": "client_credentials",
        "client_id": parsed.client_id,
        "client_secret": parsed.client_secret,
    }
    for attempt in range(2):
        body = http.send("POST", url, client=client, params=params).json()
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise RetryableError("token_response_invalid", "the Identity endpoint returned no access_token")
        expires_in = body.get("expires_in", 3600)
        seconds = float(expires_in) if isinstance(expires_in, int | float) else 3600.0
        if math.isfinite(seconds) and seconds > 0:
            return TokenGrant(access_token=token, expires_in=seconds)
        if attempt == 0:
            sleep(1.0)
    raise RetryableError("token_expiring", "the Identity endpoint keeps returning an expiring token")

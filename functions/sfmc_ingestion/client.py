"""The only module that knows SFMC URLs, payloads and error codes (apis.md section 3).

- Token: `POST https://{subdomain}.auth.marketingcloudapis.com/v2/token`, JSON client-credentials body
  (+ `account_id` when the connection names a MID) -> `{access_token, expires_in, rest_instance_url}`;
  tokens live 20 minutes and are shared through the layer's TokenProvider (memory -> secret -> mint).
- Rows: `GET {rest_instance_url}/data/v1/customobjectdata/key/{key}/rowset` (the instance URL returned
  with the token, kept in the secret; `https://{subdomain}.rest.marketingcloudapis.com` before it)
  with `$page`, `$pageSize`, `$filter`, `$orderBy`; the response's `links.next` (a server-side result
  snapshot, `requestToken`) is followed for the next page.
- Errors: `{"message", "errorcode", "documentation"}`; 401 -> refresh once; 429 (50100 with
  Retry-After, 50200 blocked) -> ThrottledError for the state machine's Retry; 5xx -> retryable;
  other 4xx -> permanent for that data extension.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import httpx

from activation_core import http
from activation_core.errors import (
    ActivationError,
    AuthError,
    PermanentError,
    RetryableError,
    ThrottledError,
)
from activation_core.oauth import TokenGrant, TokenProvider
from sfmc_ingestion.models import SfmcConnection, system_object_reason

AUTH_DOMAIN = ".auth.marketingcloudapis.com"
REST_DOMAIN = ".rest.marketingcloudapis.com"
AUTH_HOST_PATTERN = r"[a-z0-9][a-z0-9-]{0,62}\.auth\.marketingcloudapis\.com"
REST_HOST_PATTERN = r"[a-z0-9][a-z0-9-]{0,62}\.rest\.marketingcloudapis\.com"
SOAP_HOST_PATTERN = r"[a-z0-9][a-z0-9-]{0,62}\.soap\.marketingcloudapis\.com"
TOKEN_PATH = "/v2/token"  # noqa: S105 - a path
SOAP_PATH = "/Service.asmx"
ROWSET_PATH = "/data/v1/customobjectdata/key/{key}/rowset"
_SUBDOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_LOOPBACK = frozenset({"127.0.0.1", "localhost"})

# The documented example waits 5 s; a 429 is never retried inside the task (the state machine's Retry
# owns backoff), so every throttle carries at least this wait for callers that look at it.
MIN_THROTTLE_WAIT = 5.0
BLOCKED_WAIT = 60.0  # errorcode 50200 "temporarily blocked": long backoff
# In-process retries for short blips only (connection reset, a 503); anything longer goes to the
# state machine, whose Retry is visible in the execution history.
RETRY_POLICY = http.RetryPolicy(attempts=3, base_delay=0.2, max_delay=1.0, max_in_process_wait=2.0)


@dataclass(frozen=True)
class Endpoints:
    auth_base: str  # https://{subdomain}.auth.marketingcloudapis.com (or a loopback fake)
    rest_base: str
    subdomain: str


def normalize_auth_base_uri(uri: str, *, allow_loopback: bool) -> tuple[str, str]:
    """The auth base URI as the user pasted it -> (`https://{sub}.auth.marketingcloudapis.com`, sub).

    Everything after `.auth.marketingcloudapis.com/` is removed (SFMC-02); a bare subdomain is accepted;
    the scheme must be https and the subdomain a DNS label. A loopback URL (local fakes) keeps its port.
    """
    text = (uri or "").strip()
    if not text or any(ch.isspace() or ord(ch) < 0x20 for ch in text):
        raise PermanentError("invalid_auth_base_uri", "empty or contains whitespace/control characters")
    if "://" not in text:
        text = "https://" + (text if "." in text else text + AUTH_DOMAIN)
    parts = urlsplit(text)
    host = (parts.hostname or "").lower()
    if host in _LOOPBACK:
        base = http.validate_base_url(
            f"{parts.scheme}://{parts.netloc}", host_pattern=AUTH_HOST_PATTERN, allow_loopback=allow_loopback
        )
        return base, "local"
    if parts.scheme.lower() != "https":
        raise PermanentError("invalid_auth_base_uri", "scheme must be https")
    if "@" in parts.netloc or parts.port not in (None, 443):
        raise PermanentError("invalid_auth_base_uri", "credentials or a port are not allowed in the URI")
    if not host.endswith(AUTH_DOMAIN):
        raise PermanentError("invalid_auth_base_uri", f"host must end with {AUTH_DOMAIN}")
    subdomain = host[: -len(AUTH_DOMAIN)]
    if not _SUBDOMAIN.match(subdomain):
        raise PermanentError(
            "invalid_auth_base_uri", "the subdomain must be one DNS label (letters, digits, -)"
        )
    base = f"https://{subdomain}{AUTH_DOMAIN}"
    return http.validate_base_url(base, host_pattern=AUTH_HOST_PATTERN, allow_loopback=False), subdomain


def endpoints(connection: SfmcConnection, *, allow_loopback: bool) -> Endpoints:
    """Where to call: the REST instance URL SFMC returned with the last token (the installed package's
    endpoint, SFMC-02) wins over a `restBaseUri` typed into the secret and over the tenant pattern."""
    auth_base, subdomain = normalize_auth_base_uri(connection.auth_base_uri, allow_loopback=allow_loopback)
    if connection.rest_instance_url:
        rest = http.validate_base_url(
            connection.rest_instance_url, host_pattern=REST_HOST_PATTERN, allow_loopback=allow_loopback
        )
    elif connection.rest_base_uri:
        rest = http.validate_base_url(
            connection.rest_base_uri, host_pattern=REST_HOST_PATTERN, allow_loopback=allow_loopback
        )
    elif subdomain == "local":
        rest = auth_base  # one fake serves both
    else:
        rest = f"https://{subdomain}{REST_DOMAIN}"  # the tenant pattern (apis.md 3.1)
    return Endpoints(auth_base, rest, subdomain)


def _error_body(response: httpx.Response) -> tuple[str, str, float | None]:
    """(errorcode, message, retryAfter) from SFMC's error envelope; blanks when there is none."""
    try:
        body = response.json()
    except ValueError:
        return "", "", None
    if not isinstance(body, dict):
        return "", "", None
    code = body.get("errorcode", body.get("errorCode", ""))
    message = body.get("message") or body.get("error_description") or body.get("error") or ""
    retry_after = body.get("retryAfter")
    return (
        str(code) if code is not None else "",
        http.safe_excerpt(str(message)),
        float(retry_after) if isinstance(retry_after, int | float) and retry_after >= 0 else None,
    )


def classify(response: httpx.Response) -> ActivationError | None:
    """SFMC REST responses onto the layer's taxonomy (apis.md 3.5)."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    code, message, body_retry_after = _error_body(response)
    reason = f"sfmc_{status}" + (f"_{code}" if code and code != "0" else "")
    detail = message or f"HTTP {status}"
    if status == 401:
        return AuthError(reason, detail)
    if status == 429:
        header_wait = http.parse_retry_after(response.headers, time.time())
        floor = BLOCKED_WAIT if code == "50200" else MIN_THROTTLE_WAIT
        wait = max(floor, header_wait or 0.0, body_retry_after or 0.0)
        return ThrottledError(reason, detail, retry_after=wait)
    if status == 408 or status >= 500:
        return RetryableError(reason, detail)
    return PermanentError(reason, detail)


def classify_token(response: httpx.Response) -> ActivationError | None:
    """The token endpoint: refused credentials are an auth failure, not a retry."""
    error = classify(response)
    if isinstance(error, PermanentError | AuthError) and response.status_code in (400, 401, 403):
        return AuthError(
            "sfmc_token_refused",
            "the token endpoint refused the client credentials (check clientId, clientSecret, accountId "
            f"and the installed package's scopes): {error.detail}",
        )
    return error


def fetch_token(
    connection: Mapping[str, Any],
    *,
    allow_loopback: bool,
    client: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> TokenGrant:
    """Client-credentials grant (apis.md 3.1); `account_id` targets a business unit (MID)."""
    parsed = SfmcConnection.model_validate(connection)
    auth_base, _ = normalize_auth_base_uri(parsed.auth_base_uri, allow_loopback=allow_loopback)
    body = {
        "grant_type": "client_credentials",
        "client_id": parsed.client_id,
        "client_secret": parsed.client_secret,
    }
    if parsed.account_id:
        body["account_id"] = parsed.account_id
    response = http.send(
        "POST",
        auth_base + TOKEN_PATH,
        client=client,
        classify=classify_token,
        policy=RETRY_POLICY,
        sleep=sleep,
        json=body,
    )
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict) or not isinstance(payload.get("access_token"), str):
        raise RetryableError("token_response_invalid", "the token endpoint returned no access_token")
    expires_in = payload.get("expires_in", 1200)
    if not isinstance(expires_in, int | float) or isinstance(expires_in, bool):
        expires_in = 1200
    updates: dict[str, str] = {}
    for field, name, pattern, known in (
        ("rest_instance_url", "restInstanceUrl", REST_HOST_PATTERN, parsed.rest_instance_url),
        ("soap_instance_url", "soapInstanceUrl", SOAP_HOST_PATTERN, parsed.soap_instance_url),
    ):
        instance = payload.get(field)
        if isinstance(instance, str) and instance:
            # Checked like a typed URL: a token answer must not send the bearer token to another host.
            url = http.validate_base_url(instance, host_pattern=pattern, allow_loopback=allow_loopback)
            if url != known:
                updates[name] = url
    return TokenGrant(
        access_token=payload["access_token"], expires_in=float(expires_in), connection_updates=updates
    )


@dataclass
class RowsetPage:
    """One page of a data extension's rows, as SFMC returned it."""

    items: list[dict[str, Any]]
    count: int | None
    page: int | None
    page_size: int | None
    next_link: str | None
    request_token: str | None
    raw_bytes: int = 0


def build_filter(column: str, literal: str) -> str:
    """`Col gte 'value'` (apis.md 3.3 grammar; a quote in the value is doubled)."""
    return f"{column} gte '{literal.replace(chr(39), chr(39) * 2)}'"


class SfmcClient:
    """Reads rowset pages for one connection; every call goes through the token provider."""

    def __init__(
        self,
        connection: SfmcConnection,
        tokens: TokenProvider,
        *,
        allow_loopback: bool,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._allow_loopback = allow_loopback
        self.endpoints = endpoints(connection, allow_loopback=allow_loopback)
        self._instance_url = connection.rest_instance_url
        self._tokens = tokens
        self._client = client
        self._sleep = sleep
        self.api_calls = 0

    def _count(self) -> None:
        self.api_calls += 1

    def first_page(
        self,
        key: str,
        *,
        page_size: int,
        filter_expr: str | None,
        order_by: str | None,
        fields: Sequence[str] = (),
    ) -> RowsetPage:
        reason = system_object_reason(key)
        if reason is not None:
            # Defence in depth for SFMC-01: the config refuses them already.
            raise PermanentError("sfmc_not_a_data_extension", reason)
        query = [("$page", "1"), ("$pageSize", str(page_size))]
        if order_by:
            query.append(("$orderBy", order_by))
        if filter_expr:
            query.append(("$filter", filter_expr))
        if fields:
            query.append(("$fields", ",".join(fields)))
        # Spaces as %20 (the documented form), '$' and quotes kept literal.
        encoded = "&".join(f"{k}={quote(v, safe=chr(39) + ',')}" for k, v in query)
        path = ROWSET_PATH.format(key=quote(key, safe="")) + "?" + encoded
        return self._get(lambda: self.endpoints.rest_base + path)

    def next_page(self, link: str) -> RowsetPage:
        return self._get(lambda: self.resolve_link(link))

    def _refresh_endpoints(self) -> None:
        """The connection as the token provider knows it now (after a mint it carries the REST
        instance URL SFMC returned): no I/O while the token in memory is usable."""
        connection = SfmcConnection.model_validate(self._tokens.connection())
        if connection.rest_instance_url and connection.rest_instance_url != self._instance_url:
            self.endpoints = endpoints(connection, allow_loopback=self._allow_loopback)
            self._instance_url = connection.rest_instance_url

    def resolve_link(self, link: str) -> str:
        """`links.next` as SFMC returns it (`/v1/customobjectdata/token/{t}/rowset?$page=2`) -> a URL.

        Only relative links on the rowset routes are followed: a link to another host would carry
        the bearer token there.
        """
        parts = urlsplit(link)
        if parts.scheme or parts.netloc:
            rest = urlsplit(self.endpoints.rest_base)
            if (parts.scheme, parts.netloc) != (rest.scheme, rest.netloc):
                raise PermanentError("sfmc_foreign_link", "links.next points at another host")
        path = parts.path
        if path.startswith("/v1/"):
            path = "/data" + path  # [INFER] the captured links omit the /data prefix of the route
        if not path.startswith("/data/v1/customobjectdata/") or not path.endswith("/rowset") or ".." in path:
            raise PermanentError("sfmc_unexpected_link", "links.next is not a rowset link")
        return self.endpoints.rest_base + path + (f"?{parts.query}" if parts.query else "")

    def _get(self, url_of: Callable[[], str]) -> RowsetPage:
        def call(token: str) -> httpx.Response:
            self._refresh_endpoints()
            url = url_of()
            return http.send(
                "GET", url, client=self._client, classify=classify, policy=RETRY_POLICY,
                sleep=self._sleep, on_attempt=self._count,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            )  # fmt: skip

        response = self._tokens.call_with_token(call)
        try:
            body = response.json()
        except ValueError:
            raise RetryableError("sfmc_invalid_body", "the rowset response is not JSON") from None
        return parse_page(body, len(response.content))


def parse_page(body: Any, raw_bytes: int = 0) -> RowsetPage:
    """The rowset envelope (apis.md 3.3): items, count (total matches), links.next, requestToken."""
    if not isinstance(body, dict) or not isinstance(body.get("items", []), list):
        raise RetryableError("sfmc_invalid_body", "the rowset response has no items list")
    links: dict[str, Any] = body["links"] if isinstance(body.get("links"), dict) else {}
    next_link = links.get("next") if isinstance(links.get("next"), str) and links.get("next") else None

    def number(name: str) -> int | None:
        value = body.get(name)
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    token = body.get("requestToken")
    return RowsetPage(
        items=[item for item in body.get("items", []) if isinstance(item, dict)],
        count=number("count"),
        page=number("page"),
        page_size=number("pageSize"),
        next_link=next_link,
        request_token=str(token) if token else None,
        raw_bytes=raw_bytes,
    )


# --- discovery: SOAP Retrieve of DataExtension / DataExtensionField (apis.md 3.2, option B) ----------

SOAP_ENVELOPE = "http://schemas.xmlsoap.org/soap/envelope/"
PARTNER_API = "http://exacttarget.com/wsdl/partnerAPI"
MAX_RETRIEVE_PAGES = 1000  # 2,500 objects a page: far more data extensions than an account holds
_MAX_SOAP_BYTES = 20 * 2**20


def _retrieve_body(token: str, object_type: str, properties: Sequence[str], continue_id: str | None) -> str:
    if continue_id:
        request = f"<ContinueRequest>{escape(continue_id)}</ContinueRequest>"
    else:
        props = "".join(f"<Properties>{escape(p)}</Properties>" for p in properties)
        request = f"<ObjectType>{escape(object_type)}</ObjectType>{props}"
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{SOAP_ENVELOPE}">'
        f'<s:Header><fueloauth xmlns="http://exacttarget.com">{escape(token)}</fueloauth></s:Header>'
        f'<s:Body><RetrieveRequestMsg xmlns="{PARTNER_API}"><RetrieveRequest>{request}</RetrieveRequest>'
        "</RetrieveRequestMsg></s:Body></s:Envelope>"
    )


def _flatten(element: Any, prefix: str = "") -> dict[str, str]:
    """A Results element -> {"CustomerKey": ..., "DataExtension.CustomerKey": ...} (local names)."""
    out: dict[str, str] = {}
    for child in element:
        name = prefix + child.tag.rsplit("}", 1)[-1]
        if len(child):
            out.update(_flatten(child, name + "."))
        elif child.text is not None:
            out[name] = child.text
    return out


def parse_retrieve(body: bytes) -> tuple[str, str | None, list[dict[str, str]]]:
    """(OverallStatus, RequestID, results) of a RetrieveResponseMsg; a SOAP fault is an error."""
    if len(body) > _MAX_SOAP_BYTES:
        raise PermanentError("sfmc_soap_too_large", "the Retrieve response is larger than expected")
    # The answer of SFMC's own endpoint (TLS, checked host); ElementTree expands no external entity.
    root = ElementTree.fromstring(body)  # noqa: S314
    fault = root.find(f".//{{{SOAP_ENVELOPE}}}Fault")
    if fault is not None:
        text = " ".join((fault.findtext("faultstring") or "").split())
        raise PermanentError("sfmc_soap_fault", http.safe_excerpt(text or "SOAP fault"))
    message = root.find(f".//{{{PARTNER_API}}}RetrieveResponseMsg")
    if message is None:
        raise RetryableError("sfmc_soap_invalid", "no RetrieveResponseMsg in the answer")
    status = message.findtext(f"{{{PARTNER_API}}}OverallStatus") or ""
    if status.startswith("Error"):
        # e.g. "Error: API Permission Failed" (TAP-ET treats these as failures)
        raise PermanentError("sfmc_retrieve_failed", http.safe_excerpt(status))
    results = [_flatten(r) for r in message.findall(f"{{{PARTNER_API}}}Results")]
    return status, message.findtext(f"{{{PARTNER_API}}}RequestID"), results


def retrieve(
    soap_base: str,
    token: str,
    object_type: str,
    properties: Sequence[str],
    *,
    client: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict[str, str]]:
    """Every object of a type, following `MoreDataAvailable` with `ContinueRequest`."""
    objects: list[dict[str, str]] = []
    continue_id: str | None = None
    for _ in range(MAX_RETRIEVE_PAGES):
        response = http.send(
            "POST", soap_base + SOAP_PATH, client=client, classify=_classify_soap, policy=RETRY_POLICY,
            sleep=sleep, content=_retrieve_body(token, object_type, properties, continue_id).encode(),
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": "Retrieve"},
        )  # fmt: skip
        status, request_id, results = parse_retrieve(response.content)
        objects.extend(results)
        if status != "MoreDataAvailable" or not request_id:
            return objects
        continue_id = request_id
    raise PermanentError("sfmc_paging_runaway", f"more than {MAX_RETRIEVE_PAGES} Retrieve pages")


def _classify_soap(response: httpx.Response) -> ActivationError | None:
    """SOAP answers faults with HTTP 500 (a body to read, not a retry); throttling is also a 500."""
    if response.status_code == 500 and b"Fault" in response.content:
        return None
    return classify(response)

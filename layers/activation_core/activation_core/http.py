"""One HTTP client per container, bounded retries and one error taxonomy for every vendor call.

Destinations send through `send()`: it classifies each response onto `errors.*`, retries transient
failures in-process with jittered backoff (honouring `Retry-After`), and raises anything that would
wait too long so the record goes back to SQS instead of burning Lambda time.
"""

from __future__ import annotations

import email.utils
import ipaddress
import logging
import math
import os
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from activation_core import deadline
from activation_core.errors import (
    ActivationError,
    AuthError,
    PermanentError,
    RetryableError,
    ThrottledError,
)
from activation_core.observability import start_tracing
from activation_core.vendor_counts import VENDOR_COUNTS

logger = logging.getLogger(__name__)
# httpx logs every request's full URL at INFO ("HTTP Request: GET https://...?..."), and a URL may hold
# a personal value (a lookup's filter values) or a secret (a token call's query parameters); httpcore's
# DEBUG trace echoes request and response headers. Only their warnings reach the logs, whatever level
# the root logger is given (Lambda's ApplicationLogLevel sets it).
for _library in ("httpx", "httpcore"):
    logging.getLogger(_library).setLevel(logging.WARNING)

# Every call is bounded: a Lambda must never hang on a vendor. connect is short because a vendor that
# cannot accept a connection in 3 s is down, and read covers slow batch endpoints.
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=3.0)
# One invocation runs at most a few parallel calls; keep-alive lets warm invocations reuse TLS sessions.
DEFAULT_LIMITS = httpx.Limits(max_connections=20, max_keepalive_connections=10, keepalive_expiry=30.0)

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost"})
_DETAIL_LIMIT = 200
_EMAIL = re.compile(r"[^\s@\"'<>,;:]+@[^\s@\"'<>,;:]+\.[A-Za-z]{2,}")
_WHITESPACE = re.compile(r"\s+")
# X-RateLimit-Reset below this is a delta in seconds (some APIs send that), above it an epoch.
_EPOCH_THRESHOLD = 1_000_000_000.0
# ... and above this an epoch in milliseconds.
_EPOCH_MS_THRESHOLD = 100_000_000_000.0

_client: httpx.Client | None = None
_client_lock = threading.Lock()


def _timeout_from_env() -> httpx.Timeout:
    """`HTTP_TIMEOUT_SECONDS` (template parameter VendorTimeoutSeconds) caps every read; connect stays short."""
    seconds = float(os.environ.get("HTTP_TIMEOUT_SECONDS", "") or DEFAULT_TIMEOUT.read or 10.0)
    return httpx.Timeout(seconds, connect=min(3.0, seconds))


def shared_client() -> httpx.Client:
    """The container's HTTP client, created on first use (connection reuse across warm invocations)."""
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                start_tracing()  # X-Ray instruments clients created after it patched httpx
                _client = httpx.Client(
                    timeout=_timeout_from_env(),
                    limits=DEFAULT_LIMITS,
                    # A redirect could carry an Authorization header to another host: never follow one.
                    follow_redirects=False,
                    headers={"User-Agent": "activation-core"},
                )
    return _client


def reset_shared_client() -> None:
    """Close and forget the shared client (tests)."""
    global _client
    with _client_lock:
        if _client is not None:
            _client.close()
        _client = None


def _invalid_url(detail: str) -> PermanentError:
    return PermanentError("invalid_base_url", detail)


def validate_base_url(url: str, *, host_pattern: str, allow_loopback: bool) -> str:
    """Check a vendor base URL from a secret; return it normalised without a trailing slash.

    https with a host fully matching `host_pattern` (a regex), or http(s) on 127.0.0.1/localhost only when
    `allow_loopback` (local fakes). Error details never echo the URL: it may carry credentials.
    """
    if not isinstance(url, str) or not url or any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise _invalid_url("empty or contains whitespace/control characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _invalid_url("scheme must be https")
    if "@" in parts.netloc:
        raise _invalid_url("credentials (userinfo) are not allowed in the URL")
    if "?" in url or "#" in url:
        raise _invalid_url("query strings and fragments are not allowed")
    try:
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        raise _invalid_url("invalid port") from None
    if not host:
        raise _invalid_url("missing host")
    path = parts.path.rstrip("/")
    if any(segment in (".", "..") for segment in path.split("/")):
        raise _invalid_url("dot segments are not allowed in the path")

    if host in _LOOPBACK_HOSTS:
        if not allow_loopback:
            raise _invalid_url("loopback hosts are allowed only in local mode")
    else:
        if scheme != "https":
            raise _invalid_url("scheme must be https")
        if _is_ip_literal(host) or re.fullmatch(host_pattern, host, flags=re.IGNORECASE) is None:
            raise _invalid_url(f"host {host[:100]!r} does not match the allowed pattern")

    default_port = 443 if scheme == "https" else 80
    netloc = host if port is None or port == default_port else f"{host}:{port}"
    return f"{scheme}://{netloc}{path}"


def _is_ip_literal(host: str) -> bool:
    # A vendor is reached by name; an IP literal (other than loopback) is never a vendor endpoint.
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # httpx.Headers is case-insensitive already; a plain dict (tests, other callers) is not.
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None


def _parse_number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _parse_timestamp(value: str) -> float | None:
    """HTTP-date (RFC 9110) first, then ISO-8601; naive times are taken as UTC."""
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        parsed = None
    if parsed is None:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def parse_retry_after(
    headers: Mapping[str, str], now: float, *, rate_limit_reset: bool = True
) -> float | None:
    """Seconds from `now` the server asks us to wait (>= 0), or None when it says nothing usable.

    `Retry-After` (delta-seconds, HTTP-date or ISO-8601) wins; otherwise `X-RateLimit-Reset`
    (epoch seconds; small values are read as a delta and huge ones as epoch milliseconds).
    """
    retry_after = _header(headers, "Retry-After")
    if retry_after is not None and retry_after.strip():
        value = retry_after.strip()
        seconds = _parse_number(value)
        if seconds is not None:
            return max(0.0, seconds)
        at = _parse_timestamp(value)
        if at is not None:
            return max(0.0, at - now)

    # A rate-limit reset says when the quota refills: a wait for a 429, not for a 5xx (vendors that
    # send it on every response would otherwise turn a 502 into "wait until the hourly reset").
    reset = _header(headers, "X-RateLimit-Reset") if rate_limit_reset else None
    if reset is not None:
        number = _parse_number(reset.strip())
        if number is None:
            at = _parse_timestamp(reset.strip())
            return None if at is None else max(0.0, at - now)
        if number < _EPOCH_THRESHOLD:
            return max(0.0, number)
        if number >= _EPOCH_MS_THRESHOLD:
            number /= 1000.0
        return max(0.0, number - now)
    return None


def safe_excerpt(text: str, limit: int = _DETAIL_LIMIT) -> str:
    """A short, single-line excerpt of a response body with email addresses masked (bodies echo input)."""
    flat = _WHITESPACE.sub(" ", text).strip()
    if len(flat) > limit:
        flat = flat[:limit] + "..."
    return _EMAIL.sub("<email>", flat)


def _response_detail(response: httpx.Response) -> str:
    # Only the status and a short body excerpt: never the request's headers, URL query or body.
    try:
        body = response.text
    except (httpx.ResponseNotRead, UnicodeDecodeError):
        body = ""
    excerpt = safe_excerpt(body)
    status = f"{response.status_code} {response.reason_phrase}".strip()
    return f"{status}: {excerpt}" if excerpt else status


def classify_response(response: httpx.Response) -> ActivationError | None:
    """Map a response onto the error taxonomy; None for 2xx."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    detail = _response_detail(response)
    if status == 401:
        return AuthError("http_401", detail)
    if status == 429:
        return ThrottledError(
            "http_429", detail, retry_after=parse_retry_after(response.headers, time.time())
        )
    if status == 408 or status >= 500:
        return RetryableError(
            f"http_{status}",
            detail,
            retry_after=parse_retry_after(response.headers, time.time(), rate_limit_reset=False),
        )
    # Other 4xx, and 1xx/3xx (redirects are never followed), will not succeed if sent again.
    return PermanentError(f"http_{status}", detail)


@dataclass(frozen=True)
class RetryPolicy:
    """In-process retries: short waits only; anything longer is SQS's job (visibility timeout)."""

    attempts: int = 3
    base_delay: float = 0.2
    max_delay: float = 5.0
    max_in_process_wait: float = 10.0

    def backoff(self, retry_index: int) -> float:
        """Full jitter: spreads concurrent invocations that failed together."""
        return random.uniform(0.0, min(self.max_delay, self.base_delay * (2**retry_index)))


def _transport_error(exc: httpx.TransportError) -> ActivationError:
    # Only the exception type: its message could name the URL.
    if isinstance(exc, httpx.TimeoutException):
        return RetryableError("timeout", type(exc).__name__)
    if isinstance(exc, httpx.UnsupportedProtocol):
        # A malformed URL is a configuration error; sending it again cannot help.
        return PermanentError("unsupported_protocol", type(exc).__name__)
    return RetryableError("connection_error", type(exc).__name__)


def _log_target(method: str, url: str) -> str:
    # Host only: paths can hold identifiers and query strings can hold tokens.
    try:
        host = urlsplit(url).hostname or "?"
    except ValueError:
        host = "?"
    return f"{method.upper()} {host}"


def call_budget(client: httpx.Client) -> float:
    """The longest one attempt may take: the client's read timeout plus a margin (connect is short)."""
    read = client.timeout.read
    return (read if read is not None else DEFAULT_TIMEOUT.read or 10.0) + deadline.CALL_MARGIN_SECONDS


def send(
    method: str,
    url: str,
    *,
    client: httpx.Client | None = None,
    classify: Callable[[httpx.Response], ActivationError | None] = classify_response,
    policy: RetryPolicy = RetryPolicy(),  # frozen: a shared default is safe
    sleep: Callable[[float], None] = time.sleep,
    on_attempt: Callable[[], None] | None = None,
    **request_kwargs: Any,
) -> httpx.Response:
    """Send a request, retrying transient failures; return the successful response or raise `errors.*`.

    PermanentError and AuthError are raised at once (a token refresh is the caller's job). A
    RetryableError is retried with jittered backoff, honouring its `retry_after`; when the wait would
    exceed `policy.max_in_process_wait` or attempts run out it is raised for the caller (the record
    goes back to SQS).
    """
    http = client if client is not None else shared_client()
    attempts = max(1, policy.attempts)
    budget = call_budget(http)
    for attempt in range(attempts):
        # Start no call that could not finish before the invocation's deadline (it retries instead).
        deadline.ensure(budget, _log_target(method, url))
        if on_attempt is not None:
            on_attempt()
        VENDOR_COUNTS.add(calls=1)
        try:
            response = http.request(method, url, **request_kwargs)
        except httpx.TransportError as exc:
            error = _transport_error(exc)
            error.__cause__ = exc
        else:
            classified = classify(response)
            if classified is None:
                return response
            error = classified
            if isinstance(error, ThrottledError):
                VENDOR_COUNTS.add(throttled=1)

        if not isinstance(error, RetryableError) or attempt + 1 >= attempts:
            raise error
        wait = policy.backoff(attempt)
        if error.retry_after is not None:
            wait = max(error.retry_after, wait)
        if wait > policy.max_in_process_wait or wait + budget > deadline.remaining():
            # Waiting here would burn Lambda time (or outlast the invocation); SQS redelivers instead.
            raise error
        logger.warning(
            "retrying %s after %s (attempt %d/%d, waiting %.2fs)",
            _log_target(method, url),
            error.reason,
            attempt + 1,
            attempts,
            wait,
        )
        sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover - the loop always returns or raises

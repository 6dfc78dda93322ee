from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from activation_core import http
from activation_core.errors import (
    ActivationError,
    AuthError,
    PermanentError,
    RetryableError,
    ThrottledError,
)
from activation_core.http import (
    RetryPolicy,
    classify_response,
    parse_retry_after,
    send,
    shared_client,
    validate_base_url,
)

NOW = 1_700_000_000.0
URL = "https://api.example.test/v1/things"
HOST_PATTERN = r"[a-z0-9-]+\.api\.example\.com"


def _response(status: int, *, text: str = "", headers: dict[str, str] | None = None) -> httpx.Response:
    request = httpx.Request("POST", URL, headers={"Authorization": "Bearer sekrit-token"})
    return httpx.Response(status, text=text, headers=headers, request=request)


class Script:
    """A MockTransport handler that replays responses (or raises) in order and records requests."""

    def __init__(self, *steps: int | httpx.Response | Exception) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, Exception):
            raise step
        if isinstance(step, int):
            return httpx.Response(step, json={"ok": step < 400})
        return step

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def sleep(waits: list[float]) -> Callable[[float], None]:
    return waits.append


# -- classification ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected_type", "reason"),
    [
        (200, None, None),
        (201, None, None),
        (204, None, None),
        (401, AuthError, "http_401"),
        (429, ThrottledError, "http_429"),
        (408, RetryableError, "http_408"),
        (500, RetryableError, "http_500"),
        (502, RetryableError, "http_502"),
        (503, RetryableError, "http_503"),
        (504, RetryableError, "http_504"),
        (400, PermanentError, "http_400"),
        (403, PermanentError, "http_403"),
        (404, PermanentError, "http_404"),
        (409, PermanentError, "http_409"),
        (422, PermanentError, "http_422"),
        (302, PermanentError, "http_302"),
    ],
)
def test_classification_table(status: int, expected_type: type[ActivationError] | None, reason: str) -> None:
    error = classify_response(_response(status, text="something went wrong"))
    if expected_type is None:
        assert error is None
        return
    assert type(error) is expected_type
    assert error is not None and error.reason == reason


def test_5xx_is_retryable_but_not_throttled() -> None:
    error = classify_response(_response(503))
    assert isinstance(error, RetryableError) and not isinstance(error, ThrottledError)


def test_429_carries_retry_after() -> None:
    error = classify_response(_response(429, headers={"Retry-After": "7"}))
    assert isinstance(error, ThrottledError)
    assert error.retry_after == 7.0


def test_detail_is_short_and_safe() -> None:
    body = "bad input for jane.doe@example.org " + "x" * 1000
    error = classify_response(_response(400, text=body))
    assert error is not None
    assert len(error.detail) < 260
    assert "jane.doe@example.org" not in str(error)
    assert "<email>" in error.detail
    assert "sekrit-token" not in str(error)  # request headers never reach the detail
    assert "400" in error.detail


# -- Retry-After ---------------------------------------------------------------------------------------


def test_retry_after_delta_seconds() -> None:
    assert parse_retry_after({"Retry-After": "5"}, NOW) == 5.0
    assert parse_retry_after({"retry-after": " 2.5 "}, NOW) == 2.5
    assert parse_retry_after({"Retry-After": "-3"}, NOW) == 0.0


def test_retry_after_http_date() -> None:
    at = datetime.fromtimestamp(NOW + 30, tz=UTC)
    headers = httpx.Headers({"Retry-After": format_datetime(at, usegmt=True)})
    assert parse_retry_after(headers, NOW) == pytest.approx(30.0)


def test_retry_after_date_in_the_past_is_zero() -> None:
    at = datetime.fromtimestamp(NOW - 30, tz=UTC)
    assert parse_retry_after({"Retry-After": format_datetime(at, usegmt=True)}, NOW) == 0.0


def test_retry_after_iso_8601() -> None:
    at = datetime.fromtimestamp(NOW + 12, tz=UTC).isoformat().replace("+00:00", "Z")
    assert parse_retry_after({"Retry-After": at}, NOW) == pytest.approx(12.0)


def test_rate_limit_reset_epoch_seconds() -> None:
    assert parse_retry_after({"X-RateLimit-Reset": str(int(NOW + 42))}, NOW) == pytest.approx(42.0)


def test_rate_limit_reset_epoch_milliseconds_and_delta() -> None:
    assert parse_retry_after({"x-ratelimit-reset": str(int((NOW + 9) * 1000))}, NOW) == pytest.approx(9.0)
    assert parse_retry_after({"X-RateLimit-Reset": "15"}, NOW) == 15.0


def test_retry_after_wins_over_rate_limit_reset() -> None:
    headers = {"Retry-After": "3", "X-RateLimit-Reset": str(int(NOW + 100))}
    assert parse_retry_after(headers, NOW) == 3.0


def test_retry_after_absent_or_garbage() -> None:
    assert parse_retry_after({}, NOW) is None
    assert parse_retry_after({"Retry-After": "soon"}, NOW) is None
    assert parse_retry_after({"Retry-After": "nan"}, NOW) is None


@settings(database=None)  # no .hypothesis directory in the repo
@given(st.text(max_size=40), st.text(max_size=40))
def test_retry_after_never_negative(retry_after: str, reset: str) -> None:
    value = parse_retry_after({"Retry-After": retry_after, "X-RateLimit-Reset": reset}, NOW)
    assert value is None or value >= 0.0


# -- send ---------------------------------------------------------------------------------------------


def test_retry_then_success(waits: list[float], sleep: Callable[[float], None]) -> None:
    script = Script(503, 502, 200)
    calls: list[None] = []
    response = send("GET", URL, client=script.client(), sleep=sleep, on_attempt=lambda: calls.append(None))
    assert response.status_code == 200
    assert len(script.requests) == 3
    assert len(calls) == 3
    assert len(waits) == 2
    policy = RetryPolicy()
    for index, wait in enumerate(waits):
        assert 0.0 <= wait <= min(policy.max_delay, policy.base_delay * 2**index)


def test_com_06_no_log_line_holds_a_url_whatever_the_root_level(caplog: pytest.LogCaptureFixture) -> None:
    """A URL may carry a secret (a token call's query) or a personal value (a lookup's filter values):
    httpx would log it at INFO, and Lambda's ApplicationLogLevel can lower the root logger to DEBUG."""
    caplog.set_level(logging.DEBUG)
    script = Script(200)
    send("GET", f"{URL}?client_secret=s3cr3t-value&filterValues=ada%40example.com", client=script.client())
    assert len(script.requests) == 1
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert "s3cr3t-value" not in logged and "ada" not in logged


def test_permanent_error_not_retried(waits: list[float], sleep: Callable[[float], None]) -> None:
    script = Script(400)
    with pytest.raises(PermanentError) as caught:
        send("POST", URL, client=script.client(), sleep=sleep, json={"a": 1})
    assert caught.value.reason == "http_400"
    assert len(script.requests) == 1
    assert waits == []


def test_auth_error_not_retried(waits: list[float], sleep: Callable[[float], None]) -> None:
    script = Script(401, 200)
    with pytest.raises(AuthError):
        send("GET", URL, client=script.client(), sleep=sleep)
    assert len(script.requests) == 1


def test_attempts_exhausted_raises_retryable(waits: list[float], sleep: Callable[[float], None]) -> None:
    script = Script(503)
    with pytest.raises(RetryableError) as caught:
        send("GET", URL, client=script.client(), sleep=sleep, policy=RetryPolicy(attempts=4))
    assert caught.value.reason == "http_503"
    assert len(script.requests) == 4
    assert len(waits) == 3


def test_short_retry_after_is_honoured(waits: list[float], sleep: Callable[[float], None]) -> None:
    script = Script(httpx.Response(429, headers={"Retry-After": "2"}), 200)
    response = send("GET", URL, client=script.client(), sleep=sleep)
    assert response.status_code == 200
    assert waits == [2.0]  # max(retry_after, jitter): jitter is at most 0.2 here


def test_long_retry_after_raised_at_once(waits: list[float], sleep: Callable[[float], None]) -> None:
    script = Script(httpx.Response(429, headers={"Retry-After": "60"}), 200)
    with pytest.raises(ThrottledError) as caught:
        send("GET", URL, client=script.client(), sleep=sleep)
    assert caught.value.retry_after == 60.0
    assert len(script.requests) == 1
    assert waits == []


def test_timeout_becomes_retryable(waits: list[float], sleep: Callable[[float], None]) -> None:
    script = Script(httpx.ReadTimeout("timed out"))
    with pytest.raises(RetryableError) as caught:
        send("GET", URL, client=script.client(), sleep=sleep)
    assert caught.value.reason == "timeout"
    assert len(script.requests) == 3
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)


def test_timeout_then_success(waits: list[float], sleep: Callable[[float], None]) -> None:
    script = Script(httpx.ConnectTimeout("timed out"), 200)
    assert send("GET", URL, client=script.client(), sleep=sleep).status_code == 200
    assert len(waits) == 1


def test_connection_error_becomes_retryable(sleep: Callable[[float], None]) -> None:
    script = Script(httpx.ConnectError("refused"))
    with pytest.raises(RetryableError) as caught:
        send("GET", URL, client=script.client(), sleep=sleep)
    assert caught.value.reason == "connection_error"


def test_custom_classifier(sleep: Callable[[float], None]) -> None:
    # A vendor that reports throttling inside a 200 body.
    def classify(response: httpx.Response) -> ActivationError | None:
        if response.json().get("code") == "throttled":
            return ThrottledError("vendor_throttled", retry_after=0.5)
        return classify_response(response)

    script = Script(httpx.Response(200, json={"code": "throttled"}), httpx.Response(200, json={"code": "ok"}))
    response = send("GET", URL, client=script.client(), sleep=sleep, classify=classify)
    assert response.json() == {"code": "ok"}
    assert len(script.requests) == 2


def test_retry_log_line_has_no_query_headers_or_body(
    caplog: pytest.LogCaptureFixture, sleep: Callable[[float], None]
) -> None:
    script = Script(httpx.Response(503, text="body-secret"), 200)
    with caplog.at_level(logging.WARNING, logger="activation_core.http"):
        send(
            "POST",
            URL + "/p-secret?access_token=q-secret",
            client=script.client(),
            sleep=sleep,
            headers={"Authorization": "Bearer h-secret"},
            json={"email": "b-secret"},
        )
    text = " ".join(record.getMessage() for record in caplog.records)
    assert "retrying" in text
    for leaked in ("q-secret", "h-secret", "b-secret", "body-secret", "p-secret"):
        assert leaked not in text


def test_request_kwargs_are_passed_through(sleep: Callable[[float], None]) -> None:
    script = Script(200)
    send("POST", URL, client=script.client(), sleep=sleep, json={"a": 1}, headers={"X-Test": "1"})
    request = script.requests[0]
    assert request.headers["X-Test"] == "1"
    assert request.content == b'{"a":1}'


# -- the shared client ----------------------------------------------------------------------------------


@pytest.fixture
def fresh_shared_client() -> Iterator[None]:
    http.reset_shared_client()
    yield
    http.reset_shared_client()


def test_shared_client_is_one_per_container(fresh_shared_client: None) -> None:
    client = shared_client()
    assert shared_client() is client
    assert client.follow_redirects is False
    assert client.timeout.connect == 3.0
    assert client.timeout.read == 10.0


def test_send_defaults_to_the_shared_client(
    fresh_shared_client: None, monkeypatch: pytest.MonkeyPatch, sleep: Callable[[float], None]
) -> None:
    script = Script(200)
    monkeypatch.setattr(http, "_client", script.client())
    assert send("GET", URL, sleep=sleep).status_code == 200
    assert len(script.requests) == 1


# -- validate_base_url ---------------------------------------------------------------------------------


def _validate(url: str, *, allow_loopback: bool = False) -> str:
    return validate_base_url(url, host_pattern=HOST_PATTERN, allow_loopback=allow_loopback)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://abc-123.api.example.com", "https://abc-123.api.example.com"),
        ("https://abc-123.api.example.com/", "https://abc-123.api.example.com"),
        ("https://abc-123.api.example.com/rest/v1/", "https://abc-123.api.example.com/rest/v1"),
        ("HTTPS://ABC.api.example.com:443/x", "https://abc.api.example.com/x"),
        ("https://abc.api.example.com:8443", "https://abc.api.example.com:8443"),
    ],
)
def test_base_url_accepted_and_normalised(url: str, expected: str) -> None:
    assert _validate(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://abc.api.example.com",  # https required
        "ftp://abc.api.example.com",
        "abc.api.example.com",
        "https://evil.example.net",  # host pattern
        "https://abc.api.example.com.evil.net",  # full match, not prefix
        "https://x.abc.api.example.com",
        "https://10.0.0.1",
        "https://abc.api.example.com/?a=1",
        "https://abc.api.example.com/#frag",
        "https://abc.api.example.com/../admin",
        "https://abc.api.example.com:99999",
        "https://abc.api.example.com/a b",
        "",
    ],
)
def test_base_url_refused(url: str) -> None:
    with pytest.raises(PermanentError) as caught:
        _validate(url, allow_loopback=True)
    assert caught.value.reason == "invalid_base_url"


def test_base_url_with_userinfo_refused_without_echoing_it() -> None:
    with pytest.raises(PermanentError) as caught:
        _validate("https://user:hunter2@abc.api.example.com")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:9000/", "https://127.0.0.1:8443"])
def test_loopback_only_with_flag(url: str) -> None:
    with pytest.raises(PermanentError):
        _validate(url)
    assert _validate(url, allow_loopback=True) == url.rstrip("/")


def test_a_5xx_waits_for_retry_after_only_not_for_the_rate_limit_reset() -> None:
    reset = str(int(datetime.now(UTC).timestamp()) + 3600)
    error = http.classify_response(httpx.Response(502, headers={"X-RateLimit-Reset": reset}))
    assert error is not None and error.reason == "http_502"
    assert error.retry_after is None  # type: ignore[attr-defined]
    throttle = http.classify_response(httpx.Response(429, headers={"X-RateLimit-Reset": reset}))
    assert throttle.retry_after is not None and throttle.retry_after > 3000  # type: ignore[union-attr]


class _Context:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_no_call_starts_that_cannot_finish_before_the_invocation_s_deadline(sleep: Any) -> None:
    from activation_core import deadline

    script = Script(httpx.Response(503, headers={"Retry-After": "1"}), 200)
    client = httpx.Client(transport=httpx.MockTransport(script), timeout=httpx.Timeout(5.0))
    # Enough for one attempt (5 s + 1 s margin) but not for the 1 s wait and a second one.
    deadline.begin(_Context(int((deadline.RESERVE_SECONDS + 6.5) * 1000)))
    try:
        with pytest.raises(RetryableError) as err:
            http.send("POST", URL, client=client, sleep=sleep)
        assert err.value.reason == "http_503" and len(script.requests) == 1
        deadline.begin(_Context(int((deadline.RESERVE_SECONDS + 5.5) * 1000)))
        with pytest.raises(deadline.DeadlineError) as late:
            http.send("POST", URL, client=client, sleep=sleep)
        assert late.value.reason == "deadline" and len(script.requests) == 1
    finally:
        deadline.end()
    assert http.send("POST", URL, client=client, sleep=sleep).status_code == 200  # no invocation, no deadline

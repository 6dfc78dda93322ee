"""Marketo's codes onto the layer's error taxonomy, per-record results, the daily reset (apis.md 1.7)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from activation_core.errors import AuthError, PermanentError, RetryableError, ThrottledError
from marketo.client import (
    DailyQuotaExceeded,
    PayloadTooLarge,
    UriTooLong,
    _record_status,
    classify,
    error_for_code,
    next_quota_reset,
)
from marketo.models import build_lead, dedupe_value


def response(status: int = 200, body: Any = None) -> httpx.Response:
    return httpx.Response(status, json=body, request=httpx.Request("POST", "https://x.mktorest.com/rest"))


def failure(code: str, message: str = "m") -> httpx.Response:
    return response(200, {"requestId": "r", "success": False, "errors": [{"code": code, "message": message}]})


def test_success_true_is_the_only_success() -> None:
    assert classify(response(200, {"success": True, "result": []})) is None
    body: object
    for body in ({"success": False}, {"result": []}, {"success": "true"}, [], None):
        assert isinstance(classify(response(200, body)), RetryableError), body


@pytest.mark.parametrize("code", ["601", "602"])
def test_token_codes_ask_for_one_refresh(code: str) -> None:
    error = classify(failure(code))
    assert isinstance(error, AuthError) and error.reason == f"marketo_{code}"


@pytest.mark.parametrize(("code", "seconds"), [("606", 20.0), ("615", 2.0), ("1029", 60.0)])
def test_throttles_carry_a_backoff(code: str, seconds: float) -> None:
    error = classify(failure(code))
    assert isinstance(error, ThrottledError) and error.retry_after == seconds


def test_the_daily_quota_waits_for_midnight_cst() -> None:
    noon_utc = datetime(2026, 11, 28, 12, 0, tzinfo=UTC).timestamp()
    error = error_for_code("607", "Daily quota reached", now=noon_utc)
    assert isinstance(error, DailyQuotaExceeded)
    # 12:00 UTC is 06:00 CST: 18 hours to the reset at 00:00 CST (06:00 UTC the next day).
    assert error.retry_after == pytest.approx(18 * 3600)
    assert datetime.fromtimestamp(next_quota_reset(noon_utc), UTC) == datetime(2026, 11, 29, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "code",
    [
        "603",
        "605",
        "609",
        "610",
        "612",
        "613",
        "616",
        "701",
        "702",
        "709",
        "714",
        "718",
        "799",
        "1003",
        "1013",
    ],
)
def test_permanent_codes_are_rejected(code: str) -> None:
    error = classify(failure(code, "Access denied"))
    assert type(error) is PermanentError and error.reason == f"marketo_{code}"
    assert error.detail == "Access denied"


@pytest.mark.parametrize(
    "code", ["500", "502", "604", "608", "611", "614", "713", "719", "1016", "1019", "650", "999", ""]
)
def test_transient_and_unknown_codes_retry(code: str) -> None:
    error = classify(failure(code))
    assert type(error) is RetryableError


def test_http_413_and_414_are_told_apart_for_splitting_and_post() -> None:
    assert isinstance(classify(response(413)), PayloadTooLarge)
    assert isinstance(classify(response(414)), UriTooLong)
    assert isinstance(classify(response(503)), RetryableError)
    assert isinstance(classify(response(401)), AuthError)
    assert isinstance(classify(response(403)), PermanentError)


def test_error_details_never_carry_a_plain_email() -> None:
    error = error_for_code("1006", "Field 'x' not found for ada@example.com")
    assert "ada@example.com" not in error.detail


def test_per_record_results_read_reasons_and_the_single_reason_of_the_openapi() -> None:
    listed = _record_status({"status": "skipped", "reasons": [{"code": "1004", "message": "Lead not found"}]})
    single = _record_status({"id": 5, "status": "skipped", "reason": {"code": "1007", "message": "Multiple"}})
    done = _record_status({"id": 7, "status": "created"})
    assert (listed.code, listed.lead_id) == ("1004", None)
    assert (single.code, single.lead_id) == ("1007", 5)
    assert (done.status, done.lead_id, done.code) == ("created", 7, "")
    assert _record_status("garbage").status == "skipped"


def test_dedupe_values_must_be_usable_as_filter_values() -> None:
    assert dedupe_value(" Ada@Example.com ") == "Ada@Example.com"
    assert dedupe_value(42) == "42"
    for bad in ("", "a,b", True, None, {"x": 1}, "x" * 256):
        with pytest.raises(PermanentError):
            dedupe_value(bad)


def test_a_lead_carries_the_dedupe_field_and_scalar_fields_only() -> None:
    lead = build_lead({"firstName": " Ada ", "numberOfEmployees": 12}, "email", "ada@example.com")
    assert lead == {"firstName": "Ada", "numberOfEmployees": 12, "email": "ada@example.com"}
    with pytest.raises(PermanentError, match="single value"):
        build_lead({"title": ["a", "b"]}, "email", "ada@example.com")
    with pytest.raises(PermanentError, match="ASCII"):
        build_lead({"email": "adä@example.com"}, "crmId", "CRM-1")

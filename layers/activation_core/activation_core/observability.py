"""Powertools Logger, Metrics and Tracer, set up once for every function.

Personal values and secrets stay out of log records by construction (COM-06):
- code logs structured fields (reasons, field paths, counts, error types), never a record's values;
- an exception's message reaches a log only if it is an `ActivationError` (built from reasons and
  field paths) or a pydantic `ValidationError` (reduced to field paths and error types); any other
  exception is logged by its type and traceback frames only: a library's message may quote its input
  (pydantic's `input_value=`, a URL with a query, a response body);
- as a safety net, every string of the structured record (message, extra fields, exception text) is
  redacted *before* it is serialised, so JSON escaping cannot hide a value: e-mail addresses (plain,
  quoted local part, internationalised, URL-encoded, JSON- or HTML-escaped `@`) and every registered
  secret value (any type; also its JSON-escaped and URL-encoded forms; a short one as a whole token).

Powertools' data masking utility erases known fields of a payload by JSONPath; no payload is logged
here, and free text is what needs masking, so it does not fit this job (and would add jsonpath-ng to
the layer).

The Tracer is built on first use (`start_tracing()`), not at import: building it imports the X-Ray SDK
and patches botocore, which loads botocore's client, about a third of a handler's cold import
(issue 18; see BENCHMARKS.md "Cold start"). The first AWS client, the first vendor HTTP client and the
first invocation of a destination handler start it, so every outbound call is still traced.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import traceback
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from pydantic import ValidationError

from activation_core.errors import ActivationError

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

# An "@" as it appears in text: plain, URL-encoded, JSON \u-escaped, HTML entity.
_AT = r"(?:@|%40|\\u0040|&#64;|&#x40;)"
_LOCAL = (
    r'(?:"(?:[^"\\\r\n]|\\.)+"'  # quoted local part: "john doe"@example.com
    r'|\\"(?:[^"\\]|\\[^"])+\\"'  # the same, JSON-escaped inside a string: \"john doe\"@example.com
    r"|[\w.!#$%&'*+/=?^`{|}~-]+)"  # dot-atom; \w includes non-ASCII letters (internationalised)
)
_DOMAIN = r"(?:[\w-]+(?:\.|%2[eE]))+(?:xn--[A-Za-z0-9-]+|[^\W\d_]{2,})"  # IDN and punycode TLDs too
_EMAIL = re.compile(_LOCAL + _AT + _DOMAIN)

# A secret shorter than this is masked only as a whole token (not inside a longer word or number);
# one of 1-2 characters cannot be masked without masking ordinary text, and is no secret anyway.
_WHOLE_TOKEN_BELOW = 6
IDENTIFIER_MIN_LENGTH = _WHOLE_TOKEN_BELOW
_SHORTEST_MASKED = 3
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_secret_pattern: re.Pattern[str] | None = None

EMAIL_MASK = "<email:redacted>"
SECRET_MASK = "<secret:redacted>"  # noqa: S105 - a placeholder


def _as_text(value: object) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int | float):
        return str(value)
    return None


def _forms(text: str) -> set[str]:
    """The value and the encodings it takes in logged text (JSON string, URL query)."""
    return {text, json.dumps(text)[1:-1], quote(text, safe=""), quote_plus(text)}


def register_secret(*values: object, min_length: int = _SHORTEST_MASKED) -> None:
    """Mask these values in every future log line (call it as soon as a secret is read or minted).

    Any scalar counts: a numeric client secret is as secret as a string one. `min_length` lets a caller
    register values that are only sensitive when long (an org or profile id next to the credentials).
    """
    global _secret_pattern
    fresh: set[str] = set()
    for value in values:
        text = _as_text(value)
        if text is not None and len(text) >= max(min_length, _SHORTEST_MASKED):
            fresh |= {form for form in _forms(text) if len(form) >= _SHORTEST_MASKED}
    with _secrets_lock:
        if fresh <= _secrets:
            return
        _secrets.update(fresh)
        # Longest first, so a secret containing another is masked whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _secret_pattern = re.compile("|".join(_secret_regex(s) for s in ordered))


def _secret_regex(secret: str) -> str:
    if len(secret) >= _WHOLE_TOKEN_BELOW:
        return re.escape(secret)
    return rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])"


def redact(text: str) -> str:
    """Masks registered secrets and e-mail addresses in a text."""
    pattern = _secret_pattern
    if pattern is not None:
        text = pattern.sub(SECRET_MASK, text)
    return _EMAIL.sub(EMAIL_MASK, text)


def redact_value(value: Any) -> Any:
    """`redact` applied to every string (and every number equal to a secret) of a structure."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {redact(str(k)): redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool) and str(value) in _secrets:
        return SECRET_MASK
    return value


def describe_exception(exc: BaseException) -> str:
    """One line naming an exception without quoting any input it may carry."""
    name = type(exc).__name__
    if isinstance(exc, ActivationError):
        return f"{name}: {exc}"  # built from reasons and field paths, never from values
    if isinstance(exc, ValidationError):
        fields = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['type']}"
            for e in exc.errors(include_input=False, include_url=False)[:5]
        )
        return f"{name}: {exc.error_count()} error(s): {fields}"
    return f"{type(exc).__module__}.{type(exc).__qualname__} (message withheld: it may quote its input)"


def safe_traceback(exc: BaseException) -> str:
    """The traceback (frames and exception types) of an exception and the ones it was raised from."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    blocks = [
        "Traceback (most recent call last):\n"
        + "".join(traceback.format_tb(e.__traceback__))
        + describe_exception(e)
        for e in reversed(chain)
    ]
    return "\n\nThe above exception led to the following:\n\n".join(blocks)


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter: exceptions without their messages (unless ours), and every value
    of the structured record redacted before it becomes JSON."""

    def formatException(self, ei: Any) -> str:
        exc = ei[1] if isinstance(ei, tuple) else None
        return safe_traceback(exc) if isinstance(exc, BaseException) else ""

    def serialize(self, log: Any) -> str:
        return super().serialize(log=redact_value(log))


# Powertools' structured stack trace carries each exception's message: left out; `exception` holds ours.
logger = Logger(logger_formatter=RedactingFormatter(serialize_stacktrace=False))
metrics = Metrics()

# Every outbound call is an AWS SDK call (botocore) or a vendor call (httpx): X-Ray patches those two
# rather than its whole list (sqlite3, http.client, requests, ...), which would import them for nothing.
TRACED_MODULES = ("botocore", "httpx")
_tracer: Tracer | None = None
_tracer_lock = threading.Lock()


def start_tracing() -> Tracer:
    """The process's Powertools Tracer, built (and botocore and httpx patched) on the first call.

    Call it before creating an AWS or HTTP client: X-Ray instruments httpx by replacing `httpx.Client`,
    so only clients created afterwards are traced (botocore is patched on the class, whenever). Outside
    Lambda, or with POWERTOOLS_TRACE_DISABLED, Powertools builds a disabled tracer that patches nothing.
    """
    global _tracer
    if _tracer is None:
        with _tracer_lock:
            if _tracer is None:
                from aws_lambda_powertools import Tracer

                _tracer = Tracer(patch_modules=TRACED_MODULES)
    return _tracer


def capture_lambda_handler(
    handler: Callable[[Any, Any], Any],
) -> Callable[[Any, Any], Any]:
    """Powertools' `capture_lambda_handler` (ColdStart annotation, errors as metadata), applied on the
    first invocation so the import does not build the Tracer. Responses are not captured: they hold
    message ids only; keep traces lean."""
    traced: Callable[[Any, Any], Any] | None = None

    @functools.wraps(handler)
    def lambda_handler(event: Any, context: Any) -> Any:
        nonlocal traced
        if traced is None:
            traced = start_tracing().capture_lambda_handler(handler, capture_response=False)
        return traced(event, context)

    return lambda_handler

"""Powertools Logger, Metrics and Tracer, set up once for every function.

Every formatted log line passes through a redactor: plain emails and any registered secret value
(credentials, access and refresh tokens) are masked, whatever code path produced the line (COM-06).

The Tracer is built on first use (`start_tracing()`), not at import: building it imports the X-Ray SDK
and patches botocore, which loads botocore's client, about a third of a handler's cold import
(issue 18; see BENCHMARKS.md "Cold start"). The first AWS client, the first vendor HTTP client and the
first invocation of a destination handler start it, so every outbound call is still traced.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

_MIN_SECRET_LENGTH = 6
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_secret_pattern: re.Pattern[str] | None = None

EMAIL_MASK = "<email:redacted>"
SECRET_MASK = "<secret:redacted>"  # noqa: S105 - a placeholder


def register_secret(*values: object) -> None:
    """Mask these values in every future log line (call it as soon as a secret is read or minted)."""
    global _secret_pattern
    fresh = {v for v in values if isinstance(v, str) and len(v) >= _MIN_SECRET_LENGTH}
    with _secrets_lock:
        if fresh <= _secrets:
            return
        _secrets.update(fresh)
        # Longest first, so a secret containing another is masked whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _secret_pattern = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: str) -> str:
    pattern = _secret_pattern
    if pattern is not None:
        text = pattern.sub(SECRET_MASK, text)
    return _EMAIL.sub(EMAIL_MASK, text)


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter, with secrets and emails masked in the final line."""

    def format(self, record: Any) -> str:
        return redact(super().format(record))


logger = Logger(logger_formatter=RedactingFormatter())
metrics = Metrics()

# Every outbound call is an AWS SDK call (botocore) or a vendor call (httpx): X-Ray patches those two
# rather than its whole list (sqlite3, http.client, requests, ...), which would import them for nothing.
TRACED_MODULES = ("botocore", "httpx")
_tracer: list[Tracer] = []
_tracer_lock = threading.Lock()


def start_tracing() -> Tracer:
    """The process's Powertools Tracer, built (and botocore and httpx patched) on the first call.

    Call it before creating an AWS or HTTP client: X-Ray instruments httpx by replacing `httpx.Client`,
    so only clients created afterwards are traced (botocore is patched on the class, whenever). Outside
    Lambda, or with POWERTOOLS_TRACE_DISABLED, Powertools builds a disabled tracer that patches nothing.
    """
    if not _tracer:
        with _tracer_lock:
            if not _tracer:
                from aws_lambda_powertools import Tracer

                _tracer.append(Tracer(patch_modules=TRACED_MODULES))
    return _tracer[0]


def capture_lambda_handler(
    handler: Callable[[Any, Any], Any],
) -> Callable[[Any, Any], Any]:
    """Powertools' `capture_lambda_handler` (ColdStart annotation, errors as metadata), applied on the
    first invocation so the import does not build the Tracer. Responses are not captured: they hold
    message ids only; keep traces lean."""
    traced: list[Callable[[Any, Any], Any]] = []

    @functools.wraps(handler)
    def lambda_handler(event: Any, context: Any) -> Any:
        if not traced:
            traced.append(start_tracing().capture_lambda_handler(handler, capture_response=False))
        return traced[0](event, context)

    return lambda_handler

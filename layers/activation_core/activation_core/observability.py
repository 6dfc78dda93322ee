"""Powertools Logger, Metrics and Tracer, set up once for every function.

Every formatted log line passes through a redactor: plain emails and any registered secret value
(credentials, access and refresh tokens) are masked, whatever code path produced the line (COM-06).
"""

from __future__ import annotations

import re
import threading
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
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
tracer = Tracer()

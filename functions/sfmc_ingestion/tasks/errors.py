"""Typed task errors: the names the state machine's Retry and Catch match on (Lambda reports the
exception's class name as the error). The layer's taxonomy maps onto them here, in one place.

| task error       | from                                           | state machine                          |
| ---------------- | ---------------------------------------------- | -------------------------------------- |
| SfmcThrottled    | ThrottledError (429, errorcode 50100 / 50200)  | Retry, 5 s doubling, jittered, 6 times |
| SfmcTransient    | RetryableError (5xx, timeouts, AWS hiccups)    | Retry, 2 s doubling, jittered, 4 times |
| SfmcAuthFailed   | AuthError, auth_failed_after_refresh           | no retry: the data extension fails     |
| SfmcPermanent    | PermanentError, ConfigError (400/403/404/...)  | no retry: the data extension fails     |
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from activation_core.errors import ActivationError, AuthError, PermanentError, RetryableError, ThrottledError
from activation_core.observability import logger

F = TypeVar("F", bound=Callable[..., Any])


class SfmcTaskError(Exception):
    """Base class; the message is the Step Functions `Cause` an operator reads."""


class SfmcThrottled(SfmcTaskError):
    pass


class SfmcTransient(SfmcTaskError):
    pass


class SfmcPermanent(SfmcTaskError):
    pass


class SfmcAuthFailed(SfmcTaskError):
    pass


def task_error(error: ActivationError, context: str = "") -> SfmcTaskError:
    message = f"{context}: {error.reason}" if context else error.reason
    if error.detail:
        message = f"{message}: {error.detail}"
    if isinstance(error, ThrottledError):
        wait = f" (server asked to wait {error.retry_after:.0f} s)" if error.retry_after else ""
        return SfmcThrottled(message + wait)
    if isinstance(error, AuthError) or error.reason == "auth_failed_after_refresh":
        return SfmcAuthFailed(message)
    if isinstance(error, RetryableError):
        return SfmcTransient(message)
    if isinstance(error, PermanentError):
        return SfmcPermanent(message)
    return SfmcPermanent(message)  # ConfigError and any other non-transient error


def translate_errors(context: Callable[..., str] | None = None) -> Callable[[F], F]:
    """Raise the typed task error for any layer error escaping the wrapped task function."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except ActivationError as exc:
                where = context(*args, **kwargs) if context is not None else ""
                error = task_error(exc, where)
                logger.warning(
                    "task failed", extra={"error": type(error).__name__, "reason": exc.reason, "where": where}
                )
                raise error from None

        return wrapper  # type: ignore[return-value]

    return decorate

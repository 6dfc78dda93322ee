"""Typed task errors the state machine retries on; everything transient maps onto SnapshotTransient."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from activation_core.errors import RetryableError
from activation_core.observability import logger

F = TypeVar("F", bound=Callable[..., Any])


class SnapshotTransient(Exception):
    """An AWS call or a publish failed for now: Step Functions retries the task (the task is idempotent)."""


def transient_errors(handler: F) -> F:
    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except (BotoCoreError, ClientError, RetryableError) as exc:
            logger.warning("snapshot task failed for now", extra={"error_type": type(exc).__name__})
            raise SnapshotTransient(type(exc).__name__) from exc

    return wrapper  # type: ignore[return-value]

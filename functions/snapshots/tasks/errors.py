"""Typed task errors the state machine retries on: everything transient maps onto SnapshotTransient, an
audience held by another run onto SnapshotAudienceBusy, a lost lease onto SnapshotLeaseLost."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from activation_core.errors import RetryableError
from activation_core.observability import logger
from snapshots.state import AudienceBusy, LeaseLost

F = TypeVar("F", bound=Callable[..., Any])


class SnapshotTransient(Exception):
    """An AWS call or a publish failed for now: Step Functions retries the task (the task is idempotent)."""


class SnapshotAudienceBusy(Exception):
    """Another run of the audience holds it: Step Functions retries Prepare (a bounded wait), then the run
    fails with this error, naming the holder."""


class SnapshotLeaseLost(Exception):
    """The run's lease on its audience expired and another run took it: the run fails (not retried)."""


def transient_errors(handler: F) -> F:
    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except AudienceBusy as exc:
            logger.info("snapshot audience busy", extra={"detail": str(exc)})
            raise SnapshotAudienceBusy(str(exc)) from exc
        except LeaseLost as exc:
            logger.warning("snapshot lease lost", extra={"detail": str(exc)})
            raise SnapshotLeaseLost(str(exc)) from exc
        except (BotoCoreError, ClientError, RetryableError) as exc:
            logger.warning("snapshot task failed for now", extra={"error_type": type(exc).__name__})
            raise SnapshotTransient(type(exc).__name__) from exc

    return wrapper  # type: ignore[return-value]

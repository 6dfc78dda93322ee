"""The record-outcome model: every record ends delivered, skipped, rejected or retry.

`BatchSummary` keeps the books so that received = delivered + skipped + rejected + retry always holds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from activation_core.errors import ActivationError, AuthError, PermanentError, RetryableError, ThrottledError

_DETAIL_LIMIT = 500


class Kind(StrEnum):
    DELIVERED = "delivered"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    RETRY = "retry"


# When one record fans out to several destination instances, the record takes the most urgent
# outcome: a retry re-sends to all (vendor upserts are idempotent), a rejection goes to the DLQ.
_PRECEDENCE = {Kind.RETRY: 3, Kind.REJECTED: 2, Kind.DELIVERED: 1, Kind.SKIPPED: 0}


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Kind
    reason: str = ""
    detail: str = ""
    retry_after: float | None = None
    # A retry that only waits (a rate limit, a vendor's reset or quota: ThrottledError), not a failure:
    # it is requeued rather than counted against the queue's maxReceiveCount (activation_core.batch).
    waiting: bool = False

    @classmethod
    def delivered(cls, detail: str = "") -> Outcome:
        return cls(Kind.DELIVERED, "delivered", detail[:_DETAIL_LIMIT])

    @classmethod
    def skipped(cls, reason: str, detail: str = "") -> Outcome:
        return cls(Kind.SKIPPED, reason, detail[:_DETAIL_LIMIT])

    @classmethod
    def rejected(cls, reason: str, detail: str = "") -> Outcome:
        return cls(Kind.REJECTED, reason, detail[:_DETAIL_LIMIT])

    @classmethod
    def retry(
        cls, reason: str, detail: str = "", retry_after: float | None = None, *, waiting: bool = False
    ) -> Outcome:
        return cls(Kind.RETRY, reason, detail[:_DETAIL_LIMIT], retry_after, waiting)

    @classmethod
    def from_error(cls, error: ActivationError) -> Outcome:
        """Map the error taxonomy onto outcomes (an auth error reaching here already had its refresh)."""
        if isinstance(error, RetryableError):
            waiting = isinstance(error, ThrottledError)
            return cls.retry(error.reason, error.detail, error.retry_after, waiting=waiting)
        if isinstance(error, PermanentError):
            return cls.rejected(error.reason, error.detail)
        if isinstance(error, AuthError):
            return cls.retry(error.reason, error.detail)
        return cls.retry(error.reason, error.detail)

    def with_context(self, prefix: str) -> Outcome:
        """The same outcome with `prefix` before the detail (e.g. the destination instance)."""
        return Outcome(
            self.kind, self.reason, f"{prefix}: {self.detail}"[:_DETAIL_LIMIT], self.retry_after, self.waiting
        )


def combine(outcomes: Iterable[Outcome]) -> Outcome:
    """One outcome for a record sent to several instances (no instance at all: skipped)."""
    items = list(outcomes)
    if not items:
        return Outcome.skipped("no_destination", "no enabled destination instance of this type")
    top = max(items, key=lambda o: _PRECEDENCE[o.kind])
    if len(items) == 1:
        return top
    same = [o for o in items if o.kind == top.kind]
    reasons = sorted({o.reason for o in same})
    details = "; ".join(o.detail for o in same if o.detail)
    retry_after = max((o.retry_after or 0.0 for o in same), default=0.0) or None
    # Waiting only if every instance that retries is waiting: one real failure makes it a failure.
    waiting = all(o.waiting for o in same)
    return Outcome(top.kind, ",".join(reasons), details[:_DETAIL_LIMIT], retry_after, waiting)


@dataclass
class BatchSummary:
    received: int = 0
    delivered: int = 0
    skipped: int = 0
    rejected: int = 0
    retry: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: Outcome) -> None:
        self.received += 1
        setattr(self, outcome.kind.value, getattr(self, outcome.kind.value) + 1)
        self.reasons[f"{outcome.kind.value}:{outcome.reason}"] += 1

    @property
    def balanced(self) -> bool:
        return self.received == self.delivered + self.skipped + self.rejected + self.retry

    def as_dict(self) -> dict[str, object]:
        return {
            "received": self.received,
            "delivered": self.delivered,
            "skipped": self.skipped,
            "rejected": self.rejected,
            "retry": self.retry,
            "reasons": dict(self.reasons),
        }

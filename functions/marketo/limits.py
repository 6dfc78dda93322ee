"""Marketo's limits, shared by every connection to one instance (Munchkin ID): calls per 20-s window
and concurrent calls, kept in the state table (the layer's `RateBudget` and `ConcurrencySlots`), and
the daily quota (607) that blocks the budget until Marketo's reset.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

from activation_core.rate_budget import ConcurrencySlots, RateBudget, Window
from marketo.client import CallGate
from marketo.models import RATE_LIMIT_SECONDS, MarketoSettings

logger = logging.getLogger(__name__)

# How long one call waits in-process for budget, and one invocation for a slot, before its records go
# back to SQS (hidden until `retry_after`).
BUDGET_WAIT = 8.0
SLOT_WAIT = 5.0
SLOT_POLL = 0.5
# The budget counts a call when it is taken, right before the request; Marketo when it arrives. A
# second of margin on the window absorbs that gap: no 20-s window at Marketo exceeds the limit.
WINDOW_MARGIN = 1.0
SLOT_LEASE = 150.0  # longer than an invocation (function timeout): a crashed holder frees its slot

MetricSink = Callable[[str, float], None]


def emit_metric(name: str, value: float) -> None:
    from aws_lambda_powertools.metrics import MetricUnit

    from activation_core.observability import metrics

    try:
        metrics.add_metric(name, MetricUnit.Count, value)
    except Exception as exc:  # monitoring must never fail delivery
        logger.warning("metric %s not recorded (%s)", name, type(exc).__name__)


def call_gate(
    table: str,
    settings: MarketoSettings,
    *,
    dynamodb: Any | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    emit_metric: MetricSink = emit_metric,
) -> CallGate:
    """The gate every call of one Marketo instance passes: a slot per invocation, budget per call."""
    key = f"marketo#{settings.munchkin_id}"

    def jittered_sleep(seconds: float) -> None:
        sleep(_jitter(seconds))

    budget = RateBudget(
        table,
        key,
        Window(settings.calls_per_window, RATE_LIMIT_SECONDS + WINDOW_MARGIN),
        dynamodb=dynamodb,
        clock=clock,
        sleep=jittered_sleep,
    )
    slots = ConcurrencySlots(
        table,
        key,
        settings.concurrent_calls,
        lease_seconds=SLOT_LEASE,
        dynamodb=dynamodb,
        clock=clock,
        sleep=jittered_sleep,
        poll_interval=SLOT_POLL,
    )

    def block_until(epoch_seconds: float) -> None:
        emit_metric("DailyQuotaExceeded", 1.0)
        logger.warning("Marketo daily quota reached for %s; calls resume at %.0f", key, epoch_seconds)
        budget.block_until(epoch_seconds)

    return CallGate(
        slot=lambda: slots.hold(max_wait=SLOT_WAIT),
        take=lambda: budget.acquire(1, max_wait=BUDGET_WAIT),
        block_until=block_until,
    )


def _jitter(seconds: float) -> float:
    # Invocations waiting for the same refill would all wake at once and collide on the budget item;
    # waking a little later, spread out, costs nothing (the budget re-checks) and avoids the herd.
    return seconds + random.uniform(0.0, min(0.5, seconds / 4))

"""What sending a number of records to a vendor costs at the least: its API calls and the time its rate
limits imply. Each destination declares its own (`call_plan(instance)` in its `service.py`, from the
constants and settings its connector runs with); the CLI estimates a backfill with it and the benches
hold the connectors' measured calls to it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `calls` calls per `seconds` (a vendor's published limit, or this connection's share)."""

    calls: int
    seconds: float
    name: str

    def seconds_for(self, calls: int) -> float:
        return calls / self.calls * self.seconds


@dataclass(frozen=True, slots=True)
class CallPlan:
    """The fewest calls: one call of each type per `records_per_call` records, or `per_group[type]`
    of them where one call cannot carry a group (e.g. values spread over requests under a URI limit)."""

    records_per_call: int
    call_types: tuple[str, ...]
    limits: tuple[RateLimit, ...] = ()
    per_group: Mapping[str, int] = field(default_factory=dict)

    def calls(self, records: int) -> int:
        return sum(self.calls_by_type(records).values())

    def calls_by_type(self, records: int) -> dict[str, int]:
        groups = math.ceil(records / self.records_per_call)
        return {kind: groups * self.per_group.get(kind, 1) for kind in self.call_types}

    def seconds(self, records: int) -> float | None:
        """The time the vendor's limits imply at their steady rate: the finest limit paces the calls,
        and a coarser one (a daily quota) counts once the calls exceed it. None when the vendor
        publishes no limit (then the stack's own throughput bounds it)."""
        limit = self.binding_limit(records)
        return None if limit is None else limit.seconds_for(self.calls(records))

    def binding_limit(self, records: int) -> RateLimit | None:
        if not self.limits:
            return None
        calls = self.calls(records)
        finest = min(self.limits, key=lambda limit: limit.seconds)
        exceeded = [limit for limit in self.limits if calls > limit.calls]
        return max((finest, *exceeded), key=lambda limit: limit.seconds_for(calls))

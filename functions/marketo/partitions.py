"""The lead partition new leads go to (MKT-01, MKT-07), checked when the instance connects.

The document has the user pick a partition ID "associated with the chosen workspace". Marketo's REST
API lists partitions (`GET /rest/v1/leads/partitions.json`: id, name, description) but says nothing of
workspaces: which workspace a partition is assigned to is set in Marketo's Admin and not exposed, so
the check is that the partition exists for this API user (a partition its role cannot use is not
listed, or refused 1008 on create). The setting may name the partition or give its id; Sync Leads
takes the name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from activation_core.errors import ConfigError
from marketo.client import MarketoClient, Partition
from marketo.models import MarketoSettings

# The partition list changes rarely; Marketo suggests caching it for a day.
PARTITIONS_TTL = 86_400.0


@dataclass(frozen=True)
class _Known:
    partitions: tuple[Partition, ...]
    fetched_at: float


# Module level: a warm container reads an instance's partitions once a day.
_known: dict[str, _Known] = {}


def clear_cache() -> None:
    _known.clear()


def resolve_partition(
    client: MarketoClient,
    munchkin_id: str,
    instance_id: str,
    chosen: str,
    *,
    clock: Callable[[], float] = time.time,
) -> Partition:
    """The configured partition (by name, else by id), or ConfigError naming the ones that exist."""
    now = clock()
    known = _known.get(munchkin_id)
    if known is None or now - known.fetched_at > PARTITIONS_TTL:
        known = _known[munchkin_id] = _Known(tuple(client.partitions()), now)
    by_name = next((p for p in known.partitions if p.name == chosen), None)
    by_id = next((p for p in known.partitions if chosen.isdigit() and p.id == int(chosen)), None)
    found = by_name or by_id
    if found is None:
        names = ", ".join(sorted(f"'{p.name}' ({p.id})" for p in known.partitions)) or "none"
        raise ConfigError(
            instance_id,
            "settings.partition",
            f"no lead partition named or numbered '{chosen}' for this API user; partitions: {names}",
        )
    return found


class ChosenPartition:
    """The partition of one instance's new leads: resolved at most once (name or id -> name)."""

    def __init__(
        self,
        client: MarketoClient,
        settings: MarketoSettings,
        instance_id: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._settings = settings
        self._instance_id = instance_id
        self._clock = clock
        self._name: str | None = None

    def check(self) -> None:
        """Resolve the configured partition once; ConfigError when Marketo has none such (MKT-01)."""
        if self._name is not None:
            return
        if self._settings.partition is None or not self._settings.sync_type.syncs_profiles:
            self._name = self._settings.partition_name
            return
        found = resolve_partition(
            self._client,
            self._settings.munchkin_id,
            self._instance_id,
            self._settings.partition,
            clock=self._clock,
        )
        self._name = found.name

    @property
    def name(self) -> str | None:
        """The partition name Sync Leads takes (None: Marketo's Default)."""
        return self._name or self._settings.partition_name

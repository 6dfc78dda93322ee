"""The environment the snapshot tasks run with (template.yaml), parsed once."""

from __future__ import annotations

import os
from functools import cache

from pydantic import BaseModel, ConfigDict


class SnapshotSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    bucket: str = ""
    state_table_name: str = ""
    config_parameter_name: str = ""
    event_bus_name: str = ""
    partition_target: int = 50_000
    config_cache_seconds: int = 60
    publish_workers: int = 4
    reconcile_deadline_hours: float = 24.0
    # destination type -> the entity it takes (the manifest's `entity`; `make template` writes it)
    destination_entities: dict[str, str] = {}

    @classmethod
    def from_env(cls) -> SnapshotSettings:
        env = os.environ
        return cls(
            bucket=env.get("SNAPSHOT_BUCKET_NAME", ""),
            state_table_name=env.get("STATE_TABLE_NAME", ""),
            config_parameter_name=env.get("CONFIG_PARAMETER_NAME", ""),
            event_bus_name=env.get("EVENT_BUS_NAME", ""),
            partition_target=int(env.get("PARTITION_TARGET", "50000")),
            config_cache_seconds=int(env.get("CONFIG_CACHE_SECONDS", "60")),
            publish_workers=int(env.get("PUBLISH_WORKERS", "4")),
            reconcile_deadline_hours=float(env.get("RECONCILE_DEADLINE_HOURS", "24")),
            destination_entities=dict(
                pair.split("=", 1) for pair in env.get("DESTINATION_ENTITIES", "").split(",") if "=" in pair
            ),
        )


@cache
def snapshot_settings() -> SnapshotSettings:
    return SnapshotSettings.from_env()

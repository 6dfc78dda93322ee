"""The environment the ingestion tasks run with (template.yaml), parsed once into a typed model."""

from __future__ import annotations

import os
from functools import cache

from pydantic import BaseModel, ConfigDict, Field


class IngestionSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    state_table_name: str = ""
    ingestion_config_parameter_name: str = ""
    landing_bucket_name: str = ""
    event_bus_name: str = ""
    config_cache_seconds: int = 60
    allow_loopback_urls: bool = False
    publish_workers: int = 4
    # Days a deletion-check key (a row's identities) outlives the last check that saw it (deletions.py).
    deletion_key_retention_days: int = Field(default=400, ge=1)
    max_receive_count: int = 0  # the erasure queue's receives before its DLQ (the last one records `failed`)

    @classmethod
    def from_env(cls) -> IngestionSettings:
        env = os.environ
        return cls(
            state_table_name=env.get("STATE_TABLE_NAME", ""),
            ingestion_config_parameter_name=env.get("INGESTION_CONFIG_PARAMETER_NAME", ""),
            landing_bucket_name=env.get("LANDING_BUCKET_NAME", ""),
            event_bus_name=env.get("EVENT_BUS_NAME", ""),
            config_cache_seconds=int(env.get("CONFIG_CACHE_SECONDS", "60")),
            allow_loopback_urls=env.get("ALLOW_LOOPBACK_URLS", "false").lower() == "true",
            publish_workers=int(env.get("PUBLISH_WORKERS", "4")),
            deletion_key_retention_days=int(env.get("DELETION_KEY_RETENTION_DAYS", "400")),
            max_receive_count=int(env.get("MAX_RECEIVE_COUNT", "0")),
        )


@cache
def ingestion_settings() -> IngestionSettings:
    """Read on first use, not at import: importing a task must not need its environment."""
    return IngestionSettings.from_env()

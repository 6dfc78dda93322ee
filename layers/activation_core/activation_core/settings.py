"""The environment a destination function runs with, parsed once into a typed model.

Names are the same as the environment variables that template.yaml sets (UPPER_SNAKE).
"""

from __future__ import annotations

import os
from functools import cache

from pydantic import BaseModel, ConfigDict, Field


class FunctionSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    destination_type: str = Field(min_length=1)
    config_parameter_name: str = Field(min_length=1)
    state_table_name: str = Field(min_length=1)
    dead_letter_queue_url: str = Field(min_length=1)
    config_cache_seconds: int = 60
    max_receive_count: int = 0
    allow_loopback_urls: bool = False
    # An event stamped further in the future than this is rejected (`invalid_field:occurredAt`): a
    # bogus date would otherwise make every later change of its entity stale.
    clock_skew_seconds: int = Field(default=300, ge=0)
    # Days an order guard item outlives the last change applied to its entity (guards.py, Retention).
    order_guard_retention_days: int = Field(default=400, ge=1)

    @classmethod
    def from_env(cls) -> FunctionSettings:
        env = os.environ
        return cls(
            destination_type=env.get("DESTINATION_TYPE", ""),
            config_parameter_name=env.get("CONFIG_PARAMETER_NAME", ""),
            state_table_name=env.get("STATE_TABLE_NAME", ""),
            dead_letter_queue_url=env.get("DEAD_LETTER_QUEUE_URL", ""),
            config_cache_seconds=int(env.get("CONFIG_CACHE_SECONDS", "60")),
            max_receive_count=int(env.get("MAX_RECEIVE_COUNT", "0")),
            allow_loopback_urls=env.get("ALLOW_LOOPBACK_URLS", "false").lower() == "true",
            clock_skew_seconds=int(env.get("CLOCK_SKEW_SECONDS", "300")),
            order_guard_retention_days=int(env.get("ORDER_GUARD_RETENTION_DAYS", "400")),
        )


@cache
def function_settings() -> FunctionSettings:
    """Read on first use, not at import: importing a handler must not need its environment."""
    return FunctionSettings.from_env()

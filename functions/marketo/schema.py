"""MKT-05: the dedupe field is searchable and every mapped target is a field of this Marketo instance
(Describe2), checked before the first sync and again once a day.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from activation_core.errors import ConfigError
from activation_core.models.config import DestinationInstance
from marketo.client import MarketoClient
from marketo.models import MarketoSettings

# Describe2 changes rarely; Marketo suggests caching it for a day.
DESCRIBE_TTL = 86_400.0


@dataclass(frozen=True)
class _Schema:
    fields: frozenset[str]
    searchable: frozenset[str]
    fetched_at: float


# Module level: a warm container validates each Marketo instance against Describe2 once a day.
_schemas: dict[tuple[str, str], _Schema] = {}


def clear_cache() -> None:
    _schemas.clear()


def check_schema(
    client: MarketoClient, instance: DestinationInstance, settings: MarketoSettings, *, now: float
) -> None:
    """ConfigError naming the setting or mapping row Marketo's schema does not have."""
    key = (settings.munchkin_id, instance.model_dump_json())
    schema = _schemas.get(key)
    if schema is None or now - schema.fetched_at > DESCRIBE_TTL:
        fields, searchable = client.describe_fields()
        schema = _Schema(frozenset(fields), frozenset(searchable), now)
        _schemas[key] = schema
    fail = partial(ConfigError, instance.id)
    if settings.dedupe_field not in schema.searchable:
        raise fail("settings.dedupeField", f"'{settings.dedupe_field}' is not a searchable Marketo field")
    if settings.sync_type.syncs_profiles:
        for row in instance.mapping:
            if not row.identity and row.target not in schema.fields:
                raise fail(f"mapping.{row.target}", "not a field of this Marketo instance (Describe2)")

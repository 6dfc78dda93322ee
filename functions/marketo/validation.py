"""A Marketo instance's configuration, checked before anything is sent (MKT-01, 05, 06, 09).

What only Marketo can tell (the partition exists, the dedupe field is searchable, the mapped fields
exist) is checked against it when the instance connects: `partitions.py` and `schema.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from activation_core.errors import ConfigError
from activation_core.models.config import DestinationInstance
from activation_core.validation import require_identity, validated
from marketo.models import (
    CREATE_REQUIRED_FIELDS,
    DEDUPE_TARGET,
    REFUSED_DEDUPE_FIELDS,
    REFUSED_DEDUPE_SOURCES,
    SYSTEM_FIELDS,
    MarketoAudience,
    MarketoSettings,
    PersonAction,
)


@dataclass(frozen=True)
class ValidatedInstance:
    settings: MarketoSettings
    list_ids: dict[str, int]  # audience id -> configured static list id (audience sync types)


def validate_instance(instance: DestinationInstance) -> ValidatedInstance:
    """Everything Marketo would refuse later, refused now with the instance and field named."""
    settings = validated(MarketoSettings, instance.settings, instance.id, at="settings")
    _check_settings(instance.id, settings)
    _check_mapping(instance, settings)
    return ValidatedInstance(settings, _list_ids(instance, settings))


def _check_settings(instance_id: str, settings: MarketoSettings) -> None:
    fail = partial(ConfigError, instance_id)
    profiles = settings.sync_type.syncs_profiles
    # MKT-01: partition and person action belong to the profile sync types.
    if profiles and settings.person_action is None:
        raise fail("settings.personAction", f"required with sync type {settings.sync_type.value}")
    if not profiles and settings.person_action is not None:
        raise fail("settings.personAction", "audience_only never creates or updates leads: leave it unset")
    if not profiles and settings.partition is not None:
        raise fail("settings.partition", "a partition applies only to profile_only and audience_and_profile")
    # MKT-05: Lead ID and ECID never deduplicate.
    if settings.dedupe_field.lower() in REFUSED_DEDUPE_FIELDS:
        raise fail("settings.dedupeField", f"'{settings.dedupe_field}' cannot deduplicate (Lead ID and ECID)")


def _check_mapping(instance: DestinationInstance, settings: MarketoSettings) -> None:
    fail = partial(ConfigError, instance.id)
    # MKT-05: DedupeField is the one target identity, and ECID cannot feed it.
    identity = require_identity(instance, DEDUPE_TARGET)
    if identity.source.lower() in REFUSED_DEDUPE_SOURCES:
        raise fail(f"mapping.{DEDUPE_TARGET}", "ECID is not supported as a dedupe field")
    targets = {row.target for row in instance.mapping if not row.identity}
    for target in sorted(targets & SYSTEM_FIELDS):
        raise fail(f"mapping.{target}", "a system-managed Marketo field cannot be a target")
    # MKT-06: what Marketo needs to create a lead; the dedupe field may provide `email`.
    if settings.person_action is PersonAction.UPDATE_AND_CREATE:
        provided = targets | {settings.dedupe_field}
        for required in CREATE_REQUIRED_FIELDS:
            if required not in provided:
                raise fail(
                    f"mapping.{required}", "must be mapped when leads may be created (update_and_create)"
                )


def _list_ids(instance: DestinationInstance, settings: MarketoSettings) -> dict[str, int]:
    """MKT-09: person audiences (any origin), each with its static list for the audience sync types."""
    fail = partial(ConfigError, instance.id)
    list_ids: dict[str, int] = {}
    for index, audience in enumerate(instance.audiences):
        extras = validated(MarketoAudience, audience.extras, instance.id, at=f"audiences.{index}.extras")
        if extras.audience_type != "person":
            raise fail(
                f"audiences.{index}.extras.audienceType",
                f"'{extras.audience_type}' audiences are not supported: Marketo takes person audiences only",
            )
        if settings.sync_type.manages_lists:
            if extras.list_id is not None:
                list_ids[audience.id] = extras.list_id
            elif settings.list_folder is None:
                raise fail(
                    f"audiences.{index}.extras.listId",
                    "no static list id: give listId, or settings.listFolder to find or create the list "
                    "named after the audience",
                )
    return list_ids

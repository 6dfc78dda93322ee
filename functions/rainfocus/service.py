"""RainFocus destination logic: config validation, record -> attendee, outcomes (no boto3, no env)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from activation_core.errors import ActivationError, ConfigError
from activation_core.locks import LeaseLock
from activation_core.models.config import DestinationInstance
from activation_core.newest import newest_per_key, superseded
from activation_core.oauth import TokenProvider
from activation_core.outcomes import Outcome
from activation_core.pipeline import Connector, Entity, WorkItem
from activation_core.settings import FunctionSettings
from activation_core.validation import check_origins, check_targets, require_identity, validated
from rainfocus.client import RainfocusClient, fetch_token
from rainfocus.models import (
    ACCEPTED_ORIGINS,
    ATTENDEE_FIELDS,
    RainfocusConnection,
    RainfocusSettings,
    api_base_url,
    attendee_email,
    build_attendee,
)

IDENTITY_TARGET = "email"


def validate_instance(instance: DestinationInstance) -> RainfocusSettings:
    """Everything RainFocus would refuse later, refused now with the instance and field named."""
    settings = validated(RainfocusSettings, instance.settings, instance.id, at="settings")
    require_identity(instance, IDENTITY_TARGET)  # RNF-03
    check_targets(instance, ATTENDEE_FIELDS, f"not a RainFocus attendee field {ATTENDEE_FIELDS}")
    check_origins(instance, ACCEPTED_ORIGINS)  # RNF-06
    return settings


@dataclass(frozen=True, slots=True)
class _Attendee:
    """One record's attendee: its email (the key RainFocus upserts on) and the fields to store."""

    item: WorkItem
    email: str
    fields: dict[str, str]


@dataclass
class RainfocusConnector:
    """One configured RainFocus event: validates each record and upserts its attendee."""

    instance: DestinationInstance
    settings: RainfocusSettings
    client: RainfocusClient

    def deliver(self, items: Sequence[WorkItem]) -> Mapping[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        attendees: list[_Attendee] = []
        for item in items:
            if not any(a.membership.status.is_member for a in item.activations):
                # An attendee store has nothing to remove: exiting the audience changes nothing there.
                outcomes[item.key] = Outcome.skipped("audience_exited", "RainFocus keeps attendees on exit")
                continue
            try:
                email = attendee_email(item.mapped.value(IDENTITY_TARGET), self.settings.apply_transformation)
                fields = build_attendee(item.mapped.fields, email, self.settings.event_code)
            except ActivationError as exc:
                outcomes[item.key] = Outcome.from_error(exc)
                continue
            attendees.append(_Attendee(item, email, fields))
        # Several changes to one attendee in a batch: send the newest only, in one call.
        newest = newest_per_key(attendees, key=lambda a: a.email, at=lambda a: a.item.record.occurred_at)
        for stale in newest.superseded:
            outcomes[stale.item.key] = superseded("a newer event in the batch")
        latest = list(newest.by_key.values())
        with ThreadPoolExecutor(max_workers=self.settings.max_concurrency) as pool:
            sent = pool.map(self._store, [attendee.fields for attendee in latest])
            for attendee, outcome in zip(latest, sent, strict=True):
                outcomes[attendee.item.key] = outcome
        return outcomes

    def _store(self, attendee: Mapping[str, str]) -> Outcome:
        try:
            attendee_id = self.client.store_attendee(attendee)
        except ActivationError as exc:
            return Outcome.from_error(exc)
        return Outcome.delivered(f"attendee {attendee_id}")


class RainfocusDestination:
    destination_type = "rainfocus"
    entity: Entity = "profile"

    def connect(self, instance: DestinationInstance, settings: FunctionSettings) -> Connector:
        rf_settings = validate_instance(instance)
        allow_loopback = settings.allow_loopback_urls
        tokens = TokenProvider(
            instance.secret,
            partial(fetch_token, settings=rf_settings, allow_loopback=allow_loopback),
            lock=LeaseLock(settings.state_table_name),
        )
        connection = RainfocusConnection.model_validate(tokens.connection())
        if api_base_url(rf_settings, connection) is None:
            raise ConfigError(
                instance.id,
                "settings.environment",
                f"no API base known for environment '{rf_settings.environment}': name it in "
                "settings.environmentBaseUrls (or baseUrl in the connection secret)",
            )
        client = RainfocusClient(connection, rf_settings, tokens, allow_loopback=allow_loopback)
        return RainfocusConnector(instance, rf_settings, client)

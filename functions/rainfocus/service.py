"""RainFocus destination logic: config validation, record -> attendee, outcomes (no boto3, no env)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from pydantic import ValidationError

from activation_core.config_store import describe_validation_error
from activation_core.errors import ActivationError, ConfigError
from activation_core.locks import LeaseLock
from activation_core.models.config import DestinationInstance
from activation_core.oauth import TokenProvider
from activation_core.outcomes import Outcome
from activation_core.pipeline import Connector, Entity, WorkItem
from activation_core.settings import FunctionSettings
from activation_core.vendor_calls import CallPlan
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
    try:
        settings = RainfocusSettings.model_validate(instance.settings)
    except ValidationError as exc:
        error = describe_validation_error(exc, instance.id)
        raise ConfigError(instance.id, f"settings.{error.field}", error.message) from None
    identity_rows = [m for m in instance.mapping if m.identity]
    if [m.target for m in identity_rows] != [IDENTITY_TARGET]:  # RNF-03
        raise ConfigError(instance.id, "mapping", "email must be mapped as the one target identity")
    for row in instance.mapping:
        if row.target not in ATTENDEE_FIELDS:
            raise ConfigError(
                instance.id, f"mapping.{row.target}", f"not a RainFocus attendee field {ATTENDEE_FIELDS}"
            )
    for index, audience in enumerate(instance.audiences):
        if audience.origin not in ACCEPTED_ORIGINS:  # RNF-06
            raise ConfigError(
                instance.id,
                f"audiences.{index}.origin",
                f"'{audience.origin}' is not one of {sorted(ACCEPTED_ORIGINS)}",
            )
    return settings


@dataclass
class RainfocusConnector:
    """One configured RainFocus event: validates each record and upserts its attendee."""

    instance: DestinationInstance
    settings: RainfocusSettings
    client: RainfocusClient

    def deliver(self, items: Sequence[WorkItem]) -> Mapping[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        latest: dict[str, tuple[WorkItem, dict[str, str]]] = {}
        for item in items:
            if not any(a.membership.status.is_member for a in item.activations):
                # An attendee store has nothing to remove: exiting the audience changes nothing there.
                outcomes[item.key] = Outcome.skipped("audience_exited", "RainFocus keeps attendees on exit")
                continue
            try:
                email = attendee_email(item.mapped.value(IDENTITY_TARGET), self.settings.apply_transformation)
                attendee = build_attendee(item.mapped.fields, email, self.settings.event_code)
            except ActivationError as exc:
                outcomes[item.key] = Outcome.from_error(exc)
                continue
            # Several changes to one attendee in a batch: send the newest only, in one call.
            previous = latest.get(email)
            if previous is None or previous[0].record.occurred_at <= item.record.occurred_at:
                if previous is not None:
                    outcomes[previous[0].key] = Outcome.skipped("superseded", "a newer event in the batch")
                latest[email] = (item, attendee)
            else:
                outcomes[item.key] = Outcome.skipped("superseded", "a newer event in the batch")
        with ThreadPoolExecutor(max_workers=self.settings.max_concurrency) as pool:
            sent = pool.map(self._store, [attendee for _, attendee in latest.values()])
            for (item, _), outcome in zip(latest.values(), sent, strict=True):
                outcomes[item.key] = outcome
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


def call_plan(instance: DestinationInstance) -> CallPlan:
    """One store call per attendee (the API has no batch call); RainFocus publishes no rate limit."""
    validate_instance(instance)
    return CallPlan(records_per_call=1, call_types=("store",))

"""Marketo destination: the connector's steps and the wiring (no boto3, no env reads).

The seed's matching table (MKT-02..04), per sync type and person action:

| sync type            | person action        | what happens                                                   |
| -------------------- | -------------------- | -------------------------------------------------------------- |
| profile_only         | update_and_create    | Sync Leads createOrUpdate: leads updated, or created in the partition |
| profile_only         | update_existing_only | Sync Leads updateOnly: unmatched profiles skipped (1004)       |
| audience_only        | -                    | lookup by dedupe field, add/remove found leads; nothing created or updated |
| audience_and_profile | update_and_create    | createOrUpdate, then the returned lead ids join/leave the lists |
| audience_and_profile | update_existing_only | updateOnly, then the returned lead ids join/leave the lists    |

One module per concern: `validation` (the instance's config), `grouping` (the batch by lead),
`partitions` and `schema` (what only Marketo can check), `profiles` (Sync Leads), `membership`
(static list joins and leaves), `lists` (which list an audience has), `erasure`, `limits` (the
shared call budget and slots), `client` (HTTP).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from types import MappingProxyType
from typing import Any

from activation_core import list_registry
from activation_core.errors import ActivationError, ConfigError
from activation_core.locks import LeaseLock
from activation_core.models.config import DestinationInstance
from activation_core.newest import superseded
from activation_core.oauth import TokenGrant, TokenProvider
from activation_core.outcomes import Outcome, combine
from activation_core.pipeline import Connector, Entity, WorkItem
from activation_core.settings import FunctionSettings
from activation_core.vendor_calls import CallPlan, RateLimit
from marketo import partitions, schema
from marketo.client import LOOKUP_GETS_PER_GROUP, MarketoClient, fetch_token
from marketo.erasure import erase
from marketo.grouping import MISSING_DEDUPE_REASON, Collected, group
from marketo.limits import MetricSink, call_gate, emit_metric
from marketo.lists import AudienceLists, registry_for
from marketo.membership import ListMembership
from marketo.models import (
    BATCH_LIMIT,
    DAILY_QUOTA_CALLS,
    DAY_SECONDS,
    DEDUPE_TARGET,
    RATE_LIMIT_SECONDS,
    MarketoConnection,
)
from marketo.partitions import ChosenPartition
from marketo.profiles import ProfileSync
from marketo.schema import check_schema
from marketo.validation import ValidatedInstance, validate_instance

__all__ = ["MarketoConnector", "MarketoDestination", "clear_schema_cache", "validate_instance"]

logger = logging.getLogger(__name__)


def clear_schema_cache() -> None:
    """Forget Describe2 and the partitions read in this process (tests: a new container)."""
    schema.clear_cache()
    partitions.clear_cache()
    list_registry.clear_memory_cache()


class MarketoConnector:
    """One configured Marketo instance: the matching table, batched to Marketo's limits."""

    def __init__(
        self,
        instance: DestinationInstance,
        validated: ValidatedInstance,
        client: MarketoClient,
        lists: AudienceLists,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.instance = instance
        self.settings = validated.settings
        self.client = client
        self._clock = clock
        self._partition = ChosenPartition(client, validated.settings, instance.id, clock=clock)
        self._profiles = ProfileSync(client, validated.settings)
        self._membership = ListMembership(client, validated.settings, lists)

    def deliver(self, items: Sequence[WorkItem]) -> Mapping[str, Outcome]:
        final: dict[str, Outcome] = {}
        profiles = group(
            items,
            dedupe_field=self.settings.dedupe_field,
            syncs_profiles=self.settings.sync_type.syncs_profiles,
            final=final,
        )
        if not profiles:
            return final
        collected = Collected()
        try:
            # One slot for the invocation's calls (they are sequential): at most `concurrentCalls` in flight.
            with self.client.gate.slot():
                self.check_partition()
                check_schema(self.client, self.instance, self.settings, now=self._clock())
                synced: dict[str, int] = {}
                if self.settings.sync_type.syncs_profiles:
                    synced = self._profiles.sync(profiles, collected, partition=self._partition.name)
                if self.settings.sync_type.manages_lists:
                    self._membership.sync(profiles, synced, collected)
        except ActivationError as exc:  # no slot, or the instance does not match Marketo's schema
            outcome = Outcome.from_error(exc)
            final.update((item.key, outcome) for profile in profiles.values() for item in profile.items)
            return final
        for profile in profiles.values():
            for item in profile.items:
                outcomes = collected.by_item.get(item.key)
                final[item.key] = (
                    combine(outcomes) if outcomes else superseded("a newer event for this lead in the batch")
                )
        return final

    def erase(self, items: Sequence[WorkItem]) -> Mapping[str, Outcome]:
        """A data subject request deletes every lead with the person's dedupe value."""
        return erase(self.client, self.settings, items)

    def check_partition(self) -> None:
        """MKT-01: the partition exists (at connect; before the first sync when Marketo could not be asked then)."""
        self._partition.check()


class MarketoDestination:
    destination_type = "marketo"
    entity: Entity = "profile"  # MKT-09: account events never reach Marketo
    # A profile without a dedupe value is skipped and counted, not rejected (even when the row is required).
    skip_when_missing: Mapping[str, str] = MappingProxyType({DEDUPE_TARGET: MISSING_DEDUPE_REASON})

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        emit_metric: MetricSink = emit_metric,
        dynamodb: Any | None = None,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._emit = emit_metric
        self._dynamodb = dynamodb

    def connect(self, instance: DestinationInstance, settings: FunctionSettings) -> Connector:
        validated = validate_instance(instance)
        mkto = validated.settings
        allow_loopback = settings.allow_loopback_urls
        tokens = TokenProvider(
            instance.secret,
            partial(_fetch, munchkin_id=mkto.munchkin_id, allow_loopback=allow_loopback, sleep=self._sleep),
            lock=LeaseLock(settings.state_table_name, dynamodb=self._dynamodb),
            # Marketo hands back the same token until it expires: use it to the end, refresh on 602.
            refresh_margin=0.0,
            sleep=self._sleep,
        )
        connection = MarketoConnection.model_validate(tokens.connection())
        client = MarketoClient(
            connection,
            mkto.munchkin_id,
            tokens,
            allow_loopback=allow_loopback,
            gate=call_gate(
                settings.state_table_name,
                mkto,
                dynamodb=self._dynamodb,
                clock=self._clock,
                sleep=self._sleep,
                emit_metric=self._emit,
            ),
            clock=self._clock,
            sleep=self._sleep,
        )
        registry = registry_for(
            settings.state_table_name,
            mkto.munchkin_id,
            dynamodb=self._dynamodb,
            sleep=self._sleep,
            clock=self._clock,
        )
        lists = AudienceLists(
            client,
            settings=mkto,
            instance_id=instance.id,
            audiences={a.id: a for a in instance.audiences},
            configured=validated.list_ids,
            registry=registry,
        )
        connector = MarketoConnector(instance, validated, client, lists, clock=self._clock)
        try:
            # MKT-01: refuse a partition Marketo does not have when the instance connects.
            with client.gate.slot():
                connector.check_partition()
        except ConfigError:
            raise
        except ActivationError as exc:  # Marketo unreachable now: checked again before the first sync
            logger.warning("partition not checked at connect (%s); checked before the first sync", exc.reason)
        return connector


def _fetch(
    connection: Mapping[str, Any], *, munchkin_id: str, allow_loopback: bool, sleep: Callable[[float], None]
) -> TokenGrant:
    return fetch_token(connection, munchkin_id, allow_loopback=allow_loopback, sleep=sleep)


def call_plan(instance: DestinationInstance) -> CallPlan:
    """Per 300 members: a Sync Leads call (or, audience only, a lookup: two GETs for typical e-mails)
    and a list call (unless profile only), paced by this instance's share of the 20-s limit and by the daily quota."""
    settings = validate_instance(instance).settings
    sync = settings.sync_type
    types = ("sync" if sync.syncs_profiles else "lookup",) + (("list_add",) if sync.manages_lists else ())
    return CallPlan(
        records_per_call=BATCH_LIMIT,
        call_types=types,
        per_group={"lookup": LOOKUP_GETS_PER_GROUP},
        limits=(
            RateLimit(settings.calls_per_window, RATE_LIMIT_SECONDS, "calls per 20 s"),
            RateLimit(DAILY_QUOTA_CALLS, DAY_SECONDS, "daily quota"),
        ),
    )

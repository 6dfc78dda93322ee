"""Outreach destination logic: config validation, records -> one PATCH per prospect, outcomes.

No boto3 and no environment here: the AWS clients, clock and sleep are injectable for tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from activation_core.errors import ActivationError, ConfigError
from activation_core.locks import LeaseLock
from activation_core.models.config import ActivatedAudience, DestinationInstance
from activation_core.newest import superseded
from activation_core.oauth import TokenProvider
from activation_core.outcomes import Outcome
from activation_core.pipeline import Connector, Entity, WorkItem
from activation_core.rate_budget import RateBudget, Window
from activation_core.settings import FunctionSettings
from activation_core.validation import require_identity, validated
from activation_core.vendor_calls import CallPlan, RateLimit
from outreach.client import (
    BAD_REQUEST_MESSAGE,
    FieldRejectedError,
    OutreachClient,
    RateGate,
    refresh_access_token,
)
from outreach.models import (
    IDENTITY_TARGET,
    OutreachAudienceExtras,
    OutreachConnection,
    OutreachSettings,
    attribute_value,
    custom_field,
    custom_field_number,
    is_mappable_target,
    prospect_id,
)

HOUR = 3600.0
# Buckets of the shared sliding hour: 60 items of state instead of 3,600, at most a minute conservative.
BUDGET_GRANULARITY = 60.0
# Calls taken from the shared budget per DynamoDB round trip: a whole batch's worth, so the parallel
# calls never queue behind budget updates (calls taken but not made only make the budget stricter).
BUDGET_CHUNK = 100


def validate_instance(instance: DestinationInstance) -> tuple[OutreachSettings, dict[str, int]]:
    """Everything Outreach would refuse later, refused now naming the instance and field.

    Returns the settings and each activated audience's mapping ID.
    """
    settings = validated(OutreachSettings, instance.settings, instance.id, at="settings")
    require_identity(instance, IDENTITY_TARGET)  # OUT-02

    mapping_ids: dict[str, int] = {}
    used_by: dict[int, ActivatedAudience] = {}
    for index, audience in enumerate(instance.audiences):  # OUT-03; any origin is fine (OUT-07)
        extras = validated(
            OutreachAudienceExtras, audience.extras, instance.id, at=f"audiences.{index}.extras"
        )
        other = used_by.get(extras.mapping_id)
        if other is not None:
            raise ConfigError(
                instance.id,
                f"audiences.{index}.extras.mappingId",
                f"mapping ID {extras.mapping_id} is already used by audience '{other.id}'",
            )
        used_by[extras.mapping_id] = audience
        mapping_ids[audience.id] = extras.mapping_id

    for row in instance.mapping:  # OUT-04
        if row.identity:
            continue
        if row.target == IDENTITY_TARGET or not is_mappable_target(row.target):
            raise ConfigError(
                instance.id, f"mapping.{row.target}", "not a writable Outreach prospect attribute"
            )
        number = custom_field_number(row.target)
        if number is not None and number in used_by:
            raise ConfigError(
                instance.id,
                f"mapping.{row.target}",
                f"{row.target} holds the status of audience '{used_by[number].id}' (mapping ID {number})",
            )
    return settings, mapping_ids


@dataclass(frozen=True, eq=False)
class _Change:
    """What one record asks of one prospect: attributes and audience statuses (customN)."""

    item: WorkItem
    prospect: int
    fields: dict[str, Any]
    audiences: dict[str, ActivatedAudience] = field(default_factory=dict)  # customN -> its audience


def _merge(changes: Sequence[_Change]) -> tuple[dict[str, Any], dict[str, _Change]]:
    """One PATCH body for several changes, oldest first so the newest value of each field wins."""
    attributes: dict[str, Any] = {}
    owners: dict[str, _Change] = {}
    for change in changes:
        for name, value in change.fields.items():
            attributes[name] = value
            owners[name] = change
    return attributes, owners


@dataclass
class OutreachConnector:
    """One Outreach connection: every record's changes, one PATCH per prospect, bounded concurrency."""

    instance: DestinationInstance
    settings: OutreachSettings
    mapping_ids: Mapping[str, int]
    client: OutreachClient

    def deliver(self, items: Sequence[WorkItem]) -> Mapping[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        per_prospect: dict[int, list[_Change]] = {}
        for item in items:
            try:
                change = self._change(item)
            except ActivationError as exc:
                outcomes[item.key] = Outcome.from_error(exc)
                continue
            per_prospect.setdefault(change.prospect, []).append(change)
        if not per_prospect:
            return outcomes

        self.client.gate.plan(len(per_prospect))
        try:
            self.client.warm_token()
        except ActivationError as exc:
            failed = Outcome.from_error(exc)
            return outcomes | {c.item.key: failed for cs in per_prospect.values() for c in cs}
        workers = min(self.settings.max_concurrency, len(per_prospect))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="outreach") as pool:
            for result in pool.map(lambda group: self._update(*group), per_prospect.items()):
                outcomes.update(result)
        return outcomes

    def erase(self, items: Sequence[WorkItem]) -> Mapping[str, Outcome]:
        """A data subject request: delete the prospect (by its OutreachId), one DELETE per prospect."""
        outcomes: dict[str, Outcome] = {}
        per_prospect: dict[int, list[WorkItem]] = {}
        for item in items:
            try:
                per_prospect.setdefault(prospect_id(item.mapped.value(IDENTITY_TARGET)), []).append(item)
            except ActivationError as exc:
                outcomes[item.key] = Outcome.from_error(exc)
        if per_prospect:
            self.client.gate.plan(len(per_prospect))
        for prospect, group in per_prospect.items():
            try:
                deleted = self.client.delete_prospect(prospect)
            except ActivationError as exc:
                outcome = Outcome.from_error(exc)
            else:
                outcome = (
                    Outcome.delivered(f"erased: prospect {prospect} deleted")
                    if deleted
                    else Outcome.skipped("erasure_not_found", f"Outreach has no prospect {prospect}")
                )
            outcomes.update((item.key, outcome) for item in group)
        return outcomes

    def _change(self, item: WorkItem) -> _Change:
        prospect = prospect_id(item.mapped.value(IDENTITY_TARGET))  # OUT-02
        fields = {target: attribute_value(target, value) for target, value in item.mapped.fields.items()}
        audiences: dict[str, ActivatedAudience] = {}
        for activation in item.activations:  # OUT-03: the audience's status into customN
            name = custom_field(self.mapping_ids[activation.audience.id])
            fields[name] = activation.membership.status.value
            audiences[name] = activation.audience
        return _Change(item, prospect, fields, audiences)

    def _update(self, prospect: int, changes: list[_Change]) -> dict[str, Outcome]:
        """PATCH one prospect with every change of the batch; a refused field drops only its changes."""
        outcomes: dict[str, Outcome] = {}
        # Oldest first; sorted() is stable, so events at the same instant keep their queue order.
        pending = sorted(changes, key=lambda c: c.item.record.occurred_at)
        while pending:  # a round ends the loop or drops at least one change: at most len(changes) rounds
            attributes, owners = _merge(pending)
            try:
                self.client.update_prospect(prospect, attributes)
            except FieldRejectedError as exc:
                offenders = self._offenders(exc, pending, owners)
                for change in offenders:
                    outcomes[change.item.key] = self._rejection(change, exc)
                pending = [c for c in pending if c not in offenders]
                continue
            except ActivationError as exc:
                failed = Outcome.from_error(exc)
                return outcomes | {c.item.key: failed for c in pending}
            winners = {id(owner) for owner in owners.values()}
            for change in pending:
                outcomes[change.item.key] = (
                    Outcome.delivered(f"prospect {prospect}")
                    if id(change) in winners
                    else superseded("newer changes to this prospect in the batch set every field")
                )
            break
        return outcomes

    @staticmethod
    def _offenders(
        exc: FieldRejectedError, pending: list[_Change], owners: dict[str, _Change]
    ) -> list[_Change]:
        if exc.field is None or exc.field not in owners:
            return pending  # the vendor did not say which field: nothing in this PATCH can be trusted
        if any(exc.field in c.audiences for c in pending):
            # No such custom field (OUT-06): every change carrying that audience's status fails alike.
            return [c for c in pending if exc.field in c.fields]
        return [owners[exc.field]]  # a bad value: only the change whose value was sent

    @staticmethod
    def _rejection(change: _Change, exc: FieldRejectedError) -> Outcome:
        audience = change.audiences.get(exc.field or "")
        if audience is None:
            return Outcome.from_error(exc)
        return Outcome.rejected(
            "invalid_mapping_id",
            f"{BAD_REQUEST_MESSAGE} Audience '{audience.name}' ({audience.id}) has mapping ID "
            f"{custom_field_number(exc.field or '')}, and Outreach refused {exc.field}: {exc.detail}",
        )


class OutreachDestination:
    destination_type = "outreach"
    entity: Entity = "profile"  # person audiences only (OUT-07)

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        secrets: Any | None = None,
        dynamodb: Any | None = None,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._secrets = secrets
        self._dynamodb = dynamodb

    def connect(self, instance: DestinationInstance, settings: FunctionSettings) -> Connector:
        outreach_settings, mapping_ids = validate_instance(instance)
        allow_loopback = settings.allow_loopback_urls
        tokens = TokenProvider(
            instance.secret,
            partial(refresh_access_token, allow_loopback=allow_loopback, sleep=self._sleep),
            lock=LeaseLock(settings.state_table_name, dynamodb=self._dynamodb, clock=self._clock),
            secrets=self._secrets,
            clock=self._clock,
            sleep=self._sleep,
            min_mint_interval=outreach_settings.token_mint_interval_seconds,
            refresh_token_field="refreshToken",  # noqa: S106 - the secret's field name
        )
        # A secret that does not parse is a connection problem, as for every destination
        # (`connection_unavailable:<id>`, README), not a config error.
        connection = OutreachConnection.model_validate(tokens.connection())
        budget = RateBudget(
            settings.state_table_name,
            f"outreach#{outreach_settings.budget_key or instance.secret}",
            Window(outreach_settings.requests_per_hour, HOUR, granularity=BUDGET_GRANULARITY),
            dynamodb=self._dynamodb,
            clock=self._clock,
            sleep=self._sleep,
        )
        gate = RateGate(
            budget,
            reserve=outreach_settings.remaining_reserve,
            chunk=BUDGET_CHUNK,
            clock=self._clock,
            sleep=self._sleep,
        )
        client = OutreachClient(
            connection, tokens, gate, allow_loopback=allow_loopback, clock=self._clock, sleep=self._sleep
        )
        return OutreachConnector(instance, outreach_settings, mapping_ids, client)


def call_plan(instance: DestinationInstance) -> CallPlan:
    """One PATCH per prospect, paced by this connection's share of the user's hourly budget."""
    settings, _ = validate_instance(instance)
    return CallPlan(
        records_per_call=1,
        call_types=("patch",),
        limits=(RateLimit(settings.requests_per_hour, HOUR, "requests per hour"),),
    )

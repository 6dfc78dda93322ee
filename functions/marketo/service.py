"""Marketo destination logic: config validation, the matching table, outcomes (no boto3, no env reads).

The seed's matching table (MKT-02..04), per sync type and person action:

| sync type            | person action        | what happens                                                   |
| -------------------- | -------------------- | -------------------------------------------------------------- |
| profile_only         | update_and_create    | Sync Leads createOrUpdate: leads updated, or created in the partition |
| profile_only         | update_existing_only | Sync Leads updateOnly: unmatched profiles skipped (1004)       |
| audience_only        | -                    | lookup by dedupe field, add/remove found leads; nothing created or updated |
| audience_and_profile | update_and_create    | createOrUpdate, then the returned lead ids join/leave the lists |
| audience_and_profile | update_existing_only | updateOnly, then the returned lead ids join/leave the lists    |

Matching searches every partition (MKT-07): a lead found in another partition (1010) or several
matching leads (1007) are resolved by a lookup across partitions, and only the most recently updated
lead is updated, by id (MKT-08). Calls are batched to 300 records / ids / filter values each.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from activation_core import list_registry
from activation_core.config_store import describe_validation_error
from activation_core.errors import ActivationError, ConfigError
from activation_core.locks import LeaseLock
from activation_core.models.config import DestinationInstance
from activation_core.oauth import TokenGrant, TokenProvider
from activation_core.outcomes import Kind, Outcome, combine
from activation_core.pipeline import Connector, Entity, WorkItem
from activation_core.rate_budget import ConcurrencySlots, RateBudget, Window
from activation_core.settings import FunctionSettings
from activation_core.vendor_calls import CallPlan, RateLimit
from marketo import partitions
from marketo.client import (
    LEAD_NOT_FOUND,
    MULTIPLE_MATCHES,
    NOT_IN_LIST,
    OTHER_PARTITION,
    CallGate,
    FoundLead,
    MarketoClient,
    PayloadTooLarge,
    RecordStatus,
    UriTooLong,
    chunks,
    error_for_code,
    fetch_token,
    updated_instant,
)
from marketo.lists import AudienceLists, registry_for
from marketo.models import (
    BATCH_LIMIT,
    CREATE_REQUIRED_FIELDS,
    DAILY_QUOTA_CALLS,
    DAY_SECONDS,
    DEDUPE_TARGET,
    RATE_LIMIT_SECONDS,
    REFUSED_DEDUPE_FIELDS,
    REFUSED_DEDUPE_SOURCES,
    SYSTEM_FIELDS,
    MarketoAudience,
    MarketoConnection,
    MarketoSettings,
    PersonAction,
    SyncType,
    build_lead,
    dedupe_value,
    normalize_key,
)
from marketo.partitions import resolve_partition

logger = logging.getLogger(__name__)

# Describe2 and the partition list change rarely; Marketo suggests caching them for a day.
DESCRIBE_TTL = 86_400.0
# How long one call waits in-process for budget, and one invocation for a slot, before its records go
# back to SQS (hidden until `retry_after`).
BUDGET_WAIT = 8.0
SLOT_WAIT = 5.0
SLOT_POLL = 0.5
# The budget counts a call when it is taken, right before the request; Marketo when it arrives. A
# second of margin on the window absorbs that gap: no 20-s window at Marketo exceeds the limit.
WINDOW_MARGIN = 1.0
SLOT_LEASE = 150.0  # longer than an invocation (function timeout): a crashed holder frees its slot

MetricSink = Callable[[str, float], None]


def _emit_metric(name: str, value: float) -> None:
    from aws_lambda_powertools.metrics import MetricUnit

    from activation_core.observability import metrics

    try:
        metrics.add_metric(name, MetricUnit.Count, value)
    except Exception as exc:  # monitoring must never fail delivery
        logger.warning("metric %s not recorded (%s)", name, type(exc).__name__)


# ------------------------------------------------------------------------------------ validation


@dataclass(frozen=True)
class ValidatedInstance:
    settings: MarketoSettings
    list_ids: dict[str, int]  # audience id -> configured static list id (audience sync types)


def _settings(instance: DestinationInstance) -> MarketoSettings:
    try:
        return MarketoSettings.model_validate(instance.settings)
    except ValidationError as exc:
        error = describe_validation_error(exc, instance.id)
        raise ConfigError(instance.id, f"settings.{error.field}", error.message) from None


def validate_instance(instance: DestinationInstance) -> ValidatedInstance:
    """Everything Marketo would refuse later, refused now with the instance and field named."""
    settings = _settings(instance)
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
    identity_rows = [row for row in instance.mapping if row.identity]
    if [row.target for row in identity_rows] != [DEDUPE_TARGET]:
        raise fail("mapping", f"{DEDUPE_TARGET} must be mapped as the one target identity")
    if identity_rows[0].source.lower() in REFUSED_DEDUPE_SOURCES:
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
        try:
            extras = MarketoAudience.model_validate(audience.extras)
        except ValidationError as exc:
            error = describe_validation_error(exc, instance.id)
            raise fail(f"audiences.{index}.extras.{error.field}", error.message) from None
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


# ------------------------------------------------------------------------------------- delivery


@dataclass
class _Membership:
    at: datetime
    member: bool  # realized or existing: a current member (joins the list); exited leaves it
    item: WorkItem


@dataclass
class _Profile:
    """Every item of one batch that shares a dedupe value: the newest data, the newest membership per audience."""

    value: str
    lead: dict[str, Any]
    newest: WorkItem
    memberships: dict[str, _Membership] = field(default_factory=dict)
    items: list[WorkItem] = field(default_factory=list)

    @property
    def any_member(self) -> bool:
        return any(m.member for m in self.memberships.values())


@dataclass
class _Outcomes:
    """Outcomes collected per work item; an item's final outcome combines them."""

    by_item: dict[str, list[Outcome]] = field(default_factory=dict)

    def add(self, item: WorkItem, outcome: Outcome) -> None:
        self.by_item.setdefault(item.key, []).append(outcome)


@dataclass(frozen=True)
class _Schema:
    fields: frozenset[str]
    searchable: frozenset[str]
    fetched_at: float


# Module level: a warm container validates each Marketo instance against Describe2 once a day.
_schemas: dict[tuple[str, str], _Schema] = {}


def clear_schema_cache() -> None:
    """Forget Describe2 and the partitions read in this process (tests: a new container)."""
    _schemas.clear()
    partitions.clear_cache()
    list_registry.clear_memory_cache()


_NOT_FOUND_DETAIL = "no Marketo lead matches the dedupe field"
MISSING_DEDUPE_REASON = "missing_dedupe_value"
LIST_NOT_FOUND_REASON = "marketo_1013"
_MISSING_DEDUPE = Outcome.skipped(
    MISSING_DEDUPE_REASON, f"'{DEDUPE_TARGET}' has no value: nothing to match a lead on"
)


def _has_email(lead: Mapping[str, Any]) -> bool:
    email = lead.get("email")
    return isinstance(email, str) and bool(email.strip())


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
        self.lists = lists
        self.client = client
        self._clock = clock
        self._partition_name: str | None = None  # resolved by check_partition (name or id -> name)

    # -- entry point --------------------------------------------------------------------------------

    def deliver(self, items: Sequence[WorkItem]) -> Mapping[str, Outcome]:
        final: dict[str, Outcome] = {}
        profiles = self._group(items, final)
        if not profiles:
            return final
        collected = _Outcomes()
        try:
            # One slot for the invocation's calls (they are sequential): at most `concurrentCalls` in flight.
            with self.client.gate.slot():
                self.check_partition()
                self._check_schema()
                synced: dict[str, int] = {}
                if self.settings.sync_type.syncs_profiles:
                    synced = self._sync_profiles(profiles, collected)
                if self.settings.sync_type.manages_lists:
                    self._sync_lists(profiles, synced, collected)
        except ActivationError as exc:  # no slot, or the instance does not match Marketo's schema
            outcome = Outcome.from_error(exc)
            final.update((item.key, outcome) for profile in profiles.values() for item in profile.items)
            return final
        for profile in profiles.values():
            for item in profile.items:
                outcomes = collected.by_item.get(item.key)
                final[item.key] = (
                    combine(outcomes)
                    if outcomes
                    else Outcome.skipped("superseded", "a newer event for this lead in the batch")
                )
        return final

    # -- erasure: a data subject request deletes every lead with the person's dedupe value -----------

    def erase(self, items: Sequence[WorkItem]) -> Mapping[str, Outcome]:
        """Find the leads by the dedupe field (every partition), then Delete Leads."""
        final: dict[str, Outcome] = {}
        people: dict[str, list[WorkItem]] = {}
        values: dict[str, str] = {}
        for item in items:
            try:
                value = dedupe_value(item.mapped.value(DEDUPE_TARGET))
            except ActivationError as exc:
                final[item.key] = Outcome.from_error(exc)
                continue
            values.setdefault(normalize_key(value), value)
            people.setdefault(normalize_key(value), []).append(item)
        found: dict[str, list[int]] = {}
        statuses: dict[int, RecordStatus] = {}
        try:
            with self.client.gate.slot():
                for batch in chunks(list(people)):
                    for lead in self.client.find_leads(
                        self.settings.dedupe_field, [values[k] for k in batch]
                    ):
                        found.setdefault(normalize_key(lead.value), []).append(lead.lead_id)
                for batch_ids in chunks([i for lead_ids in found.values() for i in lead_ids]):
                    statuses.update(self.client.delete_leads(batch_ids))
        except ActivationError as exc:
            outcome = Outcome.from_error(exc)
            return final | {item.key: outcome for group in people.values() for item in group}
        for key, group in people.items():
            outcome = _erasure_outcome([statuses.get(i) for i in found.get(key, [])])
            final.update((item.key, outcome) for item in group)
        return final

    def _group(self, items: Sequence[WorkItem], final: dict[str, Outcome]) -> dict[str, _Profile]:
        """Items by dedupe value; an item that cannot be sent is rejected here, naming its field."""
        profiles: dict[str, _Profile] = {}
        for item in items:
            raw = item.mapped.value(DEDUPE_TARGET)
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                # An ordinary gap in the data, not a failure: nothing to match on, nothing to replay.
                final[item.key] = _MISSING_DEDUPE
                continue
            try:
                value = dedupe_value(raw)
                # Audience only never writes attributes: only the dedupe value matters then.
                fields = item.mapped.fields if self.settings.sync_type.syncs_profiles else {}
                lead = build_lead(fields, self.settings.dedupe_field, value)
            except ActivationError as exc:
                final[item.key] = Outcome.from_error(exc)
                continue
            key = normalize_key(value)
            profile = profiles.get(key)
            if profile is None:
                profile = profiles[key] = _Profile(value, lead, item)
            elif item.record.occurred_at >= profile.newest.record.occurred_at:
                # Several changes to one lead in a batch: one record per lead in a call (Marketo's
                # upsert race would otherwise create duplicates), the newest data wins.
                profile.value, profile.lead, profile.newest = value, lead, item
            profile.items.append(item)
            for activation in item.activations:
                previous = profile.memberships.get(activation.audience.id)
                if previous is None or item.record.occurred_at >= previous.at:
                    member = activation.membership.status.is_member
                    profile.memberships[activation.audience.id] = _Membership(
                        item.record.occurred_at, member, item
                    )
        return profiles

    # -- MKT-01: the partition exists (at connect; here when Marketo could not be asked then) ---------

    def check_partition(self) -> None:
        """Resolve the configured partition once (name or id); ConfigError when Marketo has none such."""
        if self._partition_name is not None:
            return
        if self.settings.partition is None or not self.settings.sync_type.syncs_profiles:
            self._partition_name = self.settings.partition_name
            return
        found = resolve_partition(
            self.client,
            self.settings.munchkin_id,
            self.instance.id,
            self.settings.partition,
            clock=self._clock,
        )
        self._partition_name = found.name

    # -- MKT-05: the dedupe field is searchable; mapped targets exist ---------------------------------

    def _check_schema(self) -> None:
        key = (self.settings.munchkin_id, self.instance.model_dump_json())
        schema = _schemas.get(key)
        now = self._clock()
        if schema is None or now - schema.fetched_at > DESCRIBE_TTL:
            fields, searchable = self.client.describe_fields()
            schema = _Schema(frozenset(fields), frozenset(searchable), now)
            _schemas[key] = schema
        fail = partial(ConfigError, self.instance.id)
        if self.settings.dedupe_field not in schema.searchable:
            raise fail(
                "settings.dedupeField", f"'{self.settings.dedupe_field}' is not a searchable Marketo field"
            )
        if self.settings.sync_type.syncs_profiles:
            for row in self.instance.mapping:
                if not row.identity and row.target not in schema.fields:
                    raise fail(f"mapping.{row.target}", "not a field of this Marketo instance (Describe2)")

    # -- profile sync (MKT-02, 03, 07, 08) ------------------------------------------------------------

    def _sync_profiles(self, profiles: Mapping[str, _Profile], collected: _Outcomes) -> dict[str, int]:
        """Sync Leads for every profile with a current membership; returns lead ids by dedupe key."""
        creates = self.settings.person_action is PersonAction.UPDATE_AND_CREATE
        to_sync = [k for k, p in profiles.items() if p.any_member]
        if self.settings.sync_type is SyncType.PROFILE_ONLY:
            for profile in profiles.values():
                if not profile.any_member:
                    # No list to leave in a profile-only sync; the lead itself stays (nothing to undo).
                    for membership in profile.memberships.values():
                        collected.add(
                            membership.item, Outcome.skipped("audience_exited", "profile-only sync")
                        )
        # MKT-06: Marketo creates a lead only with first name, last name and e-mail. A profile without
        # an e-mail value may still update its existing lead, but is never created (updateOnly).
        no_email = {k for k in to_sync if creates and not _has_email(profiles[k].lead)}
        creatable = [k for k in to_sync if creates and k not in no_email]
        update_only = [k for k in to_sync if not creates or k in no_email]
        statuses = self._sync_batches(
            [(k, profiles[k].lead) for k in creatable],
            action="createOrUpdate",
            lookup_field=self.settings.dedupe_field,
            # Only create/upsert honour a partition: new leads go to the chosen one or Default (MKT-07).
            partition=self._partition_name or self.settings.partition_name,
        )
        statuses.update(
            self._sync_batches(
                [(k, profiles[k].lead) for k in update_only],
                action="updateOnly",
                lookup_field=self.settings.dedupe_field,
                partition=None,
            )
        )
        lead_ids: dict[str, int] = {}
        resolve: list[str] = []
        for key in to_sync:
            status = statuses[key]
            if isinstance(status, Outcome):
                self._record_sync(profiles[key], status, collected)
            elif status.code in (MULTIPLE_MATCHES, OTHER_PARTITION):
                resolve.append(key)
            elif key in no_email and status.code == LEAD_NOT_FOUND:
                missing = Outcome.skipped(
                    "missing_email", "no lead matches, and a lead needs an e-mail to be created"
                )
                self._record_sync(profiles[key], missing, collected)
            else:
                outcome = self._sync_outcome(status, creates)
                self._record_sync(profiles[key], outcome, collected)
                if outcome.kind is Kind.DELIVERED and status.lead_id is not None:
                    lead_ids[key] = status.lead_id
        if resolve:
            lead_ids.update(self._update_most_recent(profiles, resolve, collected))
        return lead_ids

    def _sync_outcome(self, status: RecordStatus, creates: bool) -> Outcome:
        if status.status in ("created", "updated") and status.lead_id is not None:
            return Outcome.delivered(f"lead {status.lead_id} {status.status}")
        if status.code == LEAD_NOT_FOUND and not creates:
            return Outcome.skipped("lead_not_found", f"{_NOT_FOUND_DETAIL} (update existing only)")
        if not status.code:
            return Outcome.retry("marketo_unexpected_status", f"record status '{status.status[:40]}'")
        return Outcome.from_error(error_for_code(status.code, status.message))

    def _record_sync(self, profile: _Profile, outcome: Outcome, collected: _Outcomes) -> None:
        collected.add(profile.newest, outcome)
        if outcome.kind is not Kind.DELIVERED:
            # Without a lead there is no list membership to change: each membership item shares the fate.
            for membership in profile.memberships.values():
                if membership.item is not profile.newest:
                    collected.add(membership.item, outcome)

    def _update_most_recent(
        self, profiles: Mapping[str, _Profile], keys: Sequence[str], collected: _Outcomes
    ) -> dict[str, int]:
        """MKT-07/08: find every matching lead (all partitions); update only the most recently updated."""
        found = self._lookup(profiles, keys)
        targets: list[tuple[str, dict[str, Any]]] = []
        chosen: dict[str, tuple[int, int]] = {}
        for key in keys:
            leads = found.get(key)
            if isinstance(leads, Outcome):
                self._record_sync(profiles[key], leads, collected)
                continue
            if not leads:
                # It matched a moment ago: someone merged or deleted leads meanwhile; decide again later.
                self._record_sync(profiles[key], Outcome.retry("marketo_match_changed"), collected)
                continue
            latest = max(leads, key=updated_instant)
            chosen[key] = (latest.lead_id, len(leads))
            targets.append((key, {**profiles[key].lead, "id": latest.lead_id}))
        statuses = self._sync_batches(targets, action="updateOnly", lookup_field="id", partition=None)
        lead_ids: dict[str, int] = {}
        for key, _ in targets:
            status = statuses[key]
            if isinstance(status, Outcome):
                self._record_sync(profiles[key], status, collected)
                continue
            outcome = self._sync_outcome(status, creates=False)
            lead_id, matches = chosen[key]
            if outcome.kind is Kind.DELIVERED:
                outcome = Outcome.delivered(f"lead {lead_id} updated: the most recently updated of {matches}")
                lead_ids[key] = lead_id
            self._record_sync(profiles[key], outcome, collected)
        return lead_ids

    def _sync_batches(
        self,
        records: Sequence[tuple[str, dict[str, Any]]],
        *,
        action: str,
        lookup_field: str,
        partition: str | None,
    ) -> dict[str, RecordStatus | Outcome]:
        """Sync Leads in calls of <= 300; a call Marketo refuses as too large (413) is split in two."""
        statuses: dict[str, RecordStatus | Outcome] = {}
        pending = list(chunks(records))
        while pending:
            batch = pending.pop(0)
            try:
                results = self.client.sync_leads(
                    [lead for _, lead in batch], action=action, lookup_field=lookup_field, partition=partition
                )
            except PayloadTooLarge as exc:
                if len(batch) > 1:
                    half = len(batch) // 2
                    pending[:0] = [batch[:half], batch[half:]]
                    continue
                statuses[batch[0][0]] = Outcome.from_error(exc)
                continue
            except ActivationError as exc:
                outcome = Outcome.from_error(exc)
                statuses.update((key, outcome) for key, _ in batch)
                continue
            statuses.update((key, status) for (key, _), status in zip(batch, results, strict=True))
        return statuses

    # -- lookups --------------------------------------------------------------------------------------

    def _lookup(
        self, profiles: Mapping[str, _Profile], keys: Sequence[str]
    ) -> dict[str, list[FoundLead] | Outcome]:
        """Every lead matching each dedupe value (up to 300 values per call), across partitions."""
        found: dict[str, list[FoundLead] | Outcome] = {}
        for batch in chunks(list(keys)):
            try:
                leads = self.client.find_leads(self.settings.dedupe_field, [profiles[k].value for k in batch])
            except ActivationError as exc:
                outcome = Outcome.from_error(exc)
                found.update((k, outcome) for k in batch)
                continue
            by_key: dict[str, list[FoundLead]] = {k: [] for k in batch}
            for lead in leads:
                matches = by_key.get(normalize_key(lead.value))
                if matches is not None:
                    matches.append(lead)
            found.update(by_key)
        return found

    # -- list membership (MKT-02, COM-04) -----------------------------------------------------------

    def _sync_lists(
        self, profiles: Mapping[str, _Profile], synced: Mapping[str, int], collected: _Outcomes
    ) -> None:
        """Realized memberships join the audience's list, exited ones leave it."""
        syncs = self.settings.sync_type.syncs_profiles
        # Audience only: every lead comes from a lookup. With a profile sync, only profiles that
        # were not synced (exited everywhere) are looked up: the sync already returned the others' ids.
        lookup_keys = [k for k, p in profiles.items() if p.memberships and (not syncs or not p.any_member)]
        found = self._lookup(profiles, lookup_keys) if lookup_keys else {}
        adds: dict[int, dict[int, list[_Membership]]] = {}
        removes: dict[int, dict[int, list[_Membership]]] = {}
        list_ids: dict[str, int | Outcome] = {}
        for key, profile in profiles.items():
            for audience_id, membership in profile.memberships.items():
                list_id = list_ids.get(audience_id)
                if list_id is None:
                    list_id = list_ids[audience_id] = self._list_id(audience_id)
                if isinstance(list_id, Outcome):
                    collected.add(membership.item, list_id)
                    continue
                if key in synced:
                    ids = [synced[key]]
                elif key in found:
                    leads = found[key]
                    if isinstance(leads, Outcome):
                        collected.add(membership.item, leads)
                        continue
                    if not leads:
                        detail = "audience only never creates leads" if not syncs else "nothing to remove"
                        collected.add(
                            membership.item,
                            Outcome.skipped("lead_not_found", f"{_NOT_FOUND_DETAIL}: {detail}"),
                        )
                        continue
                    # Joining: the most recently updated lead (MKT-08); leaving: every matching lead.
                    ids = (
                        [max(leads, key=updated_instant).lead_id]
                        if membership.member
                        else [lead.lead_id for lead in leads]
                    )
                else:
                    continue  # the sync decided this membership's outcome (no lead to list)
                target = adds if membership.member else removes
                for lead_id in ids:
                    target.setdefault(list_id, {}).setdefault(lead_id, []).append(membership)
        audience_of = {v: k for k, v in list_ids.items() if isinstance(v, int)}
        for list_id, members in adds.items():
            self._list_calls(list_id, members, collected, adding=True, audience_id=audience_of[list_id])
        for list_id, members in removes.items():
            self._list_calls(list_id, members, collected, adding=False, audience_id=audience_of[list_id])

    def _list_id(self, audience_id: str) -> int | Outcome:
        """The audience's static list (configured, or found / created by name); an outcome if not now."""
        try:
            return self.lists.list_id(audience_id)
        except ActivationError as exc:
            return Outcome.from_error(exc)

    def _list_calls(
        self,
        list_id: int,
        members: Mapping[int, list[_Membership]],
        collected: _Outcomes,
        *,
        adding: bool,
        audience_id: str,
    ) -> None:
        operation = self.client.add_to_list if adding else self.client.remove_from_list
        pending = list(chunks(list(members)))
        while pending:
            batch = pending.pop(0)
            try:
                statuses = operation(list_id, batch)
            except (PayloadTooLarge, UriTooLong) as exc:
                if len(batch) > 1:
                    half = len(batch) // 2
                    pending[:0] = [batch[:half], batch[half:]]
                    continue
                statuses_error: Outcome | None = Outcome.from_error(exc)
            except ActivationError as exc:
                statuses_error = Outcome.from_error(exc)
                if exc.reason == LIST_NOT_FOUND_REASON and self.lists.is_named(audience_id):
                    # The list found or created by name was deleted at Marketo: find or create it again.
                    self.lists.forget(audience_id, list_id)
                    statuses_error = Outcome.retry("marketo_list_not_found", f"list {list_id} was deleted")
            else:
                statuses_error = None
            for lead_id in batch:
                if statuses_error is not None:
                    outcome = statuses_error
                else:
                    outcome = self._list_outcome(list_id, statuses.get(lead_id), adding=adding)
                for membership in members[lead_id]:
                    collected.add(membership.item, outcome)

    @staticmethod
    def _list_outcome(list_id: int, status: RecordStatus | None, *, adding: bool) -> Outcome:
        if status is None:
            return Outcome.retry("marketo_result_missing", f"list {list_id} returned no status for a lead")
        if status.status == ("added" if adding else "removed"):
            return Outcome.delivered(f"{status.status} {'to' if adding else 'from'} list {list_id}")
        if not adding and status.code == NOT_IN_LIST:
            return Outcome.delivered(f"not in list {list_id}")  # the state we wanted
        if status.code == LEAD_NOT_FOUND:
            return Outcome.skipped("lead_not_found", f"lead deleted before list {list_id} changed")
        if not status.code:
            return Outcome.retry(
                "marketo_unexpected_status", f"list {list_id}: status '{status.status[:40]}'"
            )
        return Outcome.from_error(error_for_code(status.code, status.message))


# ------------------------------------------------------------------------------------ the plug


def _erasure_outcome(statuses: Sequence[RecordStatus | None]) -> Outcome:
    """A person's leads, deleted: every one `deleted` or already gone (1004); none found: not found."""
    if not statuses:
        return Outcome.skipped("erasure_not_found", "no Marketo lead has this dedupe value")
    gone = [s for s in statuses if s is not None and (s.status == "deleted" or s.code == "1004")]
    if len(gone) < len(statuses):
        codes = sorted(
            {s.code or s.status for s in statuses if s is not None and s not in gone} or {"no_status"}
        )
        return Outcome.retry(
            "erasure_incomplete", f"Delete Leads left {len(statuses) - len(gone)} lead(s): {codes}"
        )
    deleted = sum(1 for s in gone if s.status == "deleted")
    if deleted == 0:
        return Outcome.skipped("erasure_not_found", "the leads were already deleted")
    return Outcome.delivered(f"erased: {deleted} Marketo lead(s) deleted")


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
        emit_metric: MetricSink = _emit_metric,
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
            gate=self._gate(settings.state_table_name, mkto),
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

    def _jittered_sleep(self, seconds: float) -> None:
        self._sleep(_jitter(seconds))

    def _gate(self, table: str, mkto: MarketoSettings) -> CallGate:
        """Marketo's limits are per instance (Munchkin ID), shared by every connection to it."""
        key = f"marketo#{mkto.munchkin_id}"
        budget = RateBudget(
            table,
            key,
            Window(mkto.calls_per_window, RATE_LIMIT_SECONDS + WINDOW_MARGIN),
            dynamodb=self._dynamodb,
            clock=self._clock,
            sleep=self._jittered_sleep,
        )
        slots = ConcurrencySlots(
            table,
            key,
            mkto.concurrent_calls,
            lease_seconds=SLOT_LEASE,
            dynamodb=self._dynamodb,
            clock=self._clock,
            sleep=self._jittered_sleep,
            poll_interval=SLOT_POLL,
        )

        def block_until(epoch_seconds: float) -> None:
            self._emit("DailyQuotaExceeded", 1.0)
            logger.warning("Marketo daily quota reached for %s; calls resume at %.0f", key, epoch_seconds)
            budget.block_until(epoch_seconds)

        return CallGate(
            slot=lambda: slots.hold(max_wait=SLOT_WAIT),
            take=lambda: budget.acquire(1, max_wait=BUDGET_WAIT),
            block_until=block_until,
        )


def _jitter(seconds: float) -> float:
    # Invocations waiting for the same refill would all wake at once and collide on the budget item;
    # waking a little later, spread out, costs nothing (the budget re-checks) and avoids the herd.
    return seconds + random.uniform(0.0, min(0.5, seconds / 4))


def _fetch(
    connection: Mapping[str, Any], *, munchkin_id: str, allow_loopback: bool, sleep: Callable[[float], None]
) -> TokenGrant:
    return fetch_token(connection, munchkin_id, allow_loopback=allow_loopback, sleep=sleep)


def call_plan(instance: DestinationInstance) -> CallPlan:
    """Per 300 members: a Sync Leads call (or, audience only, a lookup) and a list call (unless profile
    only), paced by this instance's share of the 20-s limit and by the daily quota."""
    settings = _settings(instance)
    sync = settings.sync_type
    types = ("sync" if sync.syncs_profiles else "lookup",) + (("list_add",) if sync.manages_lists else ())
    return CallPlan(
        records_per_call=BATCH_LIMIT,
        call_types=types,
        limits=(
            RateLimit(settings.calls_per_window, RATE_LIMIT_SECONDS, "calls per 20 s"),
            RateLimit(DAILY_QUOTA_CALLS, DAY_SECONDS, "daily quota"),
        ),
    )

"""The vendor-neutral destination pipeline: parse -> select audiences -> consent -> map -> deliver.

A destination plugs in a `Destination` (builds a `Connector` per configured instance); the pipeline
owns everything every destination shares and gives each SQS record exactly one outcome.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from activation_core.config_store import InvalidInstance, LoadedConfig
from activation_core.errors import ActivationError, AuthError, ConfigError, MissingValueError, RetryableError
from activation_core.guards import NO_STATE, Change, EntityState, OrderGuard, Verdict, entity_key, occurrence
from activation_core.mapping import CompiledMapping, MappedRecord
from activation_core.models.config import ActivatedAudience, DestinationInstance, DestinationsConfig
from activation_core.models.events import (
    ACCOUNT_MEMBERSHIP_CHANGED,
    PROFILE_ERASURE_REQUESTED,
    PROFILE_MEMBERSHIP_CHANGED,
    PROFILE_UPDATED,
    AccountEventDetail,
    AudienceMembership,
    ErasureRequestDetail,
    EventEnvelope,
    ProfileEventDetail,
)
from activation_core.observability import logger
from activation_core.outcomes import Kind, Outcome, combine
from activation_core.settings import FunctionSettings
from activation_core.usage_policy import check_instance, withheld_targets
from activation_core.waiting import WaitingChanges, has_waited, origin_of

Entity = Literal["profile", "account"]
# The skip reason of a message the order guard saw applied before (the same lineage): its outcome was
# counted then, so the ledger counts this one apart (`redelivered`), outside the settled sum.
REDELIVERED = "redelivered"
_ENTITY_OF_TYPE: dict[str, Entity] = {
    PROFILE_MEMBERSHIP_CHANGED: "profile",
    PROFILE_UPDATED: "profile",
    ACCOUNT_MEMBERSHIP_CHANGED: "account",
    PROFILE_ERASURE_REQUESTED: "profile",
}


@dataclass(frozen=True, slots=True)
class InboundRecord:
    """One SQS record whose body parsed as a supported event."""

    message_id: str
    receive_count: int
    event_id: str
    detail_type: str
    occurred_at: datetime
    entity: Entity
    identities: Mapping[str, str]
    attributes: Mapping[str, Any]
    consents: Mapping[str, str]
    audiences: tuple[AudienceMembership, ...]
    # None: every instance of the type; else only the named ones (a snapshot's backfill or resync).
    target_instances: frozenset[str] | None = None
    change_origin: str = "stream"
    snapshot_id: str | None = None
    # Received before, or a requeued copy: it may have waited for a rate limit (activation_core.waiting).
    waited: bool = False
    # Set on a `Profile Erasure Requested` record: the data subject request it belongs to.
    erasure_request: str | None = None
    # The message lineage: the message id of this record's first copy (activation_core.waiting).
    origin: str = ""

    def targets(self, instance_id: str) -> bool:
        return self.target_instances is None or instance_id in self.target_instances

    def source_document(self) -> dict[str, Any]:
        """What mapping rows' dotted source paths are looked up in."""
        doc: dict[str, Any] = {"identities": self.identities, "attributes": self.attributes}
        if self.entity == "account":
            doc["account"] = self.attributes
        return doc


@dataclass(frozen=True, slots=True)
class Activation:
    """An audience membership of the record that is activated on the instance."""

    membership: AudienceMembership
    audience: ActivatedAudience


def entity_of(mapped: MappedRecord) -> str:
    """The person or account a mapped record is for, as every guard and batch keys it."""
    return entity_key(mapped.identities or mapped.fields)


@dataclass(frozen=True, slots=True)
class WorkItem:
    """A record ready for a connector: mapped, with the memberships activated on its instance."""

    record: InboundRecord
    activations: tuple[Activation, ...]
    mapped: MappedRecord

    @property
    def key(self) -> str:
        return self.record.message_id

    @property
    def entity(self) -> str:
        """The person or account this item is for, as the order guard keys it: its mapped identities
        normalised (trimmed, case-folded where the namespace ignores case), whatever the mapping did."""
        return entity_of(self.mapped)


# One connector call: `deliver`, or `erase` for erasure requests.
Send = Callable[[Sequence[WorkItem]], Mapping[str, Outcome]]


class Connector(Protocol):
    """A configured destination instance: delivers work items, one outcome per item key."""

    def deliver(self, items: Sequence[WorkItem]) -> Mapping[str, Outcome]: ...


class Eraser(Protocol):
    """A connector whose vendor API can delete a person: one outcome per item key (delivered = erased,
    skipped `erasure_not_found`, or an error's outcome). A connector without `erase` is reported
    `erasure_unsupported`."""

    def erase(self, items: Sequence[WorkItem]) -> Mapping[str, Outcome]: ...


class Destination(Protocol):
    """What a destination package provides to the pipeline.

    Optionally `skip_when_missing: Mapping[str, str]`: mapping targets whose missing value is an
    ordinary gap in the data (target -> skip reason), skipped instead of rejected even when the row is
    `required`. Optional (read with getattr) so that a destination without such targets declares nothing.
    """

    destination_type: str
    entity: Entity

    def connect(self, instance: DestinationInstance, settings: FunctionSettings) -> Connector:
        """Validate the instance's settings (raise ConfigError naming the field) and build its connector."""
        ...


@dataclass(slots=True)
class InstanceOutcome:
    instance_id: str
    audience_ids: tuple[str, ...]
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class Decision:
    """What an instance decided for one record: its outcome and the audiences it concerned."""

    outcome: Outcome
    audience_ids: tuple[str, ...] = ()


@dataclass(slots=True)
class RecordResult:
    """The outcome of one SQS record, and of each instance it went to (for per-audience monitoring)."""

    outcome: Outcome
    per_instance: list[InstanceOutcome] = field(default_factory=list)
    receive_count: int = 1
    # Sent back to its queue as a new (delayed) message, still waiting: this copy is done with.
    requeued: bool = False
    erasure_request: str | None = None  # the data subject request of an erasure record
    # A change computed from this audience snapshot: also counted per snapshot (reconciliation).
    snapshot_id: str | None = None
    # Its audiences: where an instance that no longer activates them counts its skip (reconciliation).
    snapshot_audiences: tuple[str, ...] = ()


def _validation_summary(error: ValidationError) -> str:
    # Locations and messages only: pydantic's default text echoes input values, which may be PII.
    parts = [
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
        for e in error.errors(include_input=False, include_url=False)[:3]
    ]
    return "; ".join(parts)


# Validation errors that name one bad value of an otherwise well-formed event: rejected as
# `invalid_field:<path>` (the path in `detail`), not `malformed_event`.
_INVALID_VALUE_ERRORS = frozenset({"timezone_aware"})


def _invalid_value(error: ValidationError) -> Outcome | None:
    first = error.errors(include_input=False, include_url=False)[0]
    if first["type"] not in _INVALID_VALUE_ERRORS:
        return None
    path = ".".join(str(p) for p in first["loc"])
    return Outcome.rejected(f"invalid_field:{path}", f"{path}: {first['msg']}")


def non_finite_path(value: Any, path: str) -> str | None:
    """The dotted path of the first number that is not finite (NaN, Infinity, 1e400) or too large for a
    double, or None. JSON parsers here accept them; vendors' JSON serialisers and APIs do not."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, int) and not isinstance(value, bool):
        return None if abs(value) <= _LARGEST_FLOAT else path
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = non_finite_path(item, f"{path}.{key}")
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = non_finite_path(item, f"{path}.{index}")
            if found is not None:
                return found
    return None


_LARGEST_FLOAT = int(sys.float_info.max)


def parse_record(
    record: Mapping[str, Any], *, clock_skew_seconds: float = 300, now: float | None = None
) -> InboundRecord | Outcome:
    """Parse an SQS record's body (an EventBridge event); a malformed one becomes a rejection, and so
    does one stamped more than `clock_skew_seconds` in the future (it would make every later change
    of its entity stale)."""
    attributes = record.get("attributes") or {}
    receive_count = int(attributes.get("ApproximateReceiveCount", "1") or 1)
    message_id = str(record.get("messageId", ""))
    try:
        envelope = EventEnvelope.model_validate_json(record.get("body") or "")
    except ValidationError as exc:
        return Outcome.rejected("malformed_event", _validation_summary(exc))
    entity = _ENTITY_OF_TYPE.get(envelope.detail_type)
    if entity is None:
        return Outcome.rejected("unsupported_event_type", f"detail-type '{envelope.detail_type[:100]}'")
    try:
        if envelope.detail_type == PROFILE_ERASURE_REQUESTED:
            return _erasure_record(message_id, receive_count, envelope)
        if entity == "profile":
            profile_detail = ProfileEventDetail.model_validate(envelope.detail)
            subject = profile_detail.profile
            consents: Mapping[str, str] = subject.consents
            detail: ProfileEventDetail | AccountEventDetail = profile_detail
        else:
            account_detail = AccountEventDetail.model_validate(envelope.detail)
            subject_account = account_detail.account
            detail = account_detail
            consents = {}
    except ValidationError as exc:
        return _invalid_value(exc) or Outcome.rejected("malformed_event", _validation_summary(exc))
    identities = subject.identities if entity == "profile" else subject_account.identities
    attrs = subject.attributes if entity == "profile" else subject_account.attributes
    bad_value = _from_the_future(detail.occurred_at, clock_skew_seconds, now) or _non_finite(attrs, entity)
    if bad_value is not None:
        return bad_value
    return InboundRecord(
        message_id=message_id,
        receive_count=receive_count,
        event_id=detail.event_id,
        detail_type=envelope.detail_type,
        occurred_at=detail.occurred_at,
        entity=entity,
        identities=identities,
        attributes=attrs,
        consents=consents,
        audiences=tuple(detail.audiences),
        target_instances=None if detail.target_instances is None else frozenset(detail.target_instances),
        change_origin=detail.change_origin,
        snapshot_id=detail.snapshot_id if detail.change_origin == "snapshot" else None,
        waited=has_waited(record),
        origin=origin_of(record),
    )


def _from_the_future(occurred_at: datetime, clock_skew_seconds: float, now: float | None) -> Outcome | None:
    if occurred_at.timestamp() > (time.time() if now is None else now) + clock_skew_seconds:
        return Outcome.rejected(
            "invalid_field:occurredAt", f"more than {clock_skew_seconds:g} s in the future"
        )
    return None


def _non_finite(attributes: Mapping[str, Any], entity: str) -> Outcome | None:
    bad_number = non_finite_path(attributes, f"{entity}.attributes")
    if bad_number is None:
        return None
    return Outcome.rejected(f"invalid_field:{bad_number}", f"{bad_number}: not a finite number")


def _erasure_record(message_id: str, receive_count: int, envelope: EventEnvelope) -> InboundRecord:
    detail = ErasureRequestDetail.model_validate(envelope.detail)
    return InboundRecord(
        message_id=message_id,
        receive_count=receive_count,
        event_id=detail.event_id,
        detail_type=envelope.detail_type,
        occurred_at=detail.occurred_at,
        entity="profile",
        identities=detail.profile.identities,
        attributes={},
        consents={},
        audiences=(),
        erasure_request=detail.request_id,
    )


@dataclass(frozen=True, slots=True)
class Guards:
    """Order and idempotency per instance, entity and audience (activation_core.guards); None: off."""

    order: OrderGuard | None = None


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A record mapped for an instance, before the guard has seen it."""

    record: InboundRecord
    activations: tuple[Activation, ...]
    mapped: MappedRecord
    entity: str


@dataclass(slots=True)
class _Prepared:
    instance: DestinationInstance
    mapping: CompiledMapping | None
    connector: Connector | None
    # Why the instance cannot run (its config, its connection): its records retry with this.
    failure: Outcome | None = None
    identities: CompiledMapping | None = None  # the identity rows only: what an erasure looks up


@dataclass(frozen=True, slots=True)
class _Cached:
    """A prepared instance kept across invocations, with the config version it was built from."""

    version: str
    prepared: _Prepared


@dataclass(frozen=True, slots=True)
class _Instances:
    """The type's instances of this batch: those that run (or fail as a whole) and those the config
    store refused (they fail only their own audiences' records)."""

    ready: list[_Prepared]
    invalid: Sequence[InvalidInstance]
    disabled: frozenset[str] = frozenset()  # in the config, `enabled: false`


@dataclass(frozen=True, slots=True)
class _Admitted:
    """What the order guard let through, and the guard state it read (what the commit updates)."""

    work: list[WorkItem]
    applied: Mapping[str, EntityState]


def instance_failure(instance_id: str, error: Exception) -> Outcome:
    """The retry an instance's records get when it cannot run: the reason names the cause and the
    instance (`invalid_config:<id>`, `connection_unavailable:<id>`); values are never echoed."""
    if isinstance(error, ConfigError):
        return Outcome.retry(f"invalid_config:{instance_id}", f"field '{error.field}': {error.message}")
    if isinstance(error, ActivationError):
        detail = f"{error.reason}: {error.detail}" if error.detail else error.reason
    elif isinstance(error, ValidationError):
        detail = f"connection secret: {_validation_summary(error)}"
    else:
        detail = type(error).__name__
    return Outcome.retry(f"connection_unavailable:{instance_id}", detail)


class Pipeline:
    """Runs one SQS batch through every enabled instance of one destination type."""

    def __init__(
        self,
        destination: Destination,
        settings: FunctionSettings,
        load_config: Callable[[], DestinationsConfig | LoadedConfig],
        guards: Guards | None = None,
        waiting: WaitingChanges | None = None,
    ) -> None:
        self._destination = destination
        self._settings = settings
        self._load_config = load_config
        self._guards = guards or Guards()
        self._waiting = waiting
        # Connectors and compiled mappings are built once per instance version, reused across invocations.
        self._prepared: dict[str, _Cached] = {}

    def _instances(self) -> _Instances:
        loaded = self._load_config()
        if isinstance(loaded, DestinationsConfig):
            loaded = LoadedConfig(loaded)
        prepared: list[_Prepared] = []
        for instance in loaded.config.of_type(self._destination.destination_type):
            cached = self._prepared.get(instance.id)
            if cached is not None and cached.prepared.instance is instance:
                # The very config object of the last batch (config_store caches it): nothing to compare.
                prepared.append(cached.prepared)
                continue
            policies = loaded.config.usage_policies
            version = instance.model_dump_json() + policies.model_dump_json()
            if cached is None or cached.version != version:
                try:
                    # A labelled attribute mapped to a forbidden use is a config error of this instance
                    # (names field, label and action); the compiled mapping withholds it at send time.
                    check_instance(policies, instance)
                    mapping = CompiledMapping(instance.mapping, withheld_targets(policies, instance))
                    connector = self._destination.connect(instance, self._settings)
                except Exception as exc:  # this instance only: the others of the type still run
                    failure = instance_failure(instance.id, exc)
                    logger.error(
                        "destination instance unavailable",
                        extra={"instance": instance.id, "reason": failure.reason, "detail": failure.detail},
                    )
                    # Not kept: the next batch tries again (a secret or config fixed meanwhile).
                    prepared.append(_Prepared(instance, None, None, failure))
                    continue
                identities = CompiledMapping([row for row in instance.mapping if row.identity])
                cached = _Cached(version, _Prepared(instance, mapping, connector, identities=identities))
                self._prepared[instance.id] = cached
            prepared.append(cached.prepared)
        invalid = loaded.invalid_of_type(self._destination.destination_type)
        for item in invalid:
            error = item.error
            logger.error(
                "invalid destination instance",
                extra={"instance": item.id, "field": error.field, "detail": error.message},
            )
        disabled = frozenset(
            d.id
            for d in loaded.config.destinations
            if d.type == self._destination.destination_type and not d.enabled
        )
        return _Instances(prepared, invalid, disabled)

    def process(self, records: Sequence[Mapping[str, Any]]) -> dict[str, RecordResult]:
        """One RecordResult per SQS messageId; never raises for a record's fault."""
        results: dict[str, RecordResult] = {}
        parsed: list[InboundRecord] = []
        for raw in records:
            item = parse_record(raw, clock_skew_seconds=self._settings.clock_skew_seconds)
            message_id = str(raw.get("messageId", ""))
            if isinstance(item, Outcome):
                count = int((raw.get("attributes") or {}).get("ApproximateReceiveCount", "1") or 1)
                results[message_id] = RecordResult(item, receive_count=count)
            else:
                parsed.append(item)
        if not parsed:
            return results
        try:
            instances = self._instances()
        except ConfigError as exc:
            # An unreadable document: loud, and nothing lost: every record retries until it is fixed.
            logger.error("invalid destination config", extra={"reason": exc.reason, "detail": exc.detail})
            for record in parsed:
                results[record.message_id] = RecordResult(
                    Outcome.retry("invalid_config", exc.detail), receive_count=record.receive_count
                )
            return results

        per_record: dict[str, list[InstanceOutcome]] = {r.message_id: [] for r in parsed}
        for prepared in instances.ready:
            targeted = [r for r in parsed if r.targets(prepared.instance.id)]
            if not targeted:
                continue
            for message_id, decision in self._run_instance(prepared, targeted).items():
                per_record[message_id].append(
                    InstanceOutcome(prepared.instance.id, decision.audience_ids, decision.outcome)
                )
        for broken in instances.invalid:
            self._fail_broken_instance(broken, parsed, per_record)
        self._skip_disabled_targets(instances.disabled, parsed, per_record)
        for record in parsed:
            outcomes = per_record[record.message_id]
            results[record.message_id] = RecordResult(
                combine(o.outcome for o in outcomes),
                outcomes,
                record.receive_count,
                erasure_request=record.erasure_request,
                snapshot_id=record.snapshot_id,
                snapshot_audiences=tuple(m.id for m in record.audiences) if record.snapshot_id else (),
            )
        return results

    @staticmethod
    def _skip_disabled_targets(
        disabled: frozenset[str],
        parsed: Sequence[InboundRecord],
        per_record: dict[str, list[InstanceOutcome]],
    ) -> None:
        """A change targeted at an instance disabled since (a snapshot's) gets its outcome there, so the
        snapshot's reconciliation counts it instead of waiting for it."""
        for record in parsed:
            for instance_id in sorted(disabled & (record.target_instances or frozenset())):
                per_record[record.message_id].append(
                    InstanceOutcome(instance_id, (), Outcome.skipped("instance_disabled"))
                )

    def _fail_broken_instance(
        self,
        broken: InvalidInstance,
        parsed: Sequence[InboundRecord],
        per_record: dict[str, list[InstanceOutcome]],
    ) -> None:
        """A broken instance fails only the records of its own audiences (they retry, naming it)."""
        failure = instance_failure(broken.id, broken.error).with_context(broken.id)
        for record in parsed:
            audience_ids = tuple(
                m.id for m in record.audiences if broken.audience_ids is None or m.id in broken.audience_ids
            )
            if record.entity == self._destination.entity and audience_ids and record.targets(broken.id):
                per_record[record.message_id].append(InstanceOutcome(broken.id, audience_ids, failure))

    def _run_instance(self, prepared: _Prepared, records: Sequence[InboundRecord]) -> dict[str, Decision]:
        instance = prepared.instance
        decided: dict[str, Decision] = {}
        erasures = [r for r in records if r.erasure_request is not None]
        if erasures:
            decided.update(self._erase(prepared, erasures))
            records = [r for r in records if r.erasure_request is None]
        candidates: list[_Candidate] = []
        for record in records:
            activations = tuple(
                Activation(m, a) for m in record.audiences if (a := instance.audience(m.id)) is not None
            )
            audience_ids = tuple(a.audience.id for a in activations)
            early = self._screen(instance, record, activations)
            if early is None and prepared.failure is not None:
                early = prepared.failure
            if early is not None:
                decided[record.message_id] = Decision(early, audience_ids)
                continue
            if prepared.mapping is None or prepared.connector is None:  # pragma: no cover - failure set
                raise AssertionError("an instance without a connector has a failure")
            connector = prepared.connector
            try:
                mapped = prepared.mapping.apply(record.source_document())
            except MissingValueError as exc:
                decided[record.message_id] = Decision(self._missing(exc), audience_ids)
                continue
            except ActivationError as exc:
                decided[record.message_id] = Decision(Outcome.from_error(exc), audience_ids)
                continue
            candidates.append(_Candidate(record, activations, mapped, entity_of(mapped)))
        admitted = self._admit(instance.id, candidates, decided)
        if admitted.work:
            delivered = self._deliver_newest(instance.id, connector, admitted.work)
            entities = {c.record.message_id: c.entity for c in candidates}
            self._commit(instance.id, admitted.work, delivered, admitted.applied, entities)
            for item in admitted.work:
                decided[item.key] = Decision(
                    delivered[item.key], tuple(a.audience.id for a in item.activations)
                )
        return {k: replace(d, outcome=_of_instance(d.outcome, instance.id)) for k, d in decided.items()}

    def _erase(self, prepared: _Prepared, records: Sequence[InboundRecord]) -> dict[str, Decision]:
        """Erasure requests: no audience, consent or order screening (a legal obligation, idempotent).
        The stack forgets what it holds of the person on this instance, then the vendor is asked to."""
        if prepared.failure is not None or prepared.identities is None:
            failure = prepared.failure or Outcome.retry("internal_error", "instance not prepared")
            return {r.message_id: Decision(failure) for r in records}
        erase = getattr(prepared.connector, "erase", None)
        unsupported = (
            Outcome.skipped(
                "erasure_unsupported",
                f"no way to delete a person through the {self._destination.destination_type} API is known: "
                "erase the person there by hand",
            )
            if erase is None
            else None
        )
        not_found = Outcome.skipped(
            "erasure_not_found", "the request has no identity this destination matches on"
        )
        decided: dict[str, Decision] = {}
        work: list[WorkItem] = []
        for record in records:
            try:
                mapped = prepared.identities.apply(record.source_document())
            except ActivationError as exc:
                decided[record.message_id] = Decision(unsupported or Outcome.from_error(exc))
                continue
            if not mapped.identities:
                decided[record.message_id] = Decision(unsupported or not_found)
                continue
            outcome = self._forget(prepared.instance.id, mapped) or unsupported
            if outcome is not None:
                decided[record.message_id] = Decision(outcome)
                continue
            work.append(WorkItem(record, (), mapped))
        if work and erase is not None:
            for key, delivered in self._deliver(erase, work).items():
                decided[key] = Decision(delivered)
        return decided

    def _forget(self, instance_id: str, mapped: MappedRecord) -> Outcome | None:
        """The stack forgets the person too: its order record and waiting-change item on this instance
        (both keyed by the same hash of the mapped identities). A failure retries the erasure before any
        vendor call."""
        entity = entity_of(mapped)
        try:
            if self._guards.order is not None:
                self._guards.order.forget(instance_id, entity)
            if self._waiting is not None:
                self._waiting.forget(instance_id, entity)
        except Exception as exc:
            return Outcome.retry("order_guard_unavailable", type(exc).__name__)
        return None

    def _missing(self, error: MissingValueError) -> Outcome:
        skips: Mapping[str, str] = getattr(self._destination, "skip_when_missing", {})
        reason = skips.get(error.field)
        return Outcome.from_error(error) if reason is None else Outcome.skipped(reason, error.detail)

    def _admit(
        self,
        instance_id: str,
        candidates: Sequence[_Candidate],
        decided: dict[str, Decision],
    ) -> _Admitted:
        """Drop memberships a newer (or the same) event already set on this instance; one read per batch."""
        order = self._guards.order
        if order is None or not candidates:
            return _Admitted([WorkItem(c.record, c.activations, c.mapped) for c in candidates], {})
        try:
            applied = order.read(instance_id, {c.entity for c in candidates})
        except ActivationError as exc:
            outcome = Outcome.from_error(exc)
            for c in candidates:
                decided[c.record.message_id] = Decision(outcome, tuple(a.audience.id for a in c.activations))
            return _Admitted([], {})
        work: list[WorkItem] = []
        for c in candidates:
            state = applied.get(c.entity, NO_STATE)
            at = occurrence(c.record.occurred_at)
            verdicts = {
                a.audience.id: last.verdict(at, c.record.event_id, c.record.origin)
                if (last := state.get(a.audience.id))
                else Verdict.NEW
                for a in c.activations
            }
            admitted = tuple(a for a in c.activations if verdicts[a.audience.id] is Verdict.NEW)
            if admitted:
                work.append(WorkItem(c.record, admitted, c.mapped))
                continue
            audience_ids = tuple(a.audience.id for a in c.activations)
            if Verdict.REDELIVERED in verdicts.values():
                # This very message was applied (and its outcome counted) before: SQS delivered it again.
                outcome = Outcome.skipped(REDELIVERED, "this message was already applied and counted")
            elif Verdict.STALE in verdicts.values():
                outcome = Outcome.skipped(
                    "stale", "a newer event for this profile and audience was already applied"
                )
            else:
                outcome = Outcome.skipped("duplicate", "this event was already applied to this destination")
            decided[c.record.message_id] = Decision(outcome, audience_ids)
        return _Admitted(work, applied)

    def _commit(
        self,
        instance_id: str,
        work: Sequence[WorkItem],
        outcomes: dict[str, Outcome],
        applied: Mapping[str, EntityState],
        entities: Mapping[str, str],
    ) -> None:
        """Only what the vendor accepted (or the connector deliberately skipped) moves the guard: a
        retried or rejected change may be sent again (a retry, a DLQ replay), and an older one still
        passes meanwhile."""
        order = self._guards.order
        if order is None:
            return
        changes = [
            Change(
                entities[item.key],
                item.record.event_id,
                occurrence(item.record.occurred_at),
                tuple(a.audience.id for a in item.activations),
                item.record.origin,
            )
            for item in work
            if outcomes[item.key].kind in (Kind.DELIVERED, Kind.SKIPPED)
        ]
        try:
            committed = order.commit(instance_id, changes, applied)
        except Exception as exc:  # delivery already happened: a redelivery is sent again, harmlessly
            logger.warning("order guard not committed", extra={"error_type": type(exc).__name__})
            return
        for item in work:  # another invocation held the same message at once and committed it first
            if item.record.origin in committed.redelivered and outcomes[item.key].kind in (
                Kind.DELIVERED,
                Kind.SKIPPED,
            ):
                outcomes[item.key] = Outcome.skipped(
                    REDELIVERED, "another invocation applied this message at the same time"
                )

    def _screen(
        self, instance: DestinationInstance, record: InboundRecord, activations: tuple[Activation, ...]
    ) -> Outcome | None:
        if record.entity != self._destination.entity:
            return Outcome.skipped("unsupported_entity", f"{record.entity} events are not sent here")
        if not activations:
            return Outcome.skipped("audience_not_activated")
        purpose = instance.consent_purpose
        if purpose:
            consent = record.consents.get(purpose)
            if consent == "n":
                return Outcome.skipped("consent", f"consent '{purpose}' is 'n'")
            if consent is None and instance.missing_consent == "block":
                return Outcome.skipped(
                    "consent", f"consent '{purpose}' is missing and this destination blocks that"
                )
        return None

    def _deliver_newest(
        self, instance_id: str, connector: Connector, work: Sequence[WorkItem]
    ) -> dict[str, Outcome]:
        """Deliver `work` but the records a newer waiting change covers; remember what is told to wait."""
        if self._waiting is None:
            return self._deliver(connector.deliver, work)
        superseded = self._waiting.superseded(instance_id, work)
        rest = [item for item in work if item.key not in superseded]
        delivered = self._deliver(connector.deliver, rest) if rest else {}
        self._waiting.note(instance_id, rest, delivered)
        return delivered | superseded

    def _deliver(self, send: Send, work: Sequence[WorkItem]) -> dict[str, Outcome]:
        """The connector's outcomes. When it raises for the call, the offender is isolated by splitting
        the work in halves (a person's records stay together, so their order holds) until only the
        records it raises for fail; a transient error (outage, throttle) fails the whole call as is."""
        try:
            outcomes = dict(send(work))
        except (RetryableError, AuthError) as exc:
            outcome = Outcome.from_error(exc)
            return {item.key: outcome for item in work}
        except Exception as exc:  # a bug or one bad record must not hold back the others
            groups = _by_entity(work)
            if len(groups) > 1:
                half = len(groups) // 2
                first = [item for group in groups[:half] for item in group]
                rest = [item for group in groups[half:] for item in group]
                return {**self._deliver(send, first), **self._deliver(send, rest)}
            if isinstance(exc, ActivationError):
                outcome = Outcome.from_error(exc)
            else:  # it retries, then reaches the DLQ with this reason
                logger.exception("connector failed", extra={"error_type": type(exc).__name__})
                outcome = Outcome.retry("internal_error", type(exc).__name__)
            return {item.key: outcome for item in work}
        missing = Outcome.retry("no_outcome", "the connector returned no outcome for this record")
        return {item.key: outcomes.get(item.key, missing) for item in work}


def _of_instance(outcome: Outcome, instance_id: str) -> Outcome:
    """An instance's outcome as the record carries it: the instance in the detail, and in the reason of
    a config problem (`invalid_config:<instance>`, wherever the connector found it)."""
    if outcome.reason == "invalid_config":
        outcome = replace(outcome, reason=f"invalid_config:{instance_id}")
    return outcome.with_context(instance_id) if outcome.detail else outcome


def _by_entity(work: Sequence[WorkItem]) -> list[list[WorkItem]]:
    """Work items grouped by the person or account they are for, in order of first appearance."""
    groups: dict[str, list[WorkItem]] = {}
    for item in work:
        groups.setdefault(item.entity, []).append(item)
    return list(groups.values())

"""Bombora destination logic: config validation, account -> domain, list per audience, outcomes.

No boto3 and no environment reads here: the client talks to Bombora, the registry to the state table.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial

from activation_core.chunking import Failed, chunked, isolate
from activation_core.config_store import load_destinations
from activation_core.errors import (
    ActivationError,
    ConfigError,
    PermanentError,
    RetryableError,
    StillRunningError,
)
from activation_core.locks import LeaseLock
from activation_core.models.config import ActivatedAudience, DestinationInstance
from activation_core.newest import newest_per_key, superseded
from activation_core.oauth import TokenProvider
from activation_core.observability import logger
from activation_core.outcomes import Outcome, combine
from activation_core.pipeline import Connector, Entity, WorkItem
from activation_core.settings import FunctionSettings
from activation_core.validation import check_origins, check_targets, require_identity, validated
from activation_core.vendor_calls import CallPlan
from bombora.client import AccountList, BomboraClient, ListNotFoundError, fetch_token
from bombora.lists import ListRegistry, RecordedList
from bombora.models import (
    ACCEPTED_ORIGIN,
    ACCOUNT_AUDIENCE,
    AUDIENCE_EXTRAS,
    DOMAIN_TARGET,
    FORBIDDEN_DOMAIN_TRANSFORMS,
    PRIMARY_ID,
    TARGETS,
    BomboraConnection,
    BomboraSettings,
    list_key,
    normalise_domain,
)

DESTINATION_TYPE = "bombora"
# Extra calls allowed per chunk to find the records a 400/422 is about (the API names none).
_ISOLATION_BUDGET = 32
# Waits (seconds) between looks for a list whose create call was cut off (it may still be running).
_VERIFY_STEPS = (0.5, 1.0, 2.0)
_CUT_OFF = frozenset({"timeout", "connection_error"})

Peers = Callable[[FunctionSettings], Sequence[DestinationInstance]]


class Op(StrEnum):
    ADD = "add"
    REMOVE = "remove"


def validate_instance(instance: DestinationInstance) -> BomboraSettings:
    """Everything Bombora would refuse later, refused now with the instance and field named."""
    settings = validated(BomboraSettings, instance.settings, instance.id, at="settings")
    require_identity(instance, PRIMARY_ID, "any source; never sent")  # BOM-03
    check_targets(instance, TARGETS, f"Bombora takes only the targets {list(TARGETS)}")
    for row in instance.mapping:
        if row.target == DOMAIN_TARGET and FORBIDDEN_DOMAIN_TRANSFORMS & set(row.transforms):
            raise ConfigError(
                instance.id, f"mapping.{row.target}", "a hashed domain cannot build an account list"
            )
    if DOMAIN_TARGET not in {m.target for m in instance.mapping}:  # BOM-04
        raise ConfigError(
            instance.id,
            "mapping",
            f"{DOMAIN_TARGET} must be mapped (e.g. from account.accountOrganization.domain)",
        )
    check_origins(  # BOM-01
        instance, {ACCEPTED_ORIGIN}, "audiences are refused: Bombora takes segmentation audiences only"
    )
    for index, audience in enumerate(instance.audiences):
        unknown = sorted(set(audience.extras) - AUDIENCE_EXTRAS)
        if unknown:
            raise ConfigError(
                instance.id,
                f"audiences.{index}.extras",
                f"unknown keys {unknown}; known: {sorted(AUDIENCE_EXTRAS)}",
            )
        kind = audience.extras.get("audienceType", ACCOUNT_AUDIENCE)
        if kind != ACCOUNT_AUDIENCE:
            raise ConfigError(
                instance.id,
                f"audiences.{index}.extras.audienceType",
                f"'{kind}' audiences are refused: Bombora takes account audiences only",
            )
    return settings


def check_audience_names(instance: DestinationInstance, peers: Sequence[DestinationInstance]) -> None:
    """BOM-05: an audience name is activated once per Bombora connection, whatever the dataflow."""
    mine: dict[str, str] = {}
    for index, audience in enumerate(instance.audiences):
        key = list_key(audience.name)
        if key in mine:
            raise ConfigError(
                instance.id,
                f"audiences.{index}.name",
                f"audience name '{audience.name}' is activated twice here (audiences '{mine[key]}' and "
                f"'{audience.id}'); one Bombora list is kept per name",
            )
        mine[key] = audience.id
    for peer in peers:
        if peer.id == instance.id or not peer.enabled or peer.secret != instance.secret:
            continue
        for audience in peer.audiences:
            if list_key(audience.name) in mine:
                index = next(
                    i for i, a in enumerate(instance.audiences) if list_key(a.name) == list_key(audience.name)
                )
                raise ConfigError(
                    instance.id,
                    f"audiences.{index}.name",
                    f"audience name '{audience.name}' is already activated to this Bombora connection through "
                    f"dataflow '{peer.id}': an audience name may be activated once per connection "
                    f"(dataflows '{instance.id}' and '{peer.id}')",
                )


def account_key(connection: BomboraConnection) -> str:
    """One Bombora account = one base URL and client id; lists are unique by name within it."""
    return hashlib.sha256(f"{connection.base_url.rstrip('/')}\n{connection.client_id}".encode()).hexdigest()[
        :24
    ]


@dataclass(slots=True)
class _Change:
    """One activated audience membership of one record: add or remove its domain."""

    item: WorkItem
    audience: ActivatedAudience
    op: Op
    domain: str


@dataclass
class BomboraConnector:
    """One Bombora dataflow: each activated audience is one Manual account list named after it."""

    instance: DestinationInstance
    settings: BomboraSettings
    client: BomboraClient
    lists: ListRegistry
    peers: Callable[[], Sequence[DestinationInstance]]
    sleep: Callable[[float], None] = field(default=time.sleep)

    def deliver(self, items: Sequence[WorkItem]) -> Mapping[str, Outcome]:
        per_item: dict[str, list[Outcome]] = defaultdict(list)
        changes: list[_Change] = []
        for item in items:
            eligible = []
            for activation in item.activations:
                origin = activation.membership.origin
                if origin != ACCEPTED_ORIGIN:  # BOM-01, for what upstream says about this membership
                    per_item[item.key].append(
                        Outcome.skipped(
                            "unsupported_origin",
                            f"audience '{activation.audience.id}' has origin '{origin[:64]}': segmentation only",
                        )
                    )
                else:
                    eligible.append(activation)
            if not eligible:
                continue
            try:
                domain = normalise_domain(item.mapped.value(DOMAIN_TARGET))  # BOM-04
            except ActivationError as exc:
                per_item[item.key].append(Outcome.from_error(exc))
                continue
            for activation in eligible:
                op = Op.ADD if activation.membership.status.is_member else Op.REMOVE
                changes.append(_Change(item, activation.audience, op, domain))

        by_audience: dict[str, list[_Change]] = defaultdict(list)
        for change in changes:
            by_audience[change.audience.id].append(change)
        work = list(by_audience.values())
        if len(work) > 1:
            with ThreadPoolExecutor(max_workers=min(self.settings.max_concurrency, len(work))) as pool:
                decided = [pair for pairs in pool.map(self._audience, work) for pair in pairs]
        else:
            decided = [pair for changes_of_one in work for pair in self._audience(changes_of_one)]
        for key, outcome in decided:
            per_item[key].append(outcome)
        return {item.key: combine(per_item[item.key]) for item in items}

    # -- one audience -------------------------------------------------------------------------------

    def _audience(self, changes: Sequence[_Change]) -> list[tuple[str, Outcome]]:
        """Apply one audience's changes to its list; one (record key, outcome) per change."""
        audience = changes[0].audience
        # Newest event wins; within one instant, the later record in the batch.
        latest = newest_per_key(
            changes, key=lambda c: c.domain, at=lambda c: c.item.record.occurred_at
        ).by_key
        decided: list[tuple[str, Outcome]] = []
        applied: list[_Change] = []
        for change in changes:
            if change.op is latest[change.domain].op:
                applied.append(change)  # the same op twice is one account: it is sent once
            else:
                decided.append((change.item.key, superseded("a newer change in the batch")))
        adds = sorted(d for d, c in latest.items() if c.op is Op.ADD)
        removes = sorted(d for d, c in latest.items() if c.op is Op.REMOVE)
        results = self._apply(audience, adds, removes)
        missing = Outcome.retry("no_outcome", "no call decided this change")
        decided += [(c.item.key, results.get((c.op, c.domain), missing)) for c in applied]
        return decided

    def _apply(
        self, audience: ActivatedAudience, adds: list[str], removes: list[str]
    ) -> dict[tuple[Op, str], Outcome]:
        ops = [(Op.ADD, adds), (Op.REMOVE, removes)]
        try:
            recorded = self._list_for(audience, create=bool(adds))
        except ActivationError as exc:
            failed = Outcome.from_error(exc)
            return {(op, d): failed for op, domains in ops for d in domains}
        if recorded is None:
            # Only exits, and no list was ever made for this audience: nobody is in it to remove.
            absent = Outcome.skipped("list_absent", f"no Bombora list named '{audience.name}' to remove from")
            return {(Op.REMOVE, d): absent for d in removes}
        results: dict[tuple[Op, str], Outcome] = {}
        for op, domains in ops:
            send = partial(self._send, op, recorded.list_id)
            for chunk in chunked(domains, self.settings.batch_size):
                try:
                    # A 400/422 names no record: the chunk is split in halves to find the ones it is about.
                    parts = isolate(
                        chunk, send, split_on=_names_no_record, max_extra_calls=_ISOLATION_BUDGET,
                        raise_on=(ListNotFoundError,),
                    )  # fmt: skip
                except ListNotFoundError as exc:
                    # Deleted at Bombora: forget it so the retry finds or creates the list again.
                    self.lists.forget(list_key(audience.name), recorded.list_id)
                    gone = Outcome.from_error(exc)
                    return {**results, **{(o, d): gone for o, ds in ops for d in ds if (o, d) not in results}}
                for part in parts:
                    outcome = (
                        Outcome.from_error(part.error)
                        if isinstance(part, Failed)
                        else _applied(op, audience.name, accepted=part.result)
                    )
                    results.update({(op, d): outcome for d in part.entries})
        return results

    def _send(self, op: Op, list_id: str, domains: Sequence[str]) -> bool:
        """One call; True when Bombora accepted it to apply later (asynchronously)."""
        if op is Op.ADD:
            return self.client.add_accounts(list_id, domains)
        return self.client.delete_accounts(list_id, domains)

    # -- the list of an audience (BOM-05, BOM-06) ---------------------------------------------------

    def _list_for(self, audience: ActivatedAudience, *, create: bool) -> RecordedList | None:
        key = list_key(audience.name)
        recorded = self.lists.resolve(key, partial(self._find_or_create, audience, create), self.instance.id)
        if recorded is None or recorded.owner == self.instance.id:
            return recorded
        # Recorded by another dataflow on the same Bombora account (another connection secret with the
        # same credentials): an error while that dataflow still activates the name, else ours now.
        rival = next(
            (
                peer
                for peer in self.peers()
                if peer.id == recorded.owner and any(list_key(a.name) == key for a in peer.audiences)
            ),
            None,
        )
        if rival is not None:
            raise ConfigError(
                self.instance.id,
                "audiences",
                f"audience name '{audience.name}' is already activated to this Bombora account through "
                f"dataflow '{rival.id}' (dataflows '{self.instance.id}' and '{rival.id}')",
            )
        return self.lists.claim(key, recorded, self.instance.id)

    def _find_or_create(self, audience: ActivatedAudience, create: bool) -> str | None:
        """Runs under the registry's lease: the existing list named after the audience, else a new one."""
        name = audience.name.strip()
        existing = self._find(name)
        if existing is not None:
            return self._adopt(audience, existing)
        if not create:
            return None
        try:
            return self.client.create_list(name, self.settings.describe(audience.id, name))
        except RetryableError as first:
            # No clear answer: the list may exist anyway. Look before anyone creates another one; a
            # call cut off mid-flight may still be running at Bombora, so look again after short waits.
            waits = (0.0, *_VERIFY_STEPS) if first.reason in _CUT_OFF else (0.0,)
            waited = 0.0
            for step in waits:
                if waited + step > self.settings.create_verify_seconds:
                    break
                if step:
                    self.sleep(step)
                    waited += step
                try:
                    found = self._find(name)
                except RetryableError:
                    continue
                if found is not None:
                    return found.id
            # Cut off mid-flight, the create may still be running at Bombora: its lease is kept until
            # it runs out (activation_core.list_registry), so no other invocation creates another list.
            unconfirmed = StillRunningError if first.reason in _CUT_OFF else RetryableError
            raise unconfirmed(
                "bombora_list_create_unconfirmed", f"creating the list got no clear answer ({first.reason})"
            ) from first

    def _adopt(self, audience: ActivatedAudience, found: AccountList) -> str:
        """BOM-05: a list of the audience's name that this stack did not create is an error, unless the
        operator allows adopting it. The stack's own lists carry its description (a list created here
        whose record was then lost is recognised by it)."""
        if found.description == self.settings.describe(audience.id, audience.name.strip()):
            return found.id
        if self.settings.adopt_existing_lists:
            logger.info("adopting an existing Bombora list (adoptExistingLists)", extra={"list_id": found.id})
            return found.id
        raise ConfigError(
            self.instance.id,
            "audiences",
            f"audience name '{found.name}' is already used by Bombora list {found.id}, which this stack did "
            "not create (BOM-05): rename the audience, or set settings.adoptExistingLists to use that list",
        )

    def _find(self, name: str) -> AccountList | None:
        named = [lst for lst in self.client.list_lists() if lst.name.strip() == name]
        if not named:
            return None
        manual = [lst for lst in named if lst.manual]
        if not manual:
            raise ConfigError(
                self.instance.id,
                "audiences",
                f"the Bombora list named '{name}' is a {named[0].type} list; accounts can be added to "
                "Manual lists only: rename that list or the audience",
            )
        return _oldest(manual)


def _names_no_record(error: ActivationError) -> bool:
    return isinstance(error, PermanentError) and error.reason in ("http_400", "http_422")


def _applied(op: Op, name: str, *, accepted: bool) -> Outcome:
    verb = "added to" if op is Op.ADD else "removed from"
    later = " (accepted; Bombora applies it asynchronously)" if accepted else ""
    return Outcome.delivered(f"{verb} Bombora list '{name}'{later}")


def _oldest(lists: Sequence[AccountList]) -> AccountList:
    # Several lists of one name (made by hand): always the same one, the oldest.
    return min(lists, key=lambda lst: (lst.created or "~", lst.id))


def _configured_peers(settings: FunctionSettings) -> Sequence[DestinationInstance]:
    # The same cached document the pipeline just read (Powertools Parameters cache).
    return load_destinations(settings.config_parameter_name, settings.config_cache_seconds).of_type(
        DESTINATION_TYPE
    )


class BomboraDestination:
    destination_type = DESTINATION_TYPE
    entity: Entity = "account"  # BOM-01: profile events are skipped by the pipeline (unsupported_entity)

    def __init__(self, peers: Peers = _configured_peers, sleep: Callable[[float], None] = time.sleep) -> None:
        self._peers = peers
        self._sleep = sleep

    def connect(self, instance: DestinationInstance, settings: FunctionSettings) -> Connector:
        bombora_settings = validate_instance(instance)
        check_audience_names(instance, self._peers(settings))
        allow_loopback = settings.allow_loopback_urls
        lock = LeaseLock(settings.state_table_name)
        tokens = TokenProvider(
            instance.secret,
            partial(fetch_token, settings=bombora_settings, allow_loopback=allow_loopback),
            lock=lock,
        )
        connection = BomboraConnection.model_validate(tokens.connection())
        client = BomboraClient(connection, bombora_settings, tokens, allow_loopback=allow_loopback)
        lists = ListRegistry(settings.state_table_name, account_key(connection), lock=lock, sleep=self._sleep)
        return BomboraConnector(
            instance, bombora_settings, client, lists, partial(self._peers, settings), self._sleep
        )


def call_plan(instance: DestinationInstance) -> CallPlan:
    """One add call per `batchSize` accounts per list; api.bombora.com documents no rate limit."""
    settings = validate_instance(instance)
    return CallPlan(records_per_call=settings.batch_size, call_types=("add_accounts",))

"""Profile sync (MKT-02, 03, 06, 07, 08): Sync Leads for every profile with a current membership.

Matching searches every partition (MKT-07): a lead found in another partition (1010) or several
matching leads (1007) are resolved by a lookup across partitions, and only the most recently updated
lead is updated, by id (MKT-08). Calls hold at most 300 records or filter values; a call Marketo
refuses as too large (413) is split in halves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from activation_core.chunking import Failed, send_in_chunks
from activation_core.errors import ActivationError
from activation_core.outcomes import Kind, Outcome
from marketo.client import (
    LEAD_NOT_FOUND,
    MULTIPLE_MATCHES,
    OTHER_PARTITION,
    FoundLead,
    MarketoClient,
    PayloadTooLarge,
    RecordStatus,
    error_for_code,
    updated_instant,
)
from marketo.grouping import Collected, Profile
from marketo.models import BATCH_LIMIT, MarketoSettings, PersonAction, SyncType, normalize_key

NOT_FOUND_DETAIL = "no Marketo lead matches the dedupe field"


def _too_large(error: ActivationError) -> bool:
    return isinstance(error, PayloadTooLarge)


def _has_email(lead: Mapping[str, Any]) -> bool:
    email = lead.get("email")
    return isinstance(email, str) and bool(email.strip())


def lookup(
    client: MarketoClient, dedupe_field: str, profiles: Mapping[str, Profile], keys: Sequence[str]
) -> dict[str, list[FoundLead] | Outcome]:
    """Every lead matching each dedupe value (up to 300 values per call), across partitions."""
    found: dict[str, list[FoundLead] | Outcome] = {}

    def find(batch: Sequence[str]) -> list[FoundLead]:
        return client.find_leads(dedupe_field, [profiles[k].value for k in batch])

    for part in send_in_chunks(list(keys), BATCH_LIMIT, find):
        if isinstance(part, Failed):
            outcome = Outcome.from_error(part.error)
            found.update((k, outcome) for k in part.entries)
            continue
        by_key: dict[str, list[FoundLead]] = {k: [] for k in part.entries}
        for lead in part.result:
            matches = by_key.get(normalize_key(lead.value))
            if matches is not None:
                matches.append(lead)
        found.update(by_key)
    return found


class ProfileSync:
    """Sync Leads for one instance's profiles; the outcome of each goes to every item it speaks for."""

    def __init__(self, client: MarketoClient, settings: MarketoSettings) -> None:
        self.client = client
        self.settings = settings

    def sync(
        self, profiles: Mapping[str, Profile], collected: Collected, *, partition: str | None
    ) -> dict[str, int]:
        """Sync Leads for every profile with a current membership; returns lead ids by dedupe key.
        `partition`: where new leads go (None: Marketo's Default)."""
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
            partition=partition,
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
                _record(profiles[key], status, collected)
            elif status.code in (MULTIPLE_MATCHES, OTHER_PARTITION):
                resolve.append(key)
            elif key in no_email and status.code == LEAD_NOT_FOUND:
                missing = Outcome.skipped(
                    "missing_email", "no lead matches, and a lead needs an e-mail to be created"
                )
                _record(profiles[key], missing, collected)
            else:
                outcome = _sync_outcome(status, creates)
                _record(profiles[key], outcome, collected)
                if outcome.kind is Kind.DELIVERED and status.lead_id is not None:
                    lead_ids[key] = status.lead_id
        if resolve:
            lead_ids.update(self._update_most_recent(profiles, resolve, collected))
        return lead_ids

    def _update_most_recent(
        self, profiles: Mapping[str, Profile], keys: Sequence[str], collected: Collected
    ) -> dict[str, int]:
        """MKT-07/08: find every matching lead (all partitions); update only the most recently updated."""
        found = lookup(self.client, self.settings.dedupe_field, profiles, keys)
        targets: list[tuple[str, dict[str, Any]]] = []
        chosen: dict[str, tuple[int, int]] = {}
        for key in keys:
            leads = found.get(key)
            if isinstance(leads, Outcome):
                _record(profiles[key], leads, collected)
                continue
            if not leads:
                # It matched a moment ago: someone merged or deleted leads meanwhile; decide again later.
                _record(profiles[key], Outcome.retry("marketo_match_changed"), collected)
                continue
            latest = max(leads, key=updated_instant)
            chosen[key] = (latest.lead_id, len(leads))
            targets.append((key, {**profiles[key].lead, "id": latest.lead_id}))
        statuses = self._sync_batches(targets, action="updateOnly", lookup_field="id", partition=None)
        lead_ids: dict[str, int] = {}
        for key, _ in targets:
            status = statuses[key]
            if isinstance(status, Outcome):
                _record(profiles[key], status, collected)
                continue
            outcome = _sync_outcome(status, creates=False)
            lead_id, matches = chosen[key]
            if outcome.kind is Kind.DELIVERED:
                outcome = Outcome.delivered(f"lead {lead_id} updated: the most recently updated of {matches}")
                lead_ids[key] = lead_id
            _record(profiles[key], outcome, collected)
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

        def sync(batch: Sequence[tuple[str, dict[str, Any]]]) -> list[RecordStatus]:
            leads = [lead for _, lead in batch]
            return self.client.sync_leads(
                leads, action=action, lookup_field=lookup_field, partition=partition
            )

        statuses: dict[str, RecordStatus | Outcome] = {}
        for part in send_in_chunks(records, BATCH_LIMIT, sync, split_on=_too_large):
            if isinstance(part, Failed):
                outcome = Outcome.from_error(part.error)
                statuses.update((key, outcome) for key, _ in part.entries)
            else:
                statuses.update(
                    (key, status) for (key, _), status in zip(part.entries, part.result, strict=True)
                )
        return statuses


def _sync_outcome(status: RecordStatus, creates: bool) -> Outcome:
    if status.status in ("created", "updated") and status.lead_id is not None:
        return Outcome.delivered(f"lead {status.lead_id} {status.status}")
    if status.code == LEAD_NOT_FOUND and not creates:
        return Outcome.skipped("lead_not_found", f"{NOT_FOUND_DETAIL} (update existing only)")
    if not status.code:
        return Outcome.retry("marketo_unexpected_status", f"record status '{status.status[:40]}'")
    return Outcome.from_error(error_for_code(status.code, status.message))


def _record(profile: Profile, outcome: Outcome, collected: Collected) -> None:
    collected.add(profile.newest, outcome)
    if outcome.kind is not Kind.DELIVERED:
        # Without a lead there is no list membership to change: each membership item shares the fate.
        for membership in profile.memberships.values():
            if membership.item is not profile.newest:
                collected.add(membership.item, outcome)

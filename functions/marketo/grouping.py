"""A batch grouped by lead: one profile per dedupe value, with its newest data and its newest
membership per audience, and the outcomes collected for each record along the way.

Several changes to one lead in a batch become one record per lead in a call (Marketo's upsert race
would otherwise create duplicates); the newest data wins, and each audience's newest membership.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from activation_core.errors import ActivationError
from activation_core.newest import newest_per_key
from activation_core.outcomes import Outcome
from activation_core.pipeline import WorkItem
from marketo.models import DEDUPE_TARGET, build_lead, dedupe_value, normalize_key

MISSING_DEDUPE_REASON = "missing_dedupe_value"
MISSING_DEDUPE = Outcome.skipped(
    MISSING_DEDUPE_REASON, f"'{DEDUPE_TARGET}' has no value: nothing to match a lead on"
)


@dataclass
class Membership:
    at: datetime
    member: bool  # realized or existing: a current member (joins the list); exited leaves it
    item: WorkItem
    audience_id: str


@dataclass
class Profile:
    """Every item of one batch that shares a dedupe value: the newest data, the newest membership per audience."""

    value: str
    lead: dict[str, Any]
    newest: WorkItem
    memberships: dict[str, Membership] = field(default_factory=dict)
    items: list[WorkItem] = field(default_factory=list)

    @property
    def any_member(self) -> bool:
        return any(m.member for m in self.memberships.values())


@dataclass
class Collected:
    """Outcomes collected per work item; an item's final outcome combines them."""

    by_item: dict[str, list[Outcome]] = field(default_factory=dict)

    def add(self, item: WorkItem, outcome: Outcome) -> None:
        self.by_item.setdefault(item.key, []).append(outcome)


@dataclass(frozen=True, slots=True)
class _Lead:
    """One record's lead: its dedupe value, the key it is grouped by, and the fields to sync."""

    item: WorkItem
    key: str
    value: str
    fields: dict[str, Any]


def group(
    items: Sequence[WorkItem], *, dedupe_field: str, syncs_profiles: bool, final: dict[str, Outcome]
) -> dict[str, Profile]:
    """Items by dedupe value (keys in order of first appearance); an item that cannot be sent is
    decided here in `final`: skipped without a dedupe value, rejected naming its field."""
    leads: list[_Lead] = []
    for item in items:
        raw = item.mapped.value(DEDUPE_TARGET)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            # An ordinary gap in the data, not a failure: nothing to match on, nothing to replay.
            final[item.key] = MISSING_DEDUPE
            continue
        try:
            value = dedupe_value(raw)
            # Audience only never writes attributes: only the dedupe value matters then.
            fields = build_lead(item.mapped.fields if syncs_profiles else {}, dedupe_field, value)
        except ActivationError as exc:
            final[item.key] = Outcome.from_error(exc)
            continue
        leads.append(_Lead(item, normalize_key(value), value, fields))

    def at(lead: _Lead) -> datetime:
        return lead.item.record.occurred_at

    profiles = {
        key: Profile(lead.value, lead.fields, lead.item)
        for key, lead in newest_per_key(leads, key=lambda lead: lead.key, at=at).by_key.items()
    }
    key_of: dict[str, str] = {}
    memberships: list[Membership] = []
    for lead in leads:
        profiles[lead.key].items.append(lead.item)
        key_of[lead.item.key] = lead.key
        memberships += [
            Membership(at(lead), a.membership.status.is_member, lead.item, a.audience.id)
            for a in lead.item.activations
        ]
    newest = newest_per_key(memberships, key=lambda m: (key_of[m.item.key], m.audience_id), at=lambda m: m.at)
    for (key, audience_id), membership in newest.by_key.items():
        profiles[key].memberships[audience_id] = membership
    return profiles

"""List membership (MKT-02, COM-04): realized memberships join the audience's static list, exited ones
leave it, in calls of at most 300 lead ids; a call refused as too large (413, 414) is split in halves.

Which list an audience has (configured, or found / created by name) is `lists.py`'s concern.
"""

from __future__ import annotations

from collections.abc import Mapping

from activation_core.chunking import Failed, send_in_chunks
from activation_core.errors import ActivationError
from activation_core.outcomes import Outcome
from marketo.client import (
    LEAD_NOT_FOUND,
    NOT_IN_LIST,
    MarketoClient,
    PayloadTooLarge,
    RecordStatus,
    UriTooLong,
    error_for_code,
    updated_instant,
)
from marketo.grouping import Collected, Membership, Profile
from marketo.lists import AudienceLists
from marketo.models import BATCH_LIMIT, MarketoSettings
from marketo.profiles import NOT_FOUND_DETAIL, lookup

LIST_NOT_FOUND_REASON = "marketo_1013"


def _too_large(error: ActivationError) -> bool:
    return isinstance(error, PayloadTooLarge | UriTooLong)


class ListMembership:
    """Joins and leaves of one instance's audiences' static lists."""

    def __init__(self, client: MarketoClient, settings: MarketoSettings, lists: AudienceLists) -> None:
        self.client = client
        self.settings = settings
        self.lists = lists

    def sync(self, profiles: Mapping[str, Profile], synced: Mapping[str, int], collected: Collected) -> None:
        """Realized memberships join the audience's list, exited ones leave it. `synced`: the lead ids a
        profile sync just returned, by dedupe key."""
        syncs = self.settings.sync_type.syncs_profiles
        # Audience only: every lead comes from a lookup. With a profile sync, only profiles that
        # were not synced (exited everywhere) are looked up: the sync already returned the others' ids.
        lookup_keys = [k for k, p in profiles.items() if p.memberships and (not syncs or not p.any_member)]
        found = lookup(self.client, self.settings.dedupe_field, profiles, lookup_keys) if lookup_keys else {}
        adds: dict[int, dict[int, list[Membership]]] = {}
        removes: dict[int, dict[int, list[Membership]]] = {}
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
                            Outcome.skipped("lead_not_found", f"{NOT_FOUND_DETAIL}: {detail}"),
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
        members: Mapping[int, list[Membership]],
        collected: Collected,
        *,
        adding: bool,
        audience_id: str,
    ) -> None:
        operation = self.client.add_to_list if adding else self.client.remove_from_list
        parts = send_in_chunks(
            list(members), BATCH_LIMIT, lambda ids: operation(list_id, ids), split_on=_too_large
        )
        for part in parts:
            if isinstance(part, Failed):
                outcomes = dict.fromkeys(part.entries, self._failed_call(part.error, list_id, audience_id))
            else:
                outcomes = {
                    i: _list_outcome(list_id, part.result.get(i), adding=adding) for i in part.entries
                }
            for lead_id, outcome in outcomes.items():
                for membership in members[lead_id]:
                    collected.add(membership.item, outcome)

    def _failed_call(self, error: ActivationError, list_id: int, audience_id: str) -> Outcome:
        if error.reason == LIST_NOT_FOUND_REASON and self.lists.is_named(audience_id):
            # The list found or created by name was deleted at Marketo: find or create it again.
            self.lists.forget(audience_id, list_id)
            return Outcome.retry("marketo_list_not_found", f"list {list_id} was deleted")
        return Outcome.from_error(error)


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
        return Outcome.retry("marketo_unexpected_status", f"list {list_id}: status '{status.status[:40]}'")
    return Outcome.from_error(error_for_code(status.code, status.message))

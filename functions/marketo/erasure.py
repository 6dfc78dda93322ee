"""A data subject request: every lead with the person's dedupe value (every partition) is deleted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from activation_core.chunking import chunked
from activation_core.errors import ActivationError
from activation_core.outcomes import Outcome
from activation_core.pipeline import WorkItem
from marketo.client import MarketoClient, RecordStatus
from marketo.models import BATCH_LIMIT, DEDUPE_TARGET, MarketoSettings, dedupe_value, normalize_key


def erase(
    client: MarketoClient, settings: MarketoSettings, items: Sequence[WorkItem]
) -> Mapping[str, Outcome]:
    """Find the leads by the dedupe field (every partition), then Delete Leads, holding one call slot."""
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
        with client.gate.slot():
            for batch in chunked(list(people), BATCH_LIMIT):
                for lead in client.find_leads(settings.dedupe_field, [values[k] for k in batch]):
                    found.setdefault(normalize_key(lead.value), []).append(lead.lead_id)
            for batch_ids in chunked([i for lead_ids in found.values() for i in lead_ids], BATCH_LIMIT):
                statuses.update(client.delete_leads(batch_ids))
    except ActivationError as exc:
        outcome = Outcome.from_error(exc)
        return final | {item.key: outcome for group in people.values() for item in group}
    for key, group in people.items():
        outcome = _erasure_outcome([statuses.get(i) for i in found.get(key, [])])
        final.update((item.key, outcome) for item in group)
    return final


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

"""Webhook destination logic: config validation, record -> JSON record, batches and outcomes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from activation_core.chunking import Failed, send_in_chunks
from activation_core.credentials import StaticCredentials
from activation_core.models.config import DestinationInstance
from activation_core.newest import newest_per_key, superseded
from activation_core.outcomes import Outcome
from activation_core.pipeline import Connector, Entity, WorkItem
from activation_core.settings import FunctionSettings
from activation_core.validation import validated
from activation_core.vendor_calls import CallPlan
from webhook.client import WebhookClient
from webhook.models import WebhookConnection, WebhookSettings

# A refused batch is split to find the record it is about; a throttle or an outage never is.
REFUSED_BATCH = frozenset({"http_400", "http_413", "http_422"})


def validate_instance(instance: DestinationInstance) -> WebhookSettings:
    return validated(WebhookSettings, instance.settings, instance.id, at="settings")


def to_record(item: WorkItem) -> dict[str, Any]:
    """What the endpoint receives for one change: its id, when it happened, the audiences and fields."""
    record = item.record
    return {
        "id": item.key,
        "eventId": record.event_id,
        "type": "erasure" if record.erasure_request else "change",
        "occurredAt": record.occurred_at.isoformat(),
        "audiences": [
            {"id": a.audience.id, "name": a.audience.name, "status": str(a.membership.status)}
            for a in item.activations
        ],
        "identities": item.mapped.identities,
        "fields": item.mapped.fields,
        **({"erasureRequest": record.erasure_request} if record.erasure_request else {}),
    }


@dataclass
class WebhookConnector:
    instance: DestinationInstance
    settings: WebhookSettings
    client: WebhookClient

    def deliver(self, items: Sequence[WorkItem]) -> Mapping[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        # Several changes to one person in a batch: the newest only, so the endpoint never sees them reordered.
        # Keyed as the order guard keys a person (`Dora@Example.com` and `dora@example.com` are one).
        newest = newest_per_key(items, key=lambda i: i.entity, at=lambda i: i.record.occurred_at)
        for stale in newest.superseded:
            outcomes[stale.key] = superseded("a newer event in the batch")
        outcomes.update(self._send(list(newest.by_key.values())))
        return outcomes

    def erase(self, items: Sequence[WorkItem]) -> Mapping[str, Outcome]:
        """An erasure request is a record of type `erasure`: the endpoint deletes the person."""
        return self._send(items)

    def _send(self, items: Sequence[WorkItem]) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        sent = send_in_chunks(
            [(item.key, to_record(item)) for item in items],
            self.settings.batch_size,
            lambda chunk: self.client.post([record for _, record in chunk]),
            split_on=lambda error: error.reason in REFUSED_BATCH,
        )
        for part in sent:
            outcome = Outcome.from_error(part.error) if isinstance(part, Failed) else Outcome.delivered()
            outcomes.update((key, outcome) for key, _ in part.entries)
        return outcomes


class WebhookDestination:
    destination_type = "webhook"
    entity: Entity = "profile"

    def connect(self, instance: DestinationInstance, settings: FunctionSettings) -> Connector:
        webhook_settings = validate_instance(instance)
        credentials = StaticCredentials(instance.secret, field="signingSecret")
        connection = WebhookConnection.model_validate(credentials.connection())
        client = WebhookClient(
            connection, webhook_settings, credentials, allow_loopback=settings.allow_loopback_urls
        )
        return WebhookConnector(instance, webhook_settings, client)


def call_plan(instance: DestinationInstance) -> CallPlan:
    """One POST per `batchSize` records; the endpoint is the operator's own, with no published limit."""
    settings = validate_instance(instance)
    return CallPlan(records_per_call=settings.batch_size, call_types=("receive",))

"""A recording destination for pipeline tests: a connector that remembers what it was given."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from activation_core.config_store import parse_destinations
from activation_core.errors import ConfigError
from activation_core.models.config import DestinationInstance, DestinationsConfig
from activation_core.outcomes import Outcome
from activation_core.pipeline import WorkItem
from activation_core.settings import FunctionSettings

SETTINGS = FunctionSettings(
    destination_type="recording", config_parameter_name="/p", state_table_name="t", dead_letter_queue_url="q"
)


@dataclass
class RecordingConnector:
    instance_id: str
    outcome: Outcome | Exception = field(default_factory=Outcome.delivered)
    seen: list[WorkItem] = field(default_factory=list)

    def deliver(self, items: Sequence[WorkItem]) -> Mapping[str, Outcome]:
        self.seen.extend(items)
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return {item.key: self.outcome for item in items}


@dataclass
class RecordingDestination:
    destination_type: str = "recording"
    entity: Any = "profile"
    connectors: dict[str, RecordingConnector] = field(default_factory=dict)
    connects: int = 0
    fail_connect: bool = False

    def connect(self, instance: DestinationInstance, settings: FunctionSettings) -> RecordingConnector:
        self.connects += 1
        if self.fail_connect:
            raise ConfigError(instance.id, "settings.x", "bad")
        return self.connectors.setdefault(instance.id, RecordingConnector(instance.id))


def config(*ids: str, consent: str | None = "marketing.email") -> DestinationsConfig:
    return parse_destinations(
        {
            "destinations": [
                {
                    "id": i,
                    "type": "recording",
                    "secret": "s",
                    "consentPurpose": consent,
                    "audiences": [{"id": "aud-expo-invitees", "name": "Expo"}],
                    "mapping": [
                        {"source": "identities.email", "target": "email", "identity": True, "required": True},
                        {"source": "attributes.person.name.firstName", "target": "firstname"},
                    ],
                }
                for i in ids
            ]
        }
    )

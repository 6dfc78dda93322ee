"""Helpers of the Bombora contract tests: example instance, pipelines, account events."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from activation_core.config_store import parse_destinations
from activation_core.pipeline import Pipeline
from activation_core.settings import FunctionSettings
from bombora.models import BomboraSettings
from bombora.service import BomboraDestination
from local.fakes.bombora import FakeBombora
from tests.support import example_config, load_event

SECRET = "activation-local/bombora/abm"
AUDIENCE = "aud-abm-tier1"
AUDIENCE_NAME = "ABM tier 1"


def secret_for(fake: FakeBombora) -> dict[str, str]:
    return {"baseUrl": fake.base_url, "clientId": fake.client_id, "clientSecret": fake.client_secret}


def bombora_instance(**settings: Any) -> dict[str, Any]:
    """The example Bombora instance (functions/bombora/example.json), settings overridden."""
    instance = next(d for d in example_config()["destinations"] if d["type"] == "bombora")
    instance = copy.deepcopy(instance)
    instance["settings"].update({"pendingRetrySeconds": 0.0, **settings})
    return instance


def pipeline(
    settings: FunctionSettings, *instances: dict[str, Any], sleep: Callable[[float], None] = lambda _: None
) -> Pipeline:
    config = parse_destinations(
        {"schemaVersion": "1", "destinations": list(instances) or [bombora_instance()]}
    )
    destination = BomboraDestination(peers=lambda _: config.of_type("bombora"), sleep=sleep)
    return Pipeline(destination, settings, lambda: config)


def account(
    domain: Any,
    *,
    status: str = "realized",
    audience: str = AUDIENCE,
    name: str = AUDIENCE_NAME,
    origin: str = "segmentation",
    occurred_at: str = "2026-11-28T10:00:00Z",
    primary: str = "ACC-1",
) -> dict[str, Any]:
    """An `Account Audience Membership Changed` event (events/eventbridge/account-membership-realized.json)."""
    event = load_event("account-membership-realized")
    detail = event["detail"]
    detail["occurredAt"] = occurred_at
    detail["account"]["identities"]["crmAccountId"] = primary
    detail["account"]["attributes"]["accountOrganization"]["domain"] = domain
    detail["audiences"] = [{"id": audience, "name": name, "status": status, "origin": origin}]
    return event


def stack_made_list(fake: FakeBombora, domains: list[str] | None = None) -> str:
    """The audience's list as this stack created it earlier (its description), though not recorded here."""
    description = BomboraSettings().describe(AUDIENCE, AUDIENCE_NAME)
    return fake.add_list(AUDIENCE_NAME, domains or [], description=description)

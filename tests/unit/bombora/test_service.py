"""Finding or creating an audience's list when Bombora's answer to a create is lost (BOM-06) - no network."""

from __future__ import annotations

from typing import Any

import pytest

from activation_core.errors import RetryableError
from activation_core.models.config import ActivatedAudience, DestinationInstance
from bombora.client import AccountList
from bombora.models import BomboraSettings
from bombora.service import BomboraConnector

AUDIENCE = ActivatedAudience(id="aud-1", name="ABM tier 1")


class StubClient:
    """Bombora's list calls: the create fails with `error`; the list shows up at the `appears_at`-th look."""

    def __init__(self, error: RetryableError, appears_at: int | None) -> None:
        self.error = error
        self.appears_at = appears_at
        self.looks = 0
        self.creates = 0

    def list_lists(self) -> list[AccountList]:
        self.looks += 1
        if self.appears_at is not None and self.looks >= self.appears_at:
            return [AccountList("list-1", AUDIENCE.name, "Manual", "2026-01-01")]
        return []

    def create_list(self, name: str, description: str) -> str:
        self.creates += 1
        raise self.error


def connector(client: StubClient, slept: list[float]) -> BomboraConnector:
    instance = DestinationInstance(id="bombora-abm", type="bombora", secret="s", audiences=(AUDIENCE,))
    stub: Any = client
    no_lists: Any = None  # these tests never reach the list registry
    return BomboraConnector(instance, BomboraSettings(), stub, lists=no_lists, peers=list, sleep=slept.append)


def test_bom_06_a_create_cut_off_mid_flight_is_looked_for_before_anything_else() -> None:
    client = StubClient(RetryableError("timeout", "ReadTimeout"), appears_at=3)  # found on the 2nd look after
    slept: list[float] = []
    assert connector(client, slept)._find_or_create(AUDIENCE, create=True) == "list-1"
    assert client.creates == 1
    assert slept == [0.5]  # looked at once, then after 0.5 s


def test_bom_06_an_answered_failure_is_looked_for_once_then_retried_from_the_queue() -> None:
    client = StubClient(RetryableError("http_503", "busy"), appears_at=None)
    slept: list[float] = []
    with pytest.raises(RetryableError) as err:
        connector(client, slept)._find_or_create(AUDIENCE, create=True)
    assert err.value.reason == "bombora_list_create_unconfirmed"
    assert (client.creates, client.looks, slept) == (1, 2, [])


def test_bom_06_looking_for_a_cut_off_create_is_bounded() -> None:
    client = StubClient(RetryableError("connection_error", "ReadError"), appears_at=None)
    slept: list[float] = []
    with pytest.raises(RetryableError):
        connector(client, slept)._find_or_create(AUDIENCE, create=True)
    assert sum(slept) <= BomboraSettings().create_verify_seconds
    assert client.creates == 1  # never a second create in the same attempt


def test_an_exit_only_lookup_never_creates() -> None:
    client = StubClient(RetryableError("timeout"), appears_at=None)
    assert connector(client, [])._find_or_create(AUDIENCE, create=False) is None
    assert client.creates == 0

"""`activation preview`: the exact vendor requests one event would produce, secrets masked, nothing
sent (COM-05, COM-06, RNF-02..04)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from activation_cli import sandbox
from local.fakes.rainfocus import FakeRainfocus
from tests.cli.conftest import Invoke
from tests.support import example_config, load_event

EVENTS = Path(__file__).resolve().parents[2] / "events" / "eventbridge"


def test_rnf_04_preview_shows_the_exact_rainfocus_request_with_secrets_and_emails_masked() -> None:
    events = [
        load_event(n)
        for n in ("profile-membership-realized", "profile-consent-withdrawn", "profile-other-audience")
    ]
    preview = sandbox.run({"config": example_config(), "instance": "rainfocus-expo2026", "events": events})

    token, store = preview["requests"]
    assert (token["method"], token["url"]) == ("POST", "https://api.rainfocus.com/oauth/token")
    assert token["body"] == {
        "grant_type": "client_credentials",
        "client_id": "<secret:redacted>",
        "client_secret": "<secret:redacted>",
    }
    assert (store["method"], store["url"]) == (
        "POST",
        "https://api.rainfocus.com/api/org-1/v3/attendee/store",
    )
    assert store["headers"]["authorization"] == "Bearer <secret:redacted>"
    assert store["headers"]["apiprofile"] == "<secret:redacted>"
    assert store["body"] == {
        "event": "expo2026", "email": "<email:redacted>", "firstname": "Ada", "lastname": "Lovelace",
        "jobtitle": "Chief Engineer", "companyname": "Analytical Engines Ltd", "address1": "12 Babbage Street",
        "address2": "Suite 3", "city": "Boston", "countryid": "US", "state": "MA", "zip": "02110",
        "phone": "+1 617 555 0100",
    }  # fmt: skip
    assert [(o["outcome"], o["reason"]) for o in preview["outcomes"]] == [
        ("delivered", "delivered"),
        ("skipped", "consent"),  # COM-06: a withdrawn consent never leaves the platform
        ("skipped", "audience_not_activated"),
    ]
    text = json.dumps(preview)
    fake = FakeRainfocus()
    for credential in (fake.client_secret, fake.client_id, fake.api_profile):
        assert credential not in text
    assert "@" not in text  # no plain email without showPii


def test_rnf_02_preview_with_show_pii_shows_the_lower_cased_email_and_still_masks_secrets() -> None:
    preview = sandbox.run({**_request("rainfocus-expo2026", "profile-membership-realized"), "showPii": True})
    assert preview["requests"][-1]["body"]["email"] == "ada.lovelace@example.com"
    assert FakeRainfocus().client_secret not in json.dumps(preview)


def test_preview_takes_the_sqs_batch_a_function_receives() -> None:
    batch = json.loads((EVENTS.parent / "sqs" / "rainfocus-batch.json").read_text())
    request = {"config": example_config(), "instance": "rainfocus-expo2026", "events": batch["Records"]}
    outcomes = sandbox.run(request)["outcomes"]
    assert sorted(o["messageId"] for o in outcomes) == sorted(r["messageId"] for r in batch["Records"])
    assert "delivered" in {o["outcome"] for o in outcomes}


def test_preview_needs_a_known_instance(cli: Invoke) -> None:
    result = cli("preview", "-d", "nope", EVENTS / "profile-membership-realized.json")
    assert result.exit_code == 1
    assert "rainfocus-expo2026" in result.stderr  # the known ids are named


def _request(instance: str, event: str) -> dict[str, Any]:
    return {"config": example_config(), "instance": instance, "events": [load_event(event)]}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Any socket connection attempt fails the preview and is recorded."""
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError("the preview must not open a connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


@pytest.mark.parametrize(
    ("instance", "event"),
    [
        ("rainfocus-expo2026", "profile-membership-realized"),
        ("marketo-expo2026", "profile-membership-realized"),
        ("outreach-sales", "profile-membership-realized"),
        ("bombora-abm", "account-membership-realized"),
    ],
)
def test_preview_plays_each_destination_through_without_a_single_connection(
    no_network: list[object], instance: str, event: str
) -> None:
    result = sandbox.run(_request(instance, event))
    assert no_network == []
    assert result["requests"], "the connector made no request"
    assert all(r["status"] < 400 for r in result["requests"]), result["requests"]
    assert [o["outcome"] for o in result["outcomes"]] == ["delivered"]
    assert all(r["url"].startswith("https://") and "127.0.0.1" not in r["url"] for r in result["requests"])
    assert "<secret:redacted>" in json.dumps(result["requests"])  # the token call's credentials

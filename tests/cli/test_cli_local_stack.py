"""Every CLI command against the local stack (template.yaml in moto, fake vendors): the CLI finds
everything through the stack's outputs and AWS_ENDPOINT_URL, exactly as it does on AWS
(COM-02, COM-03, COM-07, COM-08, COM-09, OUT-01, SFMC)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.examples import example_config, sample_events
from local.harness import DESTINATION_TYPES, STACK_NAME, ActivationHarness
from tests.cli.conftest import Invoke
from tests.cli.helpers import stdout_json, write_json

pytestmark = pytest.mark.integration

EVENTS = Path(__file__).resolve().parents[2] / "events" / "eventbridge"
SOURCES = Path(__file__).resolve().parents[2] / "shared" / "config" / "sources"
ADA = b"ada.lovelace@example.com"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ActivationHarness]:
    """The sample events through the stack, Ada's attendee refused once by RainFocus (API profile
    missing: a permanent error, so her record goes to the DLQ with its reason, to be replayed)."""
    with ActivationHarness(workdir=tmp_path_factory.mktemp("cli")) as harness:
        harness.fake("rainfocus").fail_next(
            "attendee/store", 1, 400,
            body={"responseCode": "103", "responseMessage": "Required parameter missing: apiProfile"},
            body_contains=ADA,
        )  # fmt: skip
        harness.publish(sample_events())
        harness.drain()
        yield harness


def _status(cli: Invoke, *args: str) -> dict[str, Any]:
    result = cli("status", "--stack", STACK_NAME, "--json", *args)
    assert result.exit_code in (0, 3), result.output
    return {d["type"]: d for d in stdout_json(result)["destinations"]}


def test_com_08_status_counts_per_destination_instance_and_audience_and_the_books_balance(
    cli: Invoke, stack: ActivationHarness
) -> None:
    status = _status(cli)
    assert sorted(status) == sorted(DESTINATION_TYPES)
    for destination_type in DESTINATION_TYPES:
        report = stack.report(destination_type)
        row = status[destination_type]
        assert row["received"] == report.count("received") == report.published
        assert (row["delivered"], row["skipped"], row["dlq"], row["redelivered"]) == (
            report.count("delivered"), report.count("skipped"), report.dlq_depth, report.count("redelivered"),
        )  # fmt: skip
        assert row["balanced"], row
    rainfocus = status["rainfocus"]
    instance = next(i for i in rainfocus["instances"] if i["id"] == "rainfocus-expo2026")
    audience = next(a for a in instance["audiences"] if a["id"] == "aud-expo-invitees")
    ledger = stack.ledger("rainfocus", "rainfocus#rainfocus-expo2026#aud-expo-invitees")
    assert audience["received"] == ledger["received"] > 0
    assert audience["delivered"] == ledger.get("delivered", 0)
    assert rainfocus["reasons"]["skipped"]["consent"] == 1  # skipped, with reasons (COM-08)

    table = cli("status", "--stack", STACK_NAME)
    assert table.exit_code == 0
    assert "aud-expo-invitees" in table.stdout and "balanced" in table.stdout
    assert "redelivered" in table.stdout  # counted apart from the settled outcomes (COM-08)
    watched = cli("status", "--stack", STACK_NAME, "-d", "rainfocus", "--watch", "0.01", "--times", "2")
    assert watched.exit_code == 0 and "rainfocus-expo2026" in watched.stdout


def test_com_09_dlq_list_shows_each_message_with_its_reason_and_leaves_it_there(
    cli: Invoke, stack: ActivationHarness
) -> None:
    listed = stdout_json(cli("dlq", "list", "--stack", STACK_NAME, "-d", "rainfocus", "--json"))["messages"]
    reasons = sorted(m["reason"] for m in listed)
    assert "rainfocus_103" in reasons and "malformed_event" in reasons
    assert any(r.startswith("invalid_field:countryid") for r in reasons)
    assert len(listed) == stack.report("rainfocus").dlq_depth  # still there, visible

    table = cli("dlq", "list", "--stack", STACK_NAME, "-d", "rainfocus")
    assert "rainfocus_103" in table.stdout and "evt-" in table.stdout
    assert cli("dlq", "list", "--stack", STACK_NAME, "-d", "no_such_destination").exit_code == 1


def test_com_09_replay_after_the_fix_gives_the_record_an_outcome_and_the_books_still_balance(
    cli: Invoke, stack: ActivationHarness
) -> None:
    before = _status(cli)["rainfocus"]
    result = cli(
        "dlq",
        "replay",
        "--stack",
        STACK_NAME,
        "-d",
        "rainfocus",
        "--reason",
        "rainfocus_103",
        "--yes",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert stdout_json(result)["replayed"] == 1
    stack.drain()  # the fault was one-off: the cause is fixed

    after = _status(cli)["rainfocus"]
    assert after["replayed"] == 1 and after["dlq"] == before["dlq"] - 1
    assert after["delivered"] + after["skipped"] == before["delivered"] + before["skipped"] + 1
    assert after["balanced"], after
    left = [m["MessageAttributes"]["reason"]["StringValue"] for m in stack.dlq_messages("rainfocus")]
    assert "rainfocus_103" not in left


def test_com_03_config_push_validates_checks_the_stack_and_writes_the_parameter(
    cli: Invoke, stack: ActivationHarness, tmp_path: Path
) -> None:
    document = example_config()
    rainfocus = next(d for d in document["destinations"] if d["type"] == "rainfocus")
    rainfocus["audiences"].append({"id": "aud-webinar", "name": "Webinar", "origin": "upload"})
    path = write_json(tmp_path / "config.json", document)

    dry = stdout_json(cli("config", "push", path, "--stack", STACK_NAME, "--dry-run", "--json"))
    assert dry["written"] is False and dry["changed"] == ["rainfocus-expo2026"]
    assert stdout_json(cli("config", "show", "--stack", STACK_NAME, "--json")) == example_config()

    pushed = stdout_json(cli("config", "push", path, "--stack", STACK_NAME, "--json"))
    assert pushed["written"] is True and pushed["missingSecrets"] == []
    assert stdout_json(cli("config", "show", "--stack", STACK_NAME, "--json")) == document

    rainfocus["secret"] = "elsewhere/rainfocus/expo2026"  # not under the function's prefix
    refused = cli(
        "config", "push", write_json(tmp_path / "bad.json", document), "--stack", STACK_NAME, "--json"
    )
    assert refused.exit_code == 1
    assert stdout_json(refused)["errors"][0] == {
        "instance": "rainfocus-expo2026",
        "field": "secret",
        "message": f"must be named under '{STACK_NAME}/rainfocus/' (the function reads only those)",
    }
    assert cli("config", "push", path, "--stack", "no-such-stack").exit_code == 1


def test_preview_reads_the_config_the_stack_runs_with_and_sends_nothing(
    cli: Invoke, stack: ActivationHarness, tmp_path: Path
) -> None:
    document = example_config()  # the stack's config activates a webinar audience the example does not
    rainfocus = next(d for d in document["destinations"] if d["type"] == "rainfocus")
    rainfocus["audiences"].append({"id": "aud-webinar", "name": "Webinar", "origin": "upload"})
    stack.install_config(document)
    event = json.loads((EVENTS / "profile-membership-realized.json").read_text())
    event["detail"]["audiences"] = [
        {
            "id": "aud-webinar",
            "name": "Webinar",
            "status": "realized",
            "origin": "upload",
            "updatedAt": "2026-11-28T09:59:00Z",
        }
    ]
    fake = stack.fake("rainfocus")
    seen = len(fake.requests)

    result = cli(
        "preview", "--stack", STACK_NAME, "-d", "rainfocus-expo2026", write_json(tmp_path / "e.json", event)
    )
    assert result.exit_code == 0, result.output
    assert "1. POST https://api.rainfocus.com/oauth/token" in result.stdout
    assert "2. POST https://api.rainfocus.com/api/org-1/v3/attendee/store" in result.stdout
    assert '"event": "expo2026"' in result.stdout and "nothing sent" in result.stdout
    assert fake.client_secret not in result.stdout
    assert len(fake.requests) == seen  # the vendor (here its fake) received nothing


def test_com_02_connect_writes_a_connection_the_function_then_delivers_with(
    cli: Invoke, stack: ActivationHarness
) -> None:
    secrets = stack.stack.client("secretsmanager")
    name = f"{STACK_NAME}/rainfocus/expo2026"
    fake = stack.fake("rainfocus")
    result = cli(
        "connect", "rainfocus", "--secret", name, "--stack", STACK_NAME, "--json",
        "--set", f"clientId={fake.client_id}", "--set", f"orgId={fake.org_id}",
        env={"RAINFOCUS_CLIENT_SECRET": fake.client_secret},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(secrets.get_secret_value(SecretId=name)["SecretString"])
    assert "cachedToken" not in document and document["clientSecret"] == fake.client_secret
    assert fake.client_secret not in result.output

    event = json.loads((EVENTS / "profile-membership-realized.json").read_text())
    event["detail"]["eventId"] = "evt-after-connect"
    event["detail"]["occurredAt"] = event["detail"]["audiences"][0]["updatedAt"] = "2026-11-29T10:00:00Z"
    before = _status(cli)["rainfocus"]["delivered"]
    stack.publish([event])
    stack.drain()
    assert _status(cli)["rainfocus"]["delivered"] == before + 1

    wrong = cli("connect", "rainfocus", "--secret", "elsewhere/x", "--stack", STACK_NAME)
    assert wrong.exit_code == 1 and f"{STACK_NAME}/rainfocus/" in wrong.stderr
    shown = stdout_json(cli("connect", "show", "--secret", name, "--json"))["fields"]
    assert shown["clientSecret"] == "<set>"


def test_out_01_connect_outreach_exchanges_a_login_code_for_a_stored_refresh_token(
    cli: Invoke, stack: ActivationHarness
) -> None:
    fake = stack.fake("outreach")
    fake.mint_interval = 0.0  # the set-up already minted this minute
    name = f"{STACK_NAME}/outreach/sales"
    secrets = stack.stack.client("secretsmanager")
    old = json.loads(secrets.get_secret_value(SecretId=name)["SecretString"])["refreshToken"]
    url = cli(
        "connect", "outreach", "url", "--client-id", fake.client_id, "--redirect-uri", fake.redirect_uri
    )
    assert "response_type=code" in url.stdout

    result = cli(
        "connect", "outreach", "exchange", "--secret", name, "--code", fake.authorize(),
        "--stack", STACK_NAME, "--allow-loopback",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    stored = json.loads(secrets.get_secret_value(SecretId=name)["SecretString"])
    assert stored["refreshToken"] != old and stored["refreshToken"] in fake.refresh_tokens
    assert stored["refreshToken"] not in result.output

    refused = cli(
        "connect", "outreach", "exchange", "--secret", name, "--code", "not-a-code", "--allow-loopback"
    )
    assert refused.exit_code == 1


def test_sfmc_ingest_run_waits_for_the_run_and_status_shows_it(cli: Invoke, stack: ActivationHarness) -> None:
    if "SfmcIngestionStateMachineArn" not in stack.outputs:
        pytest.skip("this template has no SFMC ingestion")
    result = cli(
        "ingest",
        "run",
        "--stack",
        STACK_NAME,
        "--data-extension",
        "Web_Activity",
        "--wait",
        "--poll",
        "0.1",
        "--json",
    )
    assert result.exit_code == 0, result.output
    run = stdout_json(result)
    assert run["status"] == "SUCCEEDED"
    status = stdout_json(cli("ingest", "status", "--stack", STACK_NAME, "--json"))
    latest = status["runs"][0]
    assert latest["runId"] in run["executionArn"]
    assert [d["dataExtension"] for d in latest["dataExtensions"]] == ["Web_Activity"]
    assert "sfmc-main#Web_Activity" in status["watermarks"]
    assert "Web_Activity" in cli("ingest", "status", "--stack", STACK_NAME).stdout


def test_sfmc_ingest_config_is_validated_then_pushed(
    cli: Invoke, stack: ActivationHarness, tmp_path: Path
) -> None:
    if "SfmcIngestionConfigParameterName" not in stack.outputs:
        pytest.skip("this template has no SFMC ingestion")
    source = json.loads((SOURCES / "sfmc.example.json").read_text())
    path = write_json(tmp_path / "ingestion.json", {"schemaVersion": "1", "sources": [source]})
    assert cli("ingest", "validate", path).exit_code == 0
    pushed = cli("ingest", "push", path, "--stack", STACK_NAME)
    assert pushed.exit_code == 0, pushed.output
    parameter = stack.outputs["SfmcIngestionConfigParameterName"]
    stored = json.loads(stack.stack.client("ssm").get_parameter(Name=parameter)["Parameter"]["Value"])
    assert [s["id"] for s in stored["sources"]] == [source["id"]]

    source["id"] = "Not An Id!"
    broken = cli(
        "ingest", "validate", write_json(tmp_path / "bad.json", {"schemaVersion": "1", "sources": [source]})
    )
    assert broken.exit_code == 1 and "invalid ingestion config" in broken.stderr

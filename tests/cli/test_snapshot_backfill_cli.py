"""Activating an audience on one more instance, through the CLI against the local stack (COM-03, COM-08):
`config push` names the backfill and what it costs at the vendor, `--backfill` starts it from the
audience's applied snapshot, only the new instance receives it, and `snapshot status` shows it.

The expo audience is first activated on RainFocus and Marketo only; its snapshot s1 is applied there;
then the config adds it to the Outreach instance.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from activation_cli import backfill as backfill_module
from local.harness import STACK_NAME, ActivationHarness
from snapshots.files import write_members
from snapshots.state import SnapshotState
from tests.cli.conftest import Invoke
from tests.cli.helpers import stdout_json, write_json
from tests.support import cli_snapshot_push, example_config, instance_of, snapshot_member

pytestmark = pytest.mark.integration

AUDIENCE = "aud-expo-invitees"
MEMBERS = 30
OUTREACH = "outreach-sales"
# The others that activate the audience from the start (one per destination type but Outreach).
OTHERS = tuple(
    d["id"] for d in example_config()["destinations"]
    if d["id"] != OUTREACH and any(a["id"] == AUDIENCE for a in d["audiences"])
)  # fmt: skip


def without_outreach() -> dict[str, Any]:
    config = example_config()
    outreach = instance_of(config, "outreach")
    outreach["audiences"] = [a for a in outreach["audiences"] if a["id"] != AUDIENCE]
    return config


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ActivationHarness]:
    with ActivationHarness(workdir=tmp_path_factory.mktemp("backfill"), config=without_outreach()) as harness:
        for n in range(MEMBERS):
            harness.fake("outreach").add_prospect(50_000 + n)
        yield harness


@pytest.fixture(scope="module")
def applied(stack: ActivationHarness, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("members") / "members.jsonl"
    write_members(path, (snapshot_member(n) for n in range(MEMBERS)))
    pushed = cli_snapshot_push(path, AUDIENCE, "s1", STACK_NAME)
    stack.drain()
    pushed_json: dict[str, Any] = stdout_json(pushed)
    return pushed_json


def ledger(stack: ActivationHarness, instance: str) -> dict[str, int]:
    kind = next(d["type"] for d in example_config()["destinations"] if d["id"] == instance)
    return stack.ledger(kind, f"{kind}#{instance}#{AUDIENCE}")


def with_outreach(tmp_path: Path) -> Path:
    """The example config: the Outreach instance activates the expo audience too."""
    return write_json(tmp_path / "config.json", example_config())


def test_com_03_config_push_names_the_backfill_with_its_vendor_calls_and_time(
    cli: Invoke, stack: ActivationHarness, applied: dict[str, Any], tmp_path: Path
) -> None:
    assert applied["record"]["sent"] == dict.fromkeys(OTHERS, MEMBERS)
    dry = stdout_json(
        cli("config", "push", with_outreach(tmp_path), "--stack", STACK_NAME, "--dry-run", "--json")
    )
    (needed,) = dry["backfillNeeded"]
    hourly = instance_of(example_config(), "outreach")["settings"]["requestsPerHour"]
    assert needed == {
        "instance": OUTREACH,
        "audience": AUDIENCE,
        "snapshotId": "s1",
        "members": MEMBERS,
        "vendorCalls": MEMBERS,  # one PATCH per prospect
        "callsByType": {"patch": MEMBERS},
        "seconds": pytest.approx(MEMBERS / hourly * 3600),
        "limit": "requests per hour",
        "command": f"activation snapshot backfill --audience {AUDIENCE}",
    }
    text = cli("config", "push", with_outreach(tmp_path), "--stack", STACK_NAME, "--dry-run")
    assert f"{MEMBERS} vendor call(s) ({MEMBERS} patch)" in text.stdout
    assert (
        f"at least {MEMBERS / hourly * 3600:.0f} s at the vendor's rate limit (requests per hour)"
        in text.stdout
    )


@pytest.fixture(scope="module")
def backfilled(
    stack: ActivationHarness, applied: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    from typer.testing import CliRunner

    from activation_cli.main import app

    waits: list[float] = []
    patched = pytest.MonkeyPatch()
    patched.setattr(backfill_module, "sleep", waits.append)
    before = {i: ledger(stack, i) for i in (*OTHERS, OUTREACH)}
    config = with_outreach(tmp_path_factory.mktemp("config"))
    try:
        pushed = CliRunner().invoke(
            app, ["config", "push", str(config), "--stack", STACK_NAME, "--backfill", "--json"],
            catch_exceptions=False, env={"COLUMNS": "220"},
        )  # fmt: skip
    finally:
        patched.undo()
    result = stdout_json(pushed)
    (started,) = result["backfills"]
    execution = stack.stack.wait_execution(started["executionArn"], max_rounds=2_000)
    stack.drain()
    state = SnapshotState(stack.outputs["StateTableName"], stack.stack.client("dynamodb"))
    return {
        "pushed": result,
        "started": started,
        "waits": waits,
        "execution": execution,
        "record": state.run(AUDIENCE, started["runId"]),
        "before": before,
        "after": {i: ledger(stack, i) for i in before},
    }


def settled(counts: dict[str, int]) -> int:
    return sum(counts.get(k, 0) for k in ("delivered", "skipped", "rejected"))


def test_com_03_config_push_backfill_sends_the_applied_snapshot_to_the_new_instance_only(
    stack: ActivationHarness, backfilled: dict[str, Any]
) -> None:
    started = backfilled["started"]
    assert started["started"] and started["snapshotId"] == "s1"
    assert (
        0 < backfilled["waits"][0] <= backfill_module.CONFIG_CACHE_SECONDS
    )  # for the functions' config cache
    assert backfilled["execution"]["status"] == "SUCCEEDED", backfilled["record"]  # the refusal, if any
    record = backfilled["record"]
    assert (record["status"], record["backfill"], record["snapshotId"]) == ("APPLIED", True, "s1")
    assert record["sent"] == {OUTREACH: MEMBERS}
    assert settled(backfilled["after"][OUTREACH]) == MEMBERS
    assert backfilled["after"][OUTREACH].get("delivered") == MEMBERS
    for instance in OTHERS:
        assert backfilled["after"][instance] == backfilled["before"][instance], instance
    outreach = stack.fake("outreach")
    assert [len(outreach.patches(50_000 + n)) for n in range(MEMBERS)] == [1] * MEMBERS


def test_com_08_snapshot_status_shows_the_backfill_run_and_its_deliveries(
    cli: Invoke, backfilled: dict[str, Any]
) -> None:
    status = stdout_json(cli("snapshot", "status", "--stack", STACK_NAME, "--audience", AUDIENCE, "--json"))
    run = next(r for r in status["runs"] if r.get("runId") == backfilled["started"]["runId"])
    (instance,) = run["reconciliation"]["instances"]
    assert (instance["instance"], instance["sent"], instance["delivered"], instance["pending"]) == (
        OUTREACH, MEMBERS, MEMBERS, 0,
    )  # fmt: skip
    table = cli("snapshot", "status", "--stack", STACK_NAME, "--audience", AUDIENCE)
    assert backfilled["started"]["runId"] in table.stdout and OUTREACH in table.stdout


def test_com_03_a_second_backfill_finds_nothing_to_send(cli: Invoke, backfilled: dict[str, Any]) -> None:
    again = cli("snapshot", "backfill", "--audience", AUDIENCE, "--stack", STACK_NAME, "--json")
    assert again.exit_code == 1
    assert stdout_json(again) | {"estimates": []} == {
        "audience": AUDIENCE, "started": False, "reason": "nothing_to_backfill", "estimates": [],
    }  # fmt: skip


def test_com_08_snapshot_push_as_documented_delivers_an_account_audience_to_its_account_destination(
    cli: Invoke, stack: ActivationHarness
) -> None:
    """docs/snapshots.md: `activation snapshot push FILE --audience ID [--wait]`, no --entity. The ABM
    audience is activated on an account destination: its members are accounts, sent as account changes
    (a profile change would match no destination's rule and stay pending for ever)."""
    sample = Path(__file__).resolve().parents[2] / "events" / "snapshots" / "aud-abm-tier1-2026-12-01.jsonl"
    abm = next(
        d for d in example_config()["destinations"]
        if any(a["id"] == "aud-abm-tier1" for a in d["audiences"])
    )  # fmt: skip
    beside = sample.with_name(sample.name + ".manifest.json")  # the sample's own manifest
    kept = beside.read_bytes()
    pushed = stdout_json(
        cli(
            "snapshot",
            "push",
            sample,
            "--audience",
            "aud-abm-tier1",
            "--stack",
            STACK_NAME,
            "--wait",
            "--json",
        )
    )
    assert beside.read_bytes() == kept  # push writes its manifest elsewhere: a file beside is left alone
    assert (pushed["status"], pushed["record"]["entity"]) == ("SUCCEEDED", "account")
    stack.drain()
    status = stdout_json(
        cli("snapshot", "status", "--stack", STACK_NAME, "--audience", "aud-abm-tier1", "--json")
    )
    (run,) = status["runs"]
    (instance,) = run["reconciliation"]["instances"]
    assert (instance["instance"], instance["sent"], instance["pending"]) == (abm["id"], 2, 0)
    assert instance["delivered"] + instance["skipped"] + instance["rejected"] == 2
    kind = abm["type"]
    assert settled(stack.ledger(kind, f"{kind}#{abm['id']}#aud-abm-tier1")) == 2


def test_com_03_a_backfill_of_an_audience_no_instance_activates_says_so(
    cli: Invoke, stack: ActivationHarness
) -> None:
    """Not `nothing_to_backfill` (which says every activating instance has the snapshot): the audience is
    unknown to the config, as the workflow's own refusal says (`unknown_audience`: push the config first)."""
    result = cli(
        "snapshot", "backfill", "--audience", "aud-nobody-activates", "--stack", STACK_NAME, "--json"
    )
    assert result.exit_code == 1
    assert stdout_json(result)["reason"] == "unknown_audience"

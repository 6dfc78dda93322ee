"""`python -m sfmc_ingestion run|status|validate|push-config` with stub AWS clients."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from local.fakes.sfmc import example_ingestion_config
from sfmc_ingestion import cli

OUTPUTS = {
    "SfmcIngestionStateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:s-sfmc-ingestion",
    "SfmcIngestionConfigParameterName": "/s/sfmc-ingestion",
    "StateTableName": "state",
}


class StubSfn:
    def __init__(self, statuses: list[str]) -> None:
        self.statuses = statuses
        self.started: list[dict[str, Any]] = []

    def start_execution(self, **kwargs: Any) -> dict[str, str]:
        self.started.append(kwargs)
        return {"executionArn": f"arn:execution:{kwargs['name']}"}

    def describe_execution(self, executionArn: str) -> dict[str, str]:
        return {"executionArn": executionArn, "status": self.statuses.pop(0)}


def test_run_starts_a_manual_execution_for_the_named_data_extensions() -> None:
    sfn = StubSfn([])
    arn = cli.start_run(OUTPUTS, data_extensions=["Contacts"], sources=["sfmc-main"], sfn=sfn)
    (started,) = sfn.started
    assert started["stateMachineArn"] == OUTPUTS["SfmcIngestionStateMachineArn"]
    assert json.loads(started["input"]) == {
        "trigger": "manual",
        "dataExtensions": ["Contacts"],
        "sources": ["sfmc-main"],
    }
    assert started["name"].startswith("manual-") and arn.endswith(started["name"])


def test_waiting_polls_until_the_execution_ends() -> None:
    sfn = StubSfn(["RUNNING", "RUNNING", "FAILED"])
    slept: list[float] = []
    assert cli.wait_for("arn", sfn=sfn, poll=2, sleep=slept.append)["status"] == "FAILED"
    assert slept == [2, 2]
    with pytest.raises(TimeoutError):
        cli.wait_for("arn", sfn=StubSfn(["RUNNING"] * 5), timeout=3, poll=2, sleep=lambda _: None)


def test_validate_and_push_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(example_ingestion_config()))
    assert cli.main(["validate", str(good)]) == 0
    assert "1 source(s), 3 data extension(s)" in capsys.readouterr().out
    bad_document = example_ingestion_config()
    bad_document["sources"][0]["dataExtensions"][0]["key"] = "_Subscribers"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(bad_document))
    assert cli.main(["validate", str(bad)]) == 2
    assert "system data views" in capsys.readouterr().err

    class StubSsm:
        def put_parameter(self, **kwargs: Any) -> None:
            self.kwargs = kwargs

    ssm = StubSsm()
    assert cli.push_config(OUTPUTS, good.read_text(), ssm=ssm) == 3
    assert ssm.kwargs["Name"] == "/s/sfmc-ingestion" and ssm.kwargs["Overwrite"] is True
    assert json.loads(ssm.kwargs["Value"])["sources"][0]["id"] == "sfmc-main"


def test_status_renders_runs_per_data_extension_and_watermarks() -> None:
    report = {
        "runs": [
            {
                "runId": "manual-1",
                "startedAt": "2026-11-28T10:00:00Z",
                "status": "FAILED",
                "trigger": "manual",
                "dataExtensions": [
                    {"sourceId": "sfmc-main", "dataExtension": "Contacts", "status": "failed", "rowsRead": 40,
                     "rowsLanded": 40, "eventsPublished": 39, "rowsFailed": 1, "rowsDuplicate": 0,
                     "watermarkBefore": None, "watermarkAfter": None, "error": "SfmcPermanent",
                     "cause": "sfmc_403_20002: Insufficient privileges"},
                ],
                "skipped": [{"sourceId": "sfmc-main", "dataExtension": "Web_Activity", "reason": "not_due"}],
            }
        ],
        "watermarks": {"sfmc-main#Web_Activity": {"value": "2026-11-20T14:10:00Z", "lastSuccessAt": "x", "version": 3}},
    }  # fmt: skip
    text = cli.render_status(report)
    assert "manual-1  FAILED  (manual)" in text
    assert "sfmc-main/Contacts" in text and "published     39" in text
    assert "SfmcPermanent: sfmc_403_20002: Insufficient privileges" in text
    assert "Web_Activity" in text and "skipped (not_due)" in text
    assert "2026-11-20T14:10:00Z" in text

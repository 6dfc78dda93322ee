"""statemachine.asl.json: valid ASL (moto's ANTLR parser, after substitution), and the retry / catch /
commit structure the exactly-right-rows guarantees rest on."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

from sfmc_ingestion.tasks import errors

ASL = Path(__file__).resolve().parents[3] / "functions" / "sfmc_ingestion" / "statemachine.asl.json"
SUBSTITUTIONS = {"PlanFunctionArn", "PageFunctionArn", "CommitFunctionArn", "SummaryFunctionArn"}


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    return dict(json.loads(ASL.read_text()))


def substituted() -> str:
    return re.sub(
        r"\$\{(\w+)\}", lambda m: f"arn:aws:lambda:us-east-1:123456789012:function:{m[1]}", ASL.read_text()
    )


def test_the_definition_parses_once_substituted() -> None:
    assert set(re.findall(r"\$\{(\w+)\}", ASL.read_text())) == SUBSTITUTIONS
    AmazonStateLanguageParser.parse(substituted())


def inner(definition: dict[str, Any]) -> dict[str, Any]:
    states: dict[str, Any] = definition["States"]["IngestDataExtensions"]["ItemProcessor"]["States"]
    return states


def retries(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: r for r in state.get("Retry", []) for name in r["ErrorEquals"]}


def test_a_429_is_retried_by_the_state_machine_with_backoff(definition: dict[str, Any]) -> None:
    page = inner(definition)["ReadPage"]
    throttled = retries(page)["SfmcThrottled"]
    assert throttled["IntervalSeconds"] >= 5  # the documented Retry-After
    assert throttled["BackoffRate"] >= 2 and throttled["MaxAttempts"] >= 5
    assert throttled["JitterStrategy"] == "FULL"  # concurrent data extensions must not retry in lockstep
    assert "SfmcTransient" in retries(page)


def test_permanent_and_auth_failures_are_not_retried_and_are_caught(definition: dict[str, Any]) -> None:
    page = inner(definition)["ReadPage"]
    assert "SfmcPermanent" not in retries(page) and "SfmcAuthFailed" not in retries(page)
    assert "States.ALL" not in retries(page)
    (catch,) = page["Catch"]
    assert (catch["ErrorEquals"], catch["Next"], catch["ResultPath"]) == (
        ["States.ALL"],
        "RecordFailure",
        "$.error",
    )


def test_the_watermark_is_committed_only_after_the_last_page(definition: dict[str, Any]) -> None:
    states = inner(definition)
    assert states["ReadPage"]["Next"] == "MorePages"
    (more,) = states["MorePages"]["Choices"]
    assert (more["Variable"], more["BooleanEquals"], more["Next"]) == ("$.cursor.done", False, "ReadPage")
    assert states["MorePages"]["Default"] == "CommitWatermark"
    assert (
        states["CommitWatermark"]["Resource"] == states["RecordFailure"]["Resource"] == "${CommitFunctionArn}"
    )
    # Nothing else reaches the commit: the only way there is every page done.
    reaching = [
        n
        for n, s in states.items()
        if "CommitWatermark" in json.dumps({k: v for k, v in s.items() if k != "Catch"})
    ]
    assert reaching == ["MorePages"]


def test_data_extensions_run_with_bounded_concurrency_and_a_failure_fails_the_execution(
    definition: dict[str, Any],
) -> None:
    ingest = definition["States"]["IngestDataExtensions"]
    assert ingest["Type"] == "Map" and ingest["MaxConcurrencyPath"] == "$.plan.maxConcurrency"
    assert ingest["ResultPath"] == "$.plan.items"  # results replace the items: the state stays small
    assert definition["States"]["Plan"]["Catch"][0]["Next"] == "Summarize"
    (succeeded,) = definition["States"]["RunSucceeded"]["Choices"]
    assert succeeded["StringEquals"] == "SUCCEEDED"
    assert definition["States"]["RunSucceeded"]["Default"] == "RunFailed"
    assert definition["States"]["RunFailed"]["Type"] == "Fail"


def test_every_error_name_in_the_definition_exists() -> None:
    named = set(re.findall(r'"(Sfmc\w+)"', ASL.read_text())) - {"SfmcIngestionFailed"}  # the Fail state's own
    assert named <= {n for n in dir(errors) if n.startswith("Sfmc")}
    assert {"SfmcThrottled", "SfmcTransient"} <= named

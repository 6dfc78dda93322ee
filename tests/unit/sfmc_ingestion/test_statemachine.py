"""statemachine.asl.json (the run) and pages.asl.json (one data extension's pages): valid ASL (moto's
ANTLR parser, after substitution), the retry / catch / commit structure the exactly-right-rows
guarantees rest on, a timeout on every execution, and a history that stays under Step Functions'
25,000-event limit whatever the data extension's size (computed from the definitions)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

from sfmc_ingestion.models import MAX_DATA_EXTENSIONS, MAX_PAGE_SIZE, MAX_PAGES_PER_EXECUTION
from sfmc_ingestion.tasks import errors
from tests.unit.sfmc_ingestion.history import (
    HISTORY_LIMIT,
    inner,
    pages_execution_events,
    run_execution_events,
    worst_case_events,
)

FOLDER = Path(__file__).resolve().parents[3] / "functions" / "sfmc_ingestion"
ASL = FOLDER / "statemachine.asl.json"
PAGES_ASL = FOLDER / "pages.asl.json"
SUBSTITUTIONS = {"PlanFunctionArn", "PagesStateMachineArn", "CommitFunctionArn", "SummaryFunctionArn"}
SYNC = "arn:aws:states:::states:startExecution.sync:2"


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    return dict(json.loads(ASL.read_text()))


@pytest.fixture(scope="module")
def pages() -> dict[str, Any]:
    return dict(json.loads(PAGES_ASL.read_text()))


def substituted(path: Path) -> str:
    return re.sub(
        r"\$\{(\w+)\}", lambda m: f"arn:aws:lambda:us-east-1:123456789012:function:{m[1]}", path.read_text()
    )


def test_the_definitions_parse_once_substituted() -> None:
    assert set(re.findall(r"\$\{(\w+)\}", ASL.read_text())) == SUBSTITUTIONS
    assert set(re.findall(r"\$\{(\w+)\}", PAGES_ASL.read_text())) == {"PageFunctionArn"}
    AmazonStateLanguageParser.parse(substituted(ASL))
    AmazonStateLanguageParser.parse(substituted(PAGES_ASL))


def retries(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: r for r in state.get("Retry", []) for name in r["ErrorEquals"]}


def test_a_429_is_retried_by_the_state_machine_with_backoff(pages: dict[str, Any]) -> None:
    page = pages["States"]["ReadPage"]
    throttled = retries(page)["SfmcThrottled"]
    assert throttled["IntervalSeconds"] >= 5  # the documented Retry-After
    assert throttled["BackoffRate"] >= 2 and throttled["MaxAttempts"] >= 5
    assert throttled["JitterStrategy"] == "FULL"  # concurrent data extensions must not retry in lockstep
    assert "SfmcTransient" in retries(page)


def test_permanent_and_auth_failures_are_not_retried_and_are_returned_to_the_run(
    pages: dict[str, Any], definition: dict[str, Any]
) -> None:
    page = pages["States"]["ReadPage"]
    assert "SfmcPermanent" not in retries(page) and "SfmcAuthFailed" not in retries(page)
    assert "States.ALL" not in retries(page)
    (catch,) = page["Catch"]
    # The failure travels back as data ($.error): the run records it; causes are never nested.
    assert (catch["ErrorEquals"], catch["Next"], catch["ResultPath"]) == (
        ["States.ALL"],
        "PagesDone",
        "$.error",
    )
    states = inner(definition)
    (failed,) = states["PagesRead"]["Choices"]
    assert (failed["Variable"], failed["IsPresent"], failed["Next"]) == ("$.error", True, "RecordFailure")
    assert states["ReadPages"]["Catch"][0]["Next"] == "RecordFailure"


def test_the_watermark_is_committed_only_after_the_last_page(
    pages: dict[str, Any], definition: dict[str, Any]
) -> None:
    own = pages["States"]
    assert own["ReadPage"]["Next"] == "MorePages"
    more, next_range = own["MorePages"]["Choices"]
    assert (more["Variable"], more["BooleanEquals"], more["Next"]) == ("$.cursor.more", True, "ReadPage")
    assert (next_range["Variable"], next_range["BooleanEquals"], next_range["Next"]) == (
        "$.cursor.done",
        False,
        "NextRange",
    )
    assert own["MorePages"]["Default"] == "PagesDone"
    # The next range is this same machine, and its result (the item after the last page) is ours.
    assert own["NextRange"]["Resource"] == SYNC
    assert own["NextRange"]["Parameters"]["StateMachineArn.$"] == "$$.StateMachine.Id"
    assert own["NextRange"]["OutputPath"] == "$.Output"
    states = inner(definition)
    assert states["ReadPages"]["Resource"] == SYNC and states["ReadPages"]["OutputPath"] == "$.Output"
    assert states["PagesRead"]["Default"] == "CommitWatermark"
    assert (
        states["CommitWatermark"]["Resource"] == states["RecordFailure"]["Resource"] == "${CommitFunctionArn}"
    )
    reaching = [
        n
        for n, s in states.items()
        if "CommitWatermark" in json.dumps({k: v for k, v in s.items() if k != "Catch"})
    ]
    assert reaching == ["PagesRead"]


def test_every_field_of_the_item_travels_to_the_pages_execution(
    pages: dict[str, Any], definition: dict[str, Any]
) -> None:
    from sfmc_ingestion.models import WorkItem

    fields = {f.alias or name for name, f in WorkItem.model_fields.items()}
    for state in (inner(definition)["ReadPages"], pages["States"]["NextRange"]):
        passed = {k.removesuffix(".$") for k in state["Parameters"]["Input"]}
        assert fields <= passed
        assert (
            state["Parameters"]["Input"]["AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$"] == "$$.Execution.Id"
        )


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


def test_com_07_every_execution_times_out_so_the_timed_out_alarm_can_fire(
    definition: dict[str, Any], pages: dict[str, Any]
) -> None:
    # Without TimeoutSeconds a Standard execution may run for a year: ExecutionsTimedOut never counts.
    run, own = definition.get("TimeoutSeconds"), pages.get("TimeoutSeconds")
    assert isinstance(run, int) and 3600 <= run <= 7 * 86400
    assert isinstance(own, int) and 0 < own <= run


def test_every_error_name_in_the_definition_exists() -> None:
    text = ASL.read_text() + PAGES_ASL.read_text()
    named = set(re.findall(r'"(Sfmc\w+)"', text)) - {"SfmcIngestionFailed"}  # the Fail state's own
    assert named <= {n for n in dir(errors) if n.startswith("Sfmc")}
    assert {"SfmcThrottled", "SfmcTransient"} <= named


@pytest.mark.parametrize("rows", [1_000, 2_500_000, 100_000_000, 5_000_000_000])
def test_every_execution_history_stays_under_the_25000_event_limit_whatever_the_size(
    definition: dict[str, Any], pages: dict[str, Any], rows: int
) -> None:
    total_pages = math.ceil(rows / MAX_PAGE_SIZE)
    executions = math.ceil(total_pages / MAX_PAGES_PER_EXECUTION)
    largest_range = min(total_pages, MAX_PAGES_PER_EXECUTION)
    assert pages_execution_events(pages, largest_range) <= HISTORY_LIMIT
    assert run_execution_events(definition, MAX_DATA_EXTENSIONS) <= HISTORY_LIMIT
    # The single-execution design this replaces: ~7 events per page, over the limit past ~3,500 pages.
    assert executions == 1 or total_pages * 7 > pages_execution_events(pages, 0)


def test_the_history_bound_holds_at_the_largest_allowed_range(pages: dict[str, Any]) -> None:
    per_page = worst_case_events(pages["States"]["ReadPage"]) + worst_case_events(
        pages["States"]["MorePages"]
    )
    assert per_page == 37  # 5 + 3 x (6 throttle + 4 transient retries) + 2
    assert pages_execution_events(pages, MAX_PAGES_PER_EXECUTION) <= HISTORY_LIMIT
    assert pages_execution_events(pages, MAX_PAGES_PER_EXECUTION + 200) > HISTORY_LIMIT  # the cap matters

"""The most events an execution of the SFMC state machines can add to its history, computed from the
definitions (shared by the unit test of the bound and the local-stack test that checks it in moto)."""

from __future__ import annotations

from typing import Any

# "Maximum execution history size: 25,000 events in a single state machine execution history" (Step
# Functions service quotas, a hard limit).
HISTORY_LIMIT = 25_000


def inner(definition: dict[str, Any]) -> dict[str, Any]:
    states: dict[str, Any] = definition["States"]["IngestDataExtensions"]["ItemProcessor"]["States"]
    return states


# --- the execution history bound ------------------------------------------------------------------
# Events a state adds to its execution's history (Step Functions' history event types):
#   Lambda task:   TaskStateEntered, LambdaFunctionScheduled, -Started, -Succeeded, TaskStateExited (5);
#                  each retry: LambdaFunctionFailed|TimedOut, -Scheduled, -Started (3)
#   .sync task:    TaskStateEntered, TaskScheduled, TaskStarted, TaskSubmitted, TaskSucceeded,
#                  TaskStateExited (6); each retry: TaskFailed, TaskScheduled, TaskStarted, TaskSubmitted (4)
#   Choice, Pass, Succeed: <Type>StateEntered, <Type>StateExited (2); Fail: FailStateEntered (1)
#   Map:           MapStateEntered, MapStateStarted, MapStateSucceeded, MapStateExited (4),
#                  per iteration MapIterationStarted, MapIterationSucceeded (2)
#   execution:     ExecutionStarted, ExecutionSucceeded|Failed|TimedOut (2)


def worst_case_events(state: dict[str, Any]) -> int:
    """The most events one pass through `state` can add (every retrier exhausted)."""
    kind = state["Type"]
    if kind == "Task":
        sync = state["Resource"].startswith("arn:aws:states:::")
        attempts = sum(r.get("MaxAttempts", 3) for r in state.get("Retry", []))
        return (6 + 4 * attempts) if sync else (5 + 3 * attempts)
    events: dict[str, int] = {"Choice": 2, "Pass": 2, "Succeed": 2, "Fail": 1}
    return events[kind]


def pages_execution_events(pages: dict[str, Any], pages_in_range: int) -> int:
    """Worst case for one pages execution reading `pages_in_range` pages, then starting the next range."""
    own = pages["States"]
    per_page = worst_case_events(own["ReadPage"]) + worst_case_events(own["MorePages"])
    tail = worst_case_events(own["NextRange"]) + worst_case_events(own["PagesDone"])
    return 2 + pages_in_range * per_page + tail


def run_execution_events(definition: dict[str, Any], data_extensions: int) -> int:
    """Worst case for the run: independent of any data extension's size (its pages are elsewhere)."""
    top, each = definition["States"], inner(definition)
    per_data_extension = (
        2
        + worst_case_events(each["ReadPages"])
        + worst_case_events(each["PagesRead"])
        + max(worst_case_events(each["CommitWatermark"]), worst_case_events(each["RecordFailure"]))
    )
    fixed = 2 + 4 + sum(worst_case_events(s) for n, s in top.items() if n != "IngestDataExtensions")
    return fixed + data_extensions * per_data_extension

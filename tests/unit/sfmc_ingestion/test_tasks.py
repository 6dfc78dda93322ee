"""The tasks' decisions with stubs (plan's schedule, commit's watermark, summary's status, typed errors),
and the Step Functions payloads in events/sfmc/ that each task receives."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from activation_core.errors import AuthError, ConfigError, PermanentError, RetryableError, ThrottledError
from local.fakes.sfmc import example_ingestion_config
from sfmc_ingestion.client import RowsetPage
from sfmc_ingestion.config import parse_ingestion_config
from sfmc_ingestion.models import Watermark, WorkItem
from sfmc_ingestion.publishing import PreparedEntry
from sfmc_ingestion.tasks import commit as commit_task
from sfmc_ingestion.tasks import page as page_task
from sfmc_ingestion.tasks import plan as plan_task
from sfmc_ingestion.tasks import summary as summary_task
from sfmc_ingestion.tasks.errors import (
    SfmcAuthFailed,
    SfmcPermanent,
    SfmcTaskError,
    SfmcThrottled,
    SfmcTransient,
    task_error,
)
from sfmc_ingestion.watermarks import WatermarkStore
from tests.support import create_state_table

EVENTS = Path(__file__).resolve().parents[3] / "events" / "sfmc"
NOW = datetime(2026, 11, 28, 10, 0, 5, tzinfo=UTC)


def payload(name: str) -> dict[str, Any]:
    return dict(json.loads((EVENTS / name).read_text()))


@pytest.fixture
def store() -> Iterator[WatermarkStore]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_state_table(client, "state")
        yield WatermarkStore("state", dynamodb=client)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ThrottledError("sfmc_429_50100", "Rate limit exceeded", retry_after=5), SfmcThrottled),
        (RetryableError("sfmc_503", "busy"), SfmcTransient),
        (RetryableError("auth_failed_after_refresh", "refused again"), SfmcAuthFailed),
        (AuthError("sfmc_token_refused", "bad secret"), SfmcAuthFailed),
        (PermanentError("sfmc_403_20002", "Insufficient privileges"), SfmcPermanent),
        (ConfigError("sfmc-main", "dataExtensions", "bad"), SfmcPermanent),
    ],
)
def test_layer_errors_become_the_typed_errors_the_state_machine_matches(
    error: Exception, expected: type[SfmcTaskError]
) -> None:
    translated = task_error(error, "data extension 'Contacts' page 2")  # type: ignore[arg-type]
    assert type(translated) is expected
    assert str(translated).startswith("data extension 'Contacts' page 2: ")


def test_sfmc_03_a_scheduled_run_takes_only_the_data_extensions_that_are_due(store: WatermarkStore) -> None:
    config = parse_ingestion_config(example_ingestion_config())
    for key, hours_ago in (("Contacts", 2), ("Campaign_Engagement", 2), ("Web_Activity", 0.5)):
        start = store.read("sfmc-main", key)
        ran_at = (NOW - timedelta(hours=hours_ago)).isoformat().replace("+00:00", "Z")
        store.commit("sfmc-main", key, started_from=start, high=Watermark(), run_id="r0", started_at=ran_at)
    planned = plan_task.plan(
        {"input": {"trigger": "schedule"}}, config=config, store=store, now=NOW, run_id="r1"
    )
    # Contacts: hourly, ran 2 h ago. Campaign: every 4 hours. Activity: hourly but ran 30 minutes ago.
    assert [i["dataExtension"]["key"] for i in planned["items"]] == ["Contacts"]
    assert {s["dataExtension"]: s["reason"] for s in planned["skipped"]} == {
        "Campaign_Engagement": "not_due",
        "Web_Activity": "not_due",
    }
    manual = plan_task.plan(
        {"input": {"trigger": "manual"}}, config=config, store=store, now=NOW, run_id="r2"
    )
    assert len(manual["items"]) == 3 and manual["maxConcurrency"] == 3
    item = WorkItem.model_validate(manual["items"][0])
    assert item.watermark.version == 1 and item.watermark.recent == {}


def test_sfmc_03_an_on_demand_run_names_its_data_extensions(store: WatermarkStore) -> None:
    config = parse_ingestion_config(example_ingestion_config())
    planned = plan_task.plan(
        {"input": {"trigger": "manual", "dataExtensions": ["web_activity"]}},
        config=config,
        store=store,
        now=NOW,
        run_id="r",
    )
    assert [i["dataExtension"]["key"] for i in planned["items"]] == ["Web_Activity"]
    with pytest.raises(SfmcPermanent, match="unknown data extension 'nope'"):
        plan_task.plan(
            {"input": {"trigger": "manual", "dataExtensions": ["nope"]}},
            config=config,
            store=store,
            now=NOW,
            run_id="r",
        )
    with pytest.raises(SfmcPermanent, match="no such source"):
        plan_task.plan({"input": {"sources": ["other"]}}, config=config, store=store, now=NOW, run_id="r")


def test_sfmc_03_disabled_data_extensions_and_sources_are_skipped(store: WatermarkStore) -> None:
    document = copy.deepcopy(example_ingestion_config())
    document["sources"][0]["dataExtensions"][1]["enabled"] = False
    planned = plan_task.plan(
        {"trigger": "manual"}, config=parse_ingestion_config(document), store=store, now=NOW, run_id="r"
    )
    assert len(planned["items"]) == 2 and planned["skipped"][0]["reason"] == "disabled"
    document["sources"][0]["enabled"] = False
    planned = plan_task.plan(
        {"trigger": "manual"}, config=parse_ingestion_config(document), store=store, now=NOW, run_id="r"
    )
    assert planned["items"] == [] and {s["reason"] for s in planned["skipped"]} == {"source_disabled"}


def test_commit_moves_the_watermark_only_when_every_page_succeeded(store: WatermarkStore) -> None:
    done = payload("commit-succeeded.json")
    result = commit_task.commit(done, store=store)
    assert result["status"] == "succeeded"
    assert result["watermarkBefore"] is None
    assert (
        result["watermarkAfter"]
        == done["progress"]["high"]["value"]
        == store.read("sfmc-main", "Web_Activity").value
    )
    failed = commit_task.commit(payload("commit-failed.json"), store=store)
    assert (failed["status"], failed["error"]) == ("failed", "SfmcPermanent")
    assert failed["cause"].startswith("data extension 'Web_Activity' page 2: sfmc_403_20002")
    assert store.read("sfmc-main", "Web_Activity").value == result["watermarkAfter"]  # untouched


def test_commit_holds_the_watermark_when_pages_came_from_different_result_sets(store: WatermarkStore) -> None:
    done = payload("commit-succeeded.json")
    done["progress"]["consistent"] = False
    result = commit_task.commit(done, store=store)
    assert result["watermarkHeld"] is True and result["watermarkAfter"] is None
    assert store.read("sfmc-main", "Web_Activity").recent == {}  # the range is re-read: nothing skipped


def test_summary_fails_the_run_when_a_data_extension_or_the_plan_failed() -> None:
    record = summary_task.summarize(payload("summary.json"), now=NOW)
    assert record["status"] == "FAILED" and record["failed"] == 1
    assert record["totals"]["rowsRead"] == sum(r["rowsRead"] for r in record["dataExtensions"])
    ok = payload("summary.json")
    ok["plan"]["items"] = ok["plan"]["items"][:1]
    assert summary_task.summarize(ok, now=NOW)["status"] == "SUCCEEDED"
    plan_failed = summary_task.summarize(payload("summary-plan-failed.json"), now=NOW)
    assert plan_failed["status"] == "FAILED"
    assert plan_failed["error"] == "SfmcPermanent" and "incrementalColumn" in plan_failed["cause"]


def test_summary_event_failure_does_not_fail_the_run() -> None:
    class Broken:
        def put_events(self, **_: Any) -> Any:
            from botocore.exceptions import EndpointConnectionError

            raise EndpointConnectionError(endpoint_url="x")

    assert summary_task.publish_summary({"runId": "r"}, "bus", events=Broken()) is False


def test_every_sample_payload_is_what_its_task_accepts() -> None:
    for name in ("page-first.json", "page-next.json", "commit-succeeded.json", "commit-failed.json"):
        WorkItem.model_validate(payload(name))
    assert payload("plan-manual.json")["input"]["trigger"] == "manual"
    assert payload("plan-schedule.json")["input"] == {"trigger": "schedule"}
    assert payload("page-next.json")["cursor"]["next"].startswith("/v1/customobjectdata/token/")


class ScriptedClient:
    """Returns the given pages in order (stands in for SfmcClient)."""

    def __init__(self, *pages: RowsetPage) -> None:
        self.pages = list(pages)
        self.links: list[str] = []

    def first_page(self, key: str, **_: Any) -> RowsetPage:
        return self.pages.pop(0)

    def next_page(self, link: str) -> RowsetPage:
        self.links.append(link)
        return self.pages.pop(0)


class Sink:
    def put(self, *_: Any) -> None:
        return None

    def prepare(self, detail: dict[str, Any]) -> PreparedEntry:
        return PreparedEntry({"Detail": json.dumps(detail)}, 0)

    def publish(self, entries: list[dict[str, Any]], sizes: list[int] | None = None) -> int:
        return len(entries)


def row(n: int) -> dict[str, Any]:
    return {
        "keys": {"activityid": f"A{n}"},
        "values": {"subscriberkey": f"SK{n}", "occurredat": "11/20/2026 8:00:00 AM"},
    }


def test_the_page_task_notices_a_result_set_that_changed_between_pages(store: WatermarkStore) -> None:
    client = ScriptedClient(
        RowsetPage([row(1)], 2, 1, 1, "/v1/customobjectdata/token/t1/rowset?$page=2", "t1"),
        RowsetPage([row(2)], 2, 2, 1, None, "t2"),
    )
    deps = page_task.PageDeps(client=client, lander=Sink(), publisher=Sink(), store=store)  # type: ignore[arg-type]
    item = page_task.run_page(payload("page-first.json"), deps)
    assert item["progress"]["consistent"] is True
    item = page_task.run_page(item, deps)
    assert item["progress"]["consistent"] is False and item["cursor"]["done"] is True


def test_the_page_task_stops_a_paging_that_never_ends(store: WatermarkStore) -> None:
    looping = RowsetPage([row(1)], 1, 1, 1, "/v1/customobjectdata/token/t1/rowset?$page=2", "t1")
    client: Any = ScriptedClient(*[looping] * 10)
    sink: Any = Sink()
    deps = page_task.PageDeps(client=client, lander=sink, publisher=sink, store=store)
    item = payload("page-first.json")
    with pytest.raises(SfmcPermanent, match="paging_runaway"):
        for _ in range(10):
            item = page_task.run_page(item, deps)


def test_an_execution_reads_at_most_its_pages_then_hands_the_rest_to_the_next(store: WatermarkStore) -> None:
    link = "/v1/customobjectdata/token/t1/rowset?$page={}"
    pages = [RowsetPage([row(n)], 5, n, 1, link.format(n + 1) if n < 5 else None, "t1") for n in range(1, 6)]
    deps = page_task.PageDeps(client=ScriptedClient(*pages), lander=Sink(), publisher=Sink(), store=store)  # type: ignore[arg-type]
    item = payload("page-first.json")
    item["source"]["pagesPerExecution"] = 2
    flags = []
    for _ in pages:
        item = page_task.run_page(item, deps)
        flags.append((item["cursor"]["more"], item["cursor"]["done"]))
    # pages 1-2 in the first execution, 3-4 in the next, 5 in the last (which ends the data extension)
    assert flags == [(True, False), (False, False), (True, False), (False, False), (False, True)]


def test_a_pages_execution_that_timed_out_is_recorded_with_its_status() -> None:
    cause = json.dumps(
        {"ExecutionArn": "arn:x", "Status": "TIMED_OUT", "Error": "States.Timeout", "Cause": ""}
    )
    name, text = commit_task.describe_error({"Error": "States.TaskFailed", "Cause": cause})
    assert name == "PagesExecutionTimedOut" and text.startswith("States.Timeout")
    lambda_cause = json.dumps(
        {"errorMessage": "data extension 'Contacts' page 3: sfmc_403_20002", "errorType": "SfmcPermanent"}
    )
    assert commit_task.describe_error({"Error": "SfmcPermanent", "Cause": lambda_cause}) == (
        "SfmcPermanent",
        "data extension 'Contacts' page 3: sfmc_403_20002",
    )


def test_an_incomplete_deletion_check_concludes_nothing(store: WatermarkStore) -> None:
    from sfmc_ingestion.deletions import KeyStore, KnownKey

    keys = KeyStore("state", dynamodb=store._client, sleep=lambda _: None)
    keys.record("sfmc-main", "Web_Activity", "run-0", [KnownKey("d1", {"email": "x@example.com"})])
    item = payload("commit-succeeded.json")
    item["mode"] = "keys"
    item["progress"].update(consistent=False)  # pages from two result sets: a key may have been skipped
    published: list[Any] = []

    class Publisher:
        def entry(self, detail: dict[str, Any], detail_type: str = "") -> dict[str, Any]:
            return detail

        def publish(self, entries: list[Any]) -> int:
            published.extend(entries)
            return len(entries)

    result = commit_task.commit(item, store=store, keys=keys, publisher=Publisher())  # type: ignore[arg-type]
    assert result["deletionCheckHeld"] is True and result["rowsDeleted"] == 0 and published == []
    assert keys.checked_at("sfmc-main", "Web_Activity") is None  # due again: the next check reads again
    assert [k.pk_digest for page in keys.unseen("sfmc-main", "Web_Activity", "run-1") for k in page] == ["d1"]

"""The ingestion tasks against the fake SFMC over HTTP, moto in-process (SFMC-01..05, exactly the right
rows): tokens, paging with links.next over thousands of rows, throttling and errors, watermarks."""

from __future__ import annotations

import copy
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest

from activation_core import oauth
from activation_core.models.events import ProfileEventDetail
from local.fakes.sfmc import (
    BASE_TIME,
    FakeSfmc,
    activity_row,
    campaign_engagement,
    contact_row,
    contacts,
    example_ingestion_config,
    sfmc_date,
    throttle_response,
    web_activity,
)
from sfmc_ingestion.tasks import page as page_task
from sfmc_ingestion.tasks import plan as plan_task
from sfmc_ingestion.tasks.errors import SfmcAuthFailed, SfmcPermanent, SfmcThrottled
from tests.contract.sfmc.conftest import Clock
from tests.contract.sfmc.flow import SECRET, SfmcEnv, single_source


def de_config(key: str, **overrides: Any) -> dict[str, Any]:
    """A data extension of the example config, with overrides (e.g. a small pageSize)."""
    (source,) = example_ingestion_config()["sources"]
    config = copy.deepcopy(next(d for d in source["dataExtensions"] if d["key"] == key))
    config.update(overrides)
    return config


def published_keys(env: SfmcEnv, identity: str = "sfmcSubscriberKey") -> list[str]:
    return [d["profile"]["identities"][identity] for d in env.events.details()]


def activity_ids(env: SfmcEnv) -> list[str]:
    return [d["profile"]["attributes"]["activity"]["id"] for d in env.events.details()]


def with_activity_id(config: dict[str, Any]) -> dict[str, Any]:
    """Web_Activity mapped with its primary key, so tests can tell rows apart in the events."""
    config["mapping"] = [*config["mapping"], {"column": "ActivityId", "target": "attributes.activity.id"}]
    return config


def test_sfmc_02_token_is_a_client_credentials_json_grant_for_the_account(
    make_env: Any, fake: FakeSfmc
) -> None:
    fake.add(contacts(3))
    env = make_env(single_source(de_config("Contacts")))
    env.run()
    (request,) = fake.requests_to("/v2/token")
    assert request.json() == {
        "grant_type": "client_credentials",
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "account_id": fake.account_id,
    }
    rowset = fake.requests_to("/rowset")[0]
    assert rowset.header("authorization").startswith("Bearer ")


def test_sfmc_02_one_token_per_lifetime_across_tasks_and_concurrent_executions(
    make_env: Any, fake: FakeSfmc, clock: Clock
) -> None:
    fake.add(contacts(40))
    env = make_env(single_source(de_config("Contacts", pageSize=5)))
    # Every page task starts cold (a new container: nothing in memory), as in concurrent executions.
    env.before_page = lambda _item: oauth.clear_memory_cache()
    first = env.run()
    assert first["dataExtensions"][0]["pages"] == 8
    # Eight concurrent cold page tasks (other executions) within the same token lifetime.
    planned = plan_task.plan(
        {"input": {"trigger": "manual"}},
        config=_config(env),
        store=env.store,
        now=BASE_TIME,
        run_id="parallel",
    )

    def cold_page(_: int) -> None:
        oauth.clear_memory_cache()
        page_task.run_page(copy.deepcopy(planned["items"][0]), env.deps())

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(cold_page, range(8)))
    assert fake.token_requests == 1

    clock.advance(1200)  # the 20-minute lifetime is over: one new token, shared again
    env.run()
    assert fake.token_requests == 2


def _config(env: SfmcEnv) -> Any:
    from sfmc_ingestion.config import parse_ingestion_config

    return parse_ingestion_config(env.config_document)


def test_sfmc_02_an_expired_token_is_refreshed_once_and_the_page_succeeds(
    make_env: Any, fake: FakeSfmc
) -> None:
    fake.add(contacts(12))
    env = make_env(single_source(de_config("Contacts", pageSize=5)))
    fake.on_page("Contacts", 1, lambda f: f.expire_tokens())
    record = env.run()
    assert record["status"] == "SUCCEEDED"
    assert fake.token_requests == 2
    assert sorted(set(published_keys(env))) == sorted(f"SK-{n:06d}" for n in range(1, 13) if n != 5)
    assert env.page_errors == []


def test_sfmc_02_a_token_refused_again_after_the_refresh_fails_the_data_extension(
    make_env: Any, fake: FakeSfmc
) -> None:
    fake.add(contacts(3))
    env = make_env(single_source(de_config("Contacts")))
    fake.fail_next("/rowset", 2, 401, body={"message": "Not Authorized", "errorcode": 0})
    record = env.run()
    (result,) = record["dataExtensions"]
    assert (result["status"], result["error"]) == ("failed", "SfmcAuthFailed")
    assert isinstance(env.page_errors[0], SfmcAuthFailed)
    assert fake.token_requests == 2  # the first token, then exactly one refresh: no loop
    assert len(env.page_errors) == 1  # not retried: every retry would mint another token


def test_sfmc_02_refused_credentials_fail_clearly(make_env: Any, fake: FakeSfmc) -> None:
    fake.add(contacts(3))
    env = make_env(single_source(de_config("Contacts")))
    fake.client_secret = "rotated-elsewhere"  # the installed package's secret was regenerated
    record = env.run()
    (result,) = record["dataExtensions"]
    assert result["error"] == "SfmcAuthFailed"
    assert "refused the client credentials" in result["cause"]


def test_sfmc_02_rows_are_read_from_the_rest_instance_url_returned_with_the_token(
    make_env: Any, fake: FakeSfmc, aws_backend: Any
) -> None:
    fake.add(web_activity(3))
    env = make_env(single_source(de_config("Web_Activity")))
    # A base URL typed into the secret long ago, now wrong (nothing listens on port 9): it must not matter.
    stale = {**env.connection(), "restBaseUri": "http://127.0.0.1:9"}
    aws_backend.put_secret_value(SecretId=SECRET, SecretString=json.dumps(stale))
    record = env.run()
    assert record["status"] == "SUCCEEDED" and record["totals"]["eventsPublished"] == 3
    assert len(fake.rowset_requests("Web_Activity")) == 1
    # The URL is kept in the secret beside the credentials: a new container uses it at once.
    kept = json.loads(aws_backend.get_secret_value(SecretId=SECRET)["SecretString"])
    assert kept["restInstanceUrl"] == fake.base_url and kept["restBaseUri"] == "http://127.0.0.1:9"
    page_task.reset_clients()
    oauth.clear_memory_cache()
    fake.add(web_activity(5))
    assert env.run()["status"] == "SUCCEEDED" and fake.token_requests == 1


def test_sfmc_02_a_rest_instance_url_on_another_domain_is_refused(make_env: Any, fake: FakeSfmc) -> None:
    fake.add(web_activity(3))
    fake.rest_instance_url = "https://api.example.com/"
    env = make_env(single_source(de_config("Web_Activity")))
    record = env.run()
    (result,) = record["dataExtensions"]
    assert (result["status"], result["error"]) == ("failed", "SfmcPermanent")
    assert fake.rowset_requests() == []  # the bearer token never left for the other host


def test_sfmc_429_is_a_typed_throttle_for_the_state_machine_not_an_in_process_wait(
    make_env: Any, fake: FakeSfmc
) -> None:
    fake.add(contacts(6))
    env = make_env(single_source(de_config("Contacts", pageSize=3)))
    status, body, headers = throttle_response(retry_after=7)
    fake.fail_next("/rowset", 1, status, body=body, headers=headers)
    planned = plan_task.plan(
        {"input": {"trigger": "manual"}}, config=_config(env), store=env.store, now=BASE_TIME, run_id="r"
    )
    with pytest.raises(SfmcThrottled, match="wait 7 s"):
        page_task.run_page(planned["items"][0], env.deps())
    assert len(fake.requests_to("/rowset")) == 1  # no retry inside the task: Step Functions backs off

    fake.fail_next("/token/.*/rowset", 1, status, body=body, headers=headers)  # on page 2 this time
    record = env.run()
    assert record["status"] == "SUCCEEDED"
    assert [type(e) for e in env.page_errors] == [SfmcThrottled]
    assert record["dataExtensions"][0]["eventsPublished"] == 5  # contact 5 has no email: failed


def test_sfmc_a_5xx_blip_is_retried_in_the_task(make_env: Any, fake: FakeSfmc) -> None:
    fake.add(contacts(3))
    env = make_env(single_source(de_config("Contacts")))
    fake.fail_next("/rowset", 1, 503, body={"message": "busy"})
    record = env.run()
    assert record["status"] == "SUCCEEDED"
    assert len(fake.requests_to("/rowset")) == 2
    assert env.page_errors == []


@pytest.mark.parametrize(("status", "code"), [(403, 20002), (400, 10001)])
def test_sfmc_400_and_403_fail_that_data_extension_while_the_others_continue(
    make_env: Any, fake: FakeSfmc, status: int, code: int
) -> None:
    fake.add(contacts(4))
    fake.add(web_activity(6))
    env = make_env(single_source(de_config("Contacts"), de_config("Web_Activity")))
    fake.fail_next(
        "/key/Contacts/rowset", 1, status, body={"message": "Insufficient privileges", "errorcode": code}
    )
    record = env.run()
    results = {r["dataExtension"]: r for r in record["dataExtensions"]}
    assert record["status"] == "FAILED"
    failed = results["Contacts"]
    assert (failed["status"], failed["error"]) == ("failed", "SfmcPermanent")
    assert f"sfmc_{status}_{code}" in failed["cause"] and "Insufficient privileges" in failed["cause"]
    assert failed["watermarkAfter"] is None and env.store.read("sfmc-main", "Contacts").value is None
    assert results["Web_Activity"]["status"] == "succeeded"
    assert results["Web_Activity"]["eventsPublished"] == 6
    assert isinstance(env.page_errors[0], SfmcPermanent) and len(env.page_errors) == 1  # not retried


def test_sfmc_paging_follows_links_next_over_thousands_of_rows(make_env: Any, fake: FakeSfmc) -> None:
    fake.add(web_activity(3000))
    env = make_env(single_source(with_activity_id(de_config("Web_Activity", pageSize=1000))))
    record = env.run()
    (result,) = record["dataExtensions"]
    assert (result["rowsExpected"], result["rowsRead"], result["pages"]) == (3000, 3000, 3)
    assert result["eventsPublished"] == 3000
    paths = [r.path for r in fake.requests_to("/rowset")]
    assert paths[0] == "/data/v1/customobjectdata/key/Web_Activity/rowset"
    assert all("/customobjectdata/token/" in p for p in paths[1:]) and len(paths) == 3
    first = fake.requests_to("/rowset")[0].query
    assert (first["$pageSize"], first["$orderBy"]) == (["1000"], ["OccurredAt asc"])
    assert sorted(activity_ids(env)) == [f"ACT-{n:07d}" for n in range(1, 3001)]
    assert len(env.landed_keys()) == 3
    profile_batches = [n for n, kind in env.events.batches if kind == "Profile Updated"]
    assert max(profile_batches) == 10 and sum(profile_batches) == 3000


def test_sfmc_page_boundaries_rows_sharing_the_watermark_timestamp_are_neither_lost_nor_repeated(
    make_env: Any, fake: FakeSfmc
) -> None:
    activity = fake.add(web_activity(0))
    tie = BASE_TIME + timedelta(minutes=5)
    for n in range(1, 9):  # rows 4..8 share one timestamp across the page boundary (4 rows a page)
        row = activity_row(n)
        row["OccurredAt"] = sfmc_date(tie if n >= 4 else BASE_TIME + timedelta(minutes=n))
        activity.rows.append(row)
    env = make_env(single_source(with_activity_id(de_config("Web_Activity", pageSize=4, lookBackSeconds=0))))
    env.run()
    assert sorted(activity_ids(env)) == [f"ACT-{n:07d}" for n in range(1, 9)]
    watermark = env.store.read("sfmc-main", "Web_Activity")
    assert (watermark.value, len(watermark.recent[watermark.value])) == ("2026-11-20T14:05:00Z", 5)
    # A row arrives AT the watermark's timestamp (after the run), and a later one.
    for n, minutes in ((9, 5), (10, 7)):
        row = activity_row(n)
        row["OccurredAt"] = sfmc_date(BASE_TIME + timedelta(minutes=minutes))
        activity.rows.append(row)
    env.run()
    run = env.records[-1]["dataExtensions"][0]
    assert (run["rowsRead"], run["rowsDuplicate"], run["eventsPublished"]) == (7, 5, 2)
    # Every row exactly once over both runs: the re-read ties were recognised, the new tie was not lost.
    assert sorted(activity_ids(env)) == [f"ACT-{n:07d}" for n in range(1, 11)]


def test_sfmc_a_row_visible_late_within_the_look_back_is_read_once_and_re_read_rows_are_not_republished(
    make_env: Any, fake: FakeSfmc
) -> None:
    activity = fake.add(web_activity(0))
    activity.rows.extend(activity_row(n) for n in range(1, 21))  # every 30 s: 14:00:30 .. 14:10:00
    env = make_env(
        single_source(with_activity_id(de_config("Web_Activity", pageSize=4, lookBackSeconds=300)))
    )
    env.run()
    assert env.store.read("sfmc-main", "Web_Activity").value == "2026-11-20T14:10:00Z"
    # Committed by an automation still running during the first run: stamped 4 minutes before its
    # watermark, visible only now. And one new row after it.
    late, new = activity_row(21), activity_row(22)
    late["OccurredAt"] = sfmc_date(BASE_TIME + timedelta(minutes=6))
    activity.rows.extend([late, new])
    env.run()
    run = env.records[-1]["dataExtensions"][0]
    first = next(r for r in reversed(fake.requests_to("/key/Web_Activity/rowset")) if "$filter" in r.query)
    # Read from 5 minutes before the watermark, in the account's time zone (14:05 UTC = 08:05 at -06:00).
    assert first.query["$filter"] == ["OccurredAt gte '2026-11-20T08:05:00'"]
    # The 11 rows of 14:05-14:10 are read again and recognised; the late row and the new one are published.
    assert (run["rowsRead"], run["rowsDuplicate"], run["eventsPublished"]) == (13, 11, 2)
    ids = activity_ids(env)
    assert len(ids) == len(set(ids)) == 22  # every row exactly once over both runs


def test_sfmc_a_rerun_after_a_mid_flow_failure_ingests_every_row(make_env: Any, fake: FakeSfmc) -> None:
    fake.add(web_activity(25))
    env = make_env(single_source(with_activity_id(de_config("Web_Activity", pageSize=10))))
    fake.fail_next(
        "/token/.*/rowset", 1, 403, body={"message": "Insufficient privileges", "errorcode": 20002}
    )
    failed = env.run()
    assert failed["dataExtensions"][0]["status"] == "failed"
    assert failed["dataExtensions"][0]["eventsPublished"] == 10  # page 1 went out before page 2 failed
    assert env.store.read("sfmc-main", "Web_Activity").value is None  # the watermark did not move
    env.run()
    assert sorted(set(activity_ids(env))) == [f"ACT-{n:07d}" for n in range(1, 26)]
    assert env.records[-1]["dataExtensions"][0]["rowsRead"] == 25  # re-read from the old watermark


def test_sfmc_the_watermark_never_advances_past_unprocessed_rows(make_env: Any, fake: FakeSfmc) -> None:
    fake.add(web_activity(30))
    env = make_env(single_source(de_config("Web_Activity", pageSize=10)))
    env.run()
    before = env.store.read("sfmc-main", "Web_Activity")
    for n in range(31, 61):
        fake.upsert("Web_Activity", activity_row(n))
    fake.fail_next("/token/.*/rowset", 1, 400, body={"message": "Bad request", "errorcode": 10000})
    env.run()  # pages 1 of 3 processed, then a permanent failure
    after_failure = env.store.read("sfmc-main", "Web_Activity")
    assert after_failure.value == before.value and after_failure.version == before.version
    env.run()
    final = env.store.read("sfmc-main", "Web_Activity")
    newest = max(row["OccurredAt"] for row in fake.de("Web_Activity").rows)
    assert final.value == _iso(newest)


def _iso(sfmc_text: str) -> str:
    from sfmc_ingestion.models import parse_time_zone
    from sfmc_ingestion.rows import iso, parse_date

    return iso(parse_date(sfmc_text, parse_time_zone("-06:00")))


def test_sfmc_a_row_modified_during_ingestion_is_picked_up_by_the_next_run(
    make_env: Any, fake: FakeSfmc
) -> None:
    fake.add(contacts(12))
    env = make_env(single_source(de_config("Contacts", pageSize=5)))

    def modify(f: FakeSfmc) -> None:  # contact 2 (already served on page 1) changes while page 2 is read
        row = contact_row(2, modified=BASE_TIME + timedelta(hours=2))
        row["LifecycleStage"] = "loyal_vip"
        f.upsert("Contacts", row)

    fake.on_page("Contacts", 1, modify)
    env.run()
    stages = [
        d["profile"]["attributes"]["loyalty"]["lifecycleStage"]
        for d in env.events.details()
        if d["profile"]["identities"]["sfmcSubscriberKey"] == "SK-000002"
    ]
    assert stages == ["loyal"]  # this run read one consistent snapshot
    env.run()
    stages = [
        d["profile"]["attributes"]["loyalty"]["lifecycleStage"]
        for d in env.events.details()
        if d["profile"]["identities"]["sfmcSubscriberKey"] == "SK-000002"
    ]
    assert stages == ["loyal", "loyal_vip"]
    assert env.records[-1]["dataExtensions"][0]["eventsPublished"] == 1


def test_sfmc_04_contact_campaign_and_activity_rows_become_profile_events(
    make_env: Any, fake: FakeSfmc
) -> None:
    fake.add(contacts(12))
    fake.add(campaign_engagement(6))
    fake.add(web_activity(8))
    env = make_env(example_ingestion_config())
    record = env.run()
    assert record["status"] == "SUCCEEDED"
    details = env.events.details()
    assert len(details) == 11 + 6 + 8
    for detail in details:
        ProfileEventDetail.model_validate(detail)  # the contract every destination parses
    by_origin: dict[str, list[dict[str, Any]]] = {}
    for detail in details:
        by_origin.setdefault(detail["origin"]["dataExtension"], []).append(detail)
    contact = next(
        d for d in by_origin["Contacts"] if d["profile"]["identities"]["sfmcSubscriberKey"] == "SK-000003"
    )
    assert contact["profile"]["identities"]["email"] == "katherine.lovelace.3@example.com"
    assert contact["profile"]["attributes"]["loyalty"] == {"lifecycleStage": "inactive"}
    assert contact["profile"]["attributes"]["commerce"] == {
        "purchaseCount": 3,
        "lifetimeValue": 112.5,
        "lastPurchaseDate": "2026-11-17T14:00:00Z",
    }
    assert contact["profile"]["consents"] == {"marketing.email": "y"}
    assert contact["occurredAt"] == "2026-11-20T14:03:00Z"
    assert [a["id"] for a in contact["audiences"]] == ["aud-expo-invitees"]
    opted_out = next(
        d for d in by_origin["Contacts"] if d["profile"]["identities"]["sfmcSubscriberKey"] == "SK-000006"
    )
    assert opted_out["profile"]["consents"] == {"marketing.email": "n"}
    campaign = by_origin["Campaign_Engagement"][2]["profile"]["attributes"]["campaign"]
    assert {type(campaign["opens"]), type(campaign["clicks"]), type(campaign["responded"])} <= {int, bool}
    activity = [d["profile"]["attributes"]["activity"] for d in by_origin["Web_Activity"]]
    assert {a["lastType"] for a in activity} == {"site_visit", "form_submission"}
    assert all(isinstance(a["visitCount"], int) for a in activity)
    assert all(not d["audiences"] for d in by_origin["Web_Activity"])


def test_sfmc_05_each_run_records_rows_and_watermarks_per_data_extension(
    make_env: Any, fake: FakeSfmc
) -> None:
    fake.add(contacts(12))
    fake.add(campaign_engagement(6))
    fake.add(web_activity(8))
    env = make_env(example_ingestion_config())
    env.run()
    fake.upsert("Contacts", contact_row(30, modified=BASE_TIME + timedelta(days=1)))
    second = env.run()
    (latest, first) = env.store.runs(2)
    assert latest == second and first["runId"] == "run-1"
    contacts_run = next(r for r in latest["dataExtensions"] if r["dataExtension"] == "Contacts")
    assert contacts_run["watermarkBefore"] == "2026-11-20T14:12:00Z"
    assert contacts_run["watermarkAfter"] == "2026-11-21T14:00:00Z"
    # The 10-minute look-back re-reads the 11 contacts stamped 14:02-14:12 (recognised), plus the new one.
    assert (contacts_run["rowsRead"], contacts_run["rowsDuplicate"], contacts_run["eventsPublished"]) == (
        12,
        11,
        1,
    )
    for result in first["dataExtensions"] + latest["dataExtensions"]:
        # Nothing lost: read = landed + already processed; landed = published + failed.
        assert result["rowsRead"] == result["rowsLanded"] + result["rowsDuplicate"]
        assert result["rowsLanded"] == result["eventsPublished"] + result["rowsFailed"]
    contacts_first = next(r for r in first["dataExtensions"] if r["dataExtension"] == "Contacts")
    assert contacts_first["rowsFailed"] == 1
    assert contacts_first["failureReasons"] == {"missing_required:emailaddress": 1}
    failed_rows = [r for r in env.landed_rows() if r["status"] == "failed"]
    assert [r["keys"] for r in failed_rows] == [{"subscriberkey": "SK-000005"}]


def test_sfmc_03_a_data_extension_without_incremental_column_is_fully_loaded_each_run(
    make_env: Any, fake: FakeSfmc
) -> None:
    fake.add(campaign_engagement(6))
    env = make_env(single_source(de_config("Campaign_Engagement", incrementalColumn=None)))
    env.run()
    env.run()
    assert len(env.events.details()) == 12
    filters = [r.query.get("$filter") for r in fake.requests_to("/key/.*/rowset")]
    assert filters == [None, None]
    assert [r.query["$orderBy"] for r in fake.requests_to("/key/.*/rowset")] == [["SubscriberKey asc"]] * 2
    assert env.store.read("sfmc-main", "Campaign_Engagement").value is None


def test_sfmc_failed_put_events_entries_are_sent_again(make_env: Any, fake: FakeSfmc) -> None:
    fake.add(contacts(12))
    env = make_env(single_source(de_config("Contacts")))
    failures = {"left": 3}

    def flaky(entry: dict[str, Any]) -> bool:
        if failures["left"] and "SK-000004" in entry["Detail"]:
            failures["left"] -= 1
            return True
        return False

    env.events.fail_entries = flaky
    record = env.run()
    assert record["status"] == "SUCCEEDED"
    assert published_keys(env).count("SK-000004") == 1
    assert len(published_keys(env)) == 11


def test_sfmc_rows_deleted_in_sfmc_become_exits_counted_in_the_run_record(
    make_env: Any, fake: FakeSfmc
) -> None:
    fake.add(contacts(12))
    env = make_env(single_source(de_config("Contacts", deletionCheck={"frequency": "day", "interval": 1})))
    first = env.run()  # the first check only records the keys
    check = next(r for r in first["dataExtensions"] if r["mode"] == "keys")
    assert (check["status"], check["rowsRead"], check["rowsDeleted"], check["exitsPublished"]) == (
        "succeeded",
        12,
        0,
        0,
    )
    keys_read = next(r for r in fake.requests_to("/key/Contacts/rowset") if "$fields" in r.query)
    assert keys_read.query["$fields"][0].startswith("SubscriberKey,")  # only what the key and identities need
    gone = {"SK-000003", "SK-000007"}
    assert fake.delete("Contacts", lambda row: row["SubscriberKey"] in gone) == 2
    second = env.run({"trigger": "manual", "checkDeletions": True})
    check = next(r for r in second["dataExtensions"] if r["mode"] == "keys")
    assert (check["rowsRead"], check["rowsDeleted"], check["exitsPublished"]) == (10, 2, 2)
    assert second["totals"]["rowsDeleted"] == 2 and second["totals"]["exitsPublished"] == 2
    exits = env.events.details("Profile Audience Membership Changed")
    assert {e["profile"]["identities"]["sfmcSubscriberKey"] for e in exits} == gone
    for detail in exits:
        event = ProfileEventDetail.model_validate(detail)  # the event contract, as destinations read it
        assert {a.status for a in event.audiences} == {"exited"} and event.audiences
    third = env.run({"trigger": "manual", "checkDeletions": True})
    check = next(r for r in third["dataExtensions"] if r["mode"] == "keys")
    assert (check["rowsDeleted"], check["exitsPublished"]) == (0, 0)  # each deletion exits once
    assert len(env.events.details("Profile Audience Membership Changed")) == 2


def test_sfmc_a_deletion_check_is_due_on_its_own_schedule(make_env: Any, fake: FakeSfmc) -> None:
    fake.add(contacts(3))
    env = make_env(single_source(de_config("Contacts", deletionCheck={"frequency": "week", "interval": 1})))
    env.run()
    again = env.run()  # a manual run re-reads rows, but the weekly check is not due yet
    assert [r["mode"] for r in again["dataExtensions"]] == ["rows"]

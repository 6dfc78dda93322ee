"""The Outreach connector, client and authorization command against the fake Outreach server over HTTP
(OUT-01..07). AWS (Secrets Manager, DynamoDB, SQS) is moto in-process."""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto.dynamodb.models import DynamoDBBackend

from activation_core import aws
from activation_core.batch import BatchContext, run_batch
from activation_core.config_store import parse_destinations
from activation_core.errors import PermanentError
from activation_core.models.config import DestinationInstance
from activation_core.outcomes import Kind
from activation_core.pipeline import Pipeline, RecordResult
from activation_core.settings import FunctionSettings
from local.fakes.outreach import JSON_API, SAMPLE_PROSPECTS, FakeOutreach
from local.moto_patches import ATOMIC_DYNAMODB_METHODS
from outreach import authorize
from outreach.client import BAD_REQUEST_MESSAGE
from outreach.service import OutreachDestination
from tests.bench import bench_outreach
from tests.contract.conftest import STATE_TABLE, put_connection_secret, read_secret
from tests.support import Clock, example_config, load_event, sqs_record

SECRET = "activation-local/outreach/sales"
EXPO = {
    "id": "aud-expo-invitees",
    "name": "Expo 2026 invitees",
    "status": "realized",
    "origin": "segmentation",
}
WEBINAR = {
    "id": "aud-outreach-webinar",
    "name": "Webinar attendees",
    "status": "realized",
    "origin": "upload",
}


@pytest.fixture
def atomic_dynamodb() -> Iterator[None]:
    """moto checks a condition and writes without a lock; DynamoDB serialises conditional writes per item.

    Threads racing for the token lease in one process need the real semantics."""
    guard = threading.RLock()
    originals = {name: getattr(DynamoDBBackend, name) for name in ATOMIC_DYNAMODB_METHODS}

    def serialised(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with guard:
                return method(*args, **kwargs)

        return wrapper

    for name, method in originals.items():
        setattr(DynamoDBBackend, name, serialised(method))
    yield
    for name, method in originals.items():
        setattr(DynamoDBBackend, name, method)


@contextlib.contextmanager
def closing_in_background(server: FakeOutreach) -> Iterator[FakeOutreach]:
    server.start()
    try:
        yield server
    finally:
        # shutdown() waits for the server loop's next 0.5 s poll: no test needs to wait for that.
        threading.Thread(target=server.stop, daemon=True).start()


@pytest.fixture
def fake() -> Iterator[FakeOutreach]:
    with closing_in_background(FakeOutreach()) as server:
        for prospect_id, attributes in SAMPLE_PROSPECTS.items():
            server.add_prospect(prospect_id, **attributes)
        yield server
        # 415 would mean we sent something other than JSON:API: a bug, whatever the test was about.
        for request in server.patches():
            assert request.header("content-type") == JSON_API
            assert request.json()["data"]["type"] == "prospect"


@pytest.fixture
def connection(aws_backend: Any, fake: FakeOutreach) -> Any:
    put_connection_secret(aws_backend, SECRET, secret_document(fake))
    return aws_backend


def secret_document(fake: FakeOutreach, **extra: Any) -> dict[str, Any]:
    return {
        "baseUrl": fake.base_url,
        "clientId": fake.client_id,
        "clientSecret": fake.client_secret,
        "redirectUri": fake.redirect_uri,
        "refreshToken": fake.issue_refresh_token(),
        **extra,
    }


def pipeline(
    settings: FunctionSettings, destination: OutreachDestination | None = None, **overrides: Any
) -> Pipeline:
    document = example_config()
    instance = next(d for d in document["destinations"] if d["type"] == "outreach")
    instance["settings"].update(overrides)
    config = parse_destinations(document)
    return Pipeline(destination or OutreachDestination(), settings, lambda: config)


def profile(outreach_id: str, audiences: list[dict[str, Any]] | None = None, **detail: Any) -> dict[str, Any]:
    event = load_event("profile-membership-realized")
    event["detail"]["profile"]["identities"]["outreachId"] = outreach_id
    event["detail"]["audiences"] = audiences or [EXPO]
    event["detail"].update(detail)
    return event


def records(*events: dict[str, Any]) -> list[dict[str, Any]]:
    return [sqs_record(e, f"m-{i}") for i, e in enumerate(events)]


def kinds(results: dict[str, RecordResult]) -> dict[str, str]:
    return {key: f"{r.outcome.kind.value}:{r.outcome.reason}" for key, r in results.items()}


def add_prospects(fake: FakeOutreach, count: int, start: int = 2001) -> list[int]:
    ids = list(range(start, start + count))
    for prospect_id in ids:
        fake.add_prospect(prospect_id, firstName=f"P{prospect_id}")
    return ids


def budget_item(key: str = SECRET) -> dict[str, Any]:
    return dict(
        boto3.client("dynamodb")
        .get_item(TableName=STATE_TABLE, Key={"pk": {"S": f"rate#outreach#{key}"}, "sk": {"S": "budget"}})
        .get("Item", {})
    )


# ------------------------------------------------------------------------------------ OUT-01 OAuth


def test_out_01_refresh_rotates_and_the_new_refresh_token_is_stored_before_the_access_token_is_used(
    connection: Any, fake: FakeOutreach, function_settings: FunctionSettings
) -> None:
    first_refresh_token = read_secret(connection, SECRET)["refreshToken"]
    seen: list[tuple[str, str, str]] = []

    def at_first_use(request: Any) -> None:
        stored = read_secret(connection, SECRET)
        seen.append(
            (stored["refreshToken"], stored["cachedToken"]["accessToken"], request.header("authorization"))
        )

    fake.on_patch = at_first_use
    results = pipeline(function_settings).process(records(profile("1001")))
    assert kinds(results) == {"m-0": "delivered:delivered"}
    assert fake.grants == ["refresh_token"]
    (refresh_token, access_token, authorization) = seen[0]
    assert refresh_token == fake.latest_refresh_token != first_refresh_token
    assert authorization == f"Bearer {access_token}"
    assert first_refresh_token in fake.refresh_tokens  # the old one stays valid until its TTL


def test_out_01_twenty_invocations_with_an_expired_token_make_one_token_request(
    connection: Any, fake: FakeOutreach, function_settings: FunctionSettings, atomic_dynamodb: None
) -> None:
    document = read_secret(connection, SECRET)
    document["cachedToken"] = {"accessToken": "at-expired", "expiresAt": 1.0, "mintedAt": 0.0}
    connection.put_secret_value(SecretId=SECRET, SecretString=json.dumps(document))
    prospects = add_prospects(fake, 20)
    barrier = threading.Barrier(len(prospects))
    results: dict[int, dict[str, RecordResult]] = {}

    def invocation(prospect_id: int) -> None:
        run = pipeline(function_settings)  # its own pipeline, connector and token provider
        batch = records(profile(str(prospect_id)))
        barrier.wait()
        results[prospect_id] = run.process(batch)

    threads = [threading.Thread(target=invocation, args=(p,)) for p in prospects]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert fake.token_requests == 1
    assert read_secret(connection, SECRET)["refreshToken"] == fake.latest_refresh_token
    assert [kinds(results[p]) for p in prospects] == [{"m-0": "delivered:delivered"}] * 20
    assert sorted(int(r.path.rsplit("/", 1)[1]) for r in fake.patches()) == prospects


def test_out_01_a_refused_token_refreshes_once_and_at_most_one_token_is_minted_per_60_seconds(
    connection: Any, function_settings: FunctionSettings
) -> None:
    clock = Clock()
    with closing_in_background(FakeOutreach(clock=clock)) as fake:
        fake.add_prospect(1001)
        connection.put_secret_value(SecretId=SECRET, SecretString=json.dumps(secret_document(fake)))
        run = pipeline(function_settings, OutreachDestination(clock=clock, sleep=clock.sleep))
        assert kinds(run.process(records(profile("1001")))) == {"m-0": "delivered:delivered"}

        clock.now += 10
        fake.expire_tokens()  # the vendor refuses the token 10 s after it was minted
        deferred = run.process(records(profile("1001")))["m-0"].outcome
        assert (deferred.kind, deferred.reason) == (Kind.RETRY, "token_mint_throttled")
        assert deferred.retry_after == pytest.approx(50)
        assert fake.token_requests == 1  # not asked again inside its 60 s

        clock.now += 45  # 55 s after the mint: short enough to wait for in the invocation
        assert kinds(run.process(records(profile("1001")))) == {"m-0": "delivered:delivered"}
        assert fake.token_requests == 2
        assert clock.slept[-1] == pytest.approx(5)
        assert [e.status for e in fake.log if e.path == "/oauth/token"] == [200, 200]  # never a 429
        patches = [e.status for e in fake.log if e.method == "PATCH"]
        assert patches == [200, 401, 200]  # refused once, then with the fresh token


def test_out_01_a_refused_refresh_token_goes_to_the_dlq_naming_the_one_time_step(
    connection: Any, fake: FakeOutreach, function_settings: FunctionSettings
) -> None:
    fake.refresh_tokens.clear()  # revoked
    outcome = pipeline(function_settings).process(records(profile("1001")))["m-0"].outcome
    assert (outcome.kind, outcome.reason) == (Kind.REJECTED, "oauth_invalid_grant")
    assert "python -m outreach.authorize" in outcome.detail
    assert fake.patches() == []


class FailingWrites:
    """Secrets Manager whose writes fail: a rotated refresh token cannot be persisted."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def get_secret_value(self, **kwargs: Any) -> Any:
        return self._client.get_secret_value(**kwargs)

    def put_secret_value(self, **kwargs: Any) -> Any:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "InternalServiceError", "Message": "x"}}, "PutSecretValue")


def test_out_01_an_access_token_whose_rotated_refresh_token_was_not_stored_is_never_used(
    connection: Any, fake: FakeOutreach, function_settings: FunctionSettings
) -> None:
    clock = Clock()
    destination = OutreachDestination(secrets=FailingWrites(connection), sleep=clock.sleep)
    outcome = pipeline(function_settings, destination).process(records(profile("1001")))["m-0"].outcome
    assert (outcome.kind, outcome.reason) == (Kind.RETRY, "secret_unavailable")
    assert fake.token_requests == 1
    assert fake.patches() == []


def test_out_01_the_authorize_command_exchanges_a_login_code_and_stores_the_tokens(
    aws_backend: Any,
    fake: FakeOutreach,
    function_settings: FunctionSettings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(authorize.CLIENT_SECRET_ENV, fake.client_secret)
    assert authorize.main(["url", "--client-id", fake.client_id, "--redirect-uri", fake.redirect_uri]) == 0
    assert "response_type=code" in capsys.readouterr().out
    code = fake.authorize()  # the browser login, outside the stack
    argv = [
        "exchange", "--secret", SECRET, "--code", code, "--client-id", fake.client_id,
        "--redirect-uri", fake.redirect_uri, "--base-url", fake.base_url, "--allow-loopback",
        "--state-table", STATE_TABLE,
    ]  # fmt: skip
    assert authorize.main(argv, secrets=aws_backend) == 0
    output = capsys.readouterr().out
    stored = read_secret(aws_backend, SECRET)
    assert stored["refreshToken"] == fake.latest_refresh_token
    assert stored["cachedToken"]["accessToken"] in fake.access_tokens
    assert fake.grants == ["authorization_code"]
    for secret in (fake.client_secret, stored["refreshToken"], stored["cachedToken"]["accessToken"]):
        assert secret not in output

    results = pipeline(function_settings).process(records(profile("1001")))
    assert kinds(results) == {"m-0": "delivered:delivered"}
    assert fake.token_requests == 1  # the functions used the exchanged access token


def test_out_01_the_authorize_command_stores_a_given_refresh_token_and_drops_the_old_access_token(
    connection: Any, fake: FakeOutreach, function_settings: FunctionSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = read_secret(connection, SECRET)
    document["cachedToken"] = {"accessToken": "at-of-another-user", "expiresAt": 9e9, "mintedAt": 0.0}
    connection.put_secret_value(SecretId=SECRET, SecretString=json.dumps(document))
    given = fake.issue_refresh_token()
    monkeypatch.setenv(authorize.REFRESH_TOKEN_ENV, given)
    assert authorize.main(["store", "--secret", SECRET], secrets=connection) == 0
    stored = read_secret(connection, SECRET)
    assert stored["refreshToken"] == given and "cachedToken" not in stored

    assert kinds(pipeline(function_settings).process(records(profile("1001")))) == {
        "m-0": "delivered:delivered"
    }
    assert fake.grants == ["refresh_token"]


# ------------------------------------------------------------------------------------ OUT-02..04, 06


def test_out_03_the_status_lands_in_custom_n_of_the_prospect_with_a_json_api_patch(
    connection: Any, fake: FakeOutreach, function_settings: FunctionSettings
) -> None:
    results = pipeline(function_settings).process(
        records(profile("1001", [EXPO, dict(WEBINAR, status="exited")]))
    )
    assert kinds(results) == {"m-0": "delivered:delivered"}
    (request,) = fake.patches()
    assert (request.method, request.path, request.header("content-type")) == (
        "PATCH", "/api/v2/prospects/1001", JSON_API,
    )  # fmt: skip
    data = request.json()["data"]
    assert (data["type"], data["id"]) == ("prospect", 1001)
    prospect = fake.prospects[1001]
    assert (prospect["custom4"], prospect["custom7"]) == ("realized", "exited")
    assert (prospect["firstName"], prospect["lastName"], prospect["title"]) == (
        "Ada",
        "Lovelace",
        "Chief Engineer",
    )
    assert 415 not in fake.statuses()


def test_out_02_and_04_an_unknown_prospect_is_rejected_and_never_created(
    connection: Any, fake: FakeOutreach, function_settings: FunctionSettings
) -> None:
    before = set(fake.prospects)
    results = pipeline(function_settings).process(records(profile("424242"), profile("ADA-1")))
    assert kinds(results) == {
        "m-0": "rejected:prospect_not_found",
        "m-1": "rejected:invalid_field:OutreachId",
    }
    assert "Could not find 'prospect' with ID '424242'" in results["m-0"].outcome.detail
    assert set(fake.prospects) == before and fake.created == 0
    assert [r.path for r in fake.requests if r.method == "POST" and r.path.startswith("/api/")] == []


def test_com_04_an_existing_member_is_a_current_member_and_its_status_is_written(
    connection: Any, fake: FakeOutreach, function_settings: FunctionSettings
) -> None:
    # `existing`: already in the audience, as the platform reports it (the segmentation field group).
    results = pipeline(function_settings).process(records(profile("1001", [dict(EXPO, status="existing")])))
    assert kinds(results) == {"m-0": "delivered:delivered"}
    assert fake.prospects[1001]["custom4"] == "existing"


def test_out_03_one_patch_per_prospect_for_many_changes_in_a_batch(
    connection: Any, fake: FakeOutreach, function_settings: FunctionSettings
) -> None:
    events = [
        profile(str(prospect), [audience], occurredAt=f"2026-11-28T10:00:0{i}Z", eventId=f"e-{prospect}-{i}")
        for prospect in (1001, 1002, 1003)
        for i, audience in enumerate(
            [EXPO, WEBINAR, dict(EXPO, status="exited"), dict(WEBINAR, status="exited")]
        )
    ]
    results = pipeline(function_settings).process(records(*events))
    assert len(fake.patches()) == 3  # 12 membership changes, 3 prospects
    assert {r.outcome.kind for r in results.values()} <= {Kind.DELIVERED, Kind.SKIPPED}
    for prospect in (1001, 1002, 1003):
        assert (fake.prospects[prospect]["custom4"], fake.prospects[prospect]["custom7"]) == (
            "exited",
            "exited",
        )


def test_out_06_an_invalid_mapping_id_is_a_visible_permanent_failure_naming_audience_and_id(
    connection: Any, fake: FakeOutreach, function_settings: FunctionSettings
) -> None:
    fake.undefined_custom_fields = {7}  # this Outreach org has no custom field 7
    run = pipeline(function_settings)
    batch = records(
        profile("1001", [WEBINAR], occurredAt="2026-11-28T10:00:00Z"),
        profile("1001", [EXPO], occurredAt="2026-11-28T10:00:01Z"),
    )
    results = run.process(batch)
    assert kinds(results) == {"m-0": "rejected:invalid_mapping_id", "m-1": "delivered:delivered"}
    detail = results["m-0"].outcome.detail
    assert BAD_REQUEST_MESSAGE in detail
    assert "'Webinar attendees' (aud-outreach-webinar) has mapping ID 7" in detail
    assert [e.status for e in fake.log if e.method == "PATCH"] == [422, 200]
    assert fake.prospects[1001]["custom4"] == "realized" and "custom7" not in fake.prospects[1001]
    # Received again (e.g. replayed before the fix), it is rejected again: never an endless retry.
    assert kinds(run.process(batch[:1])) == {"m-0": "rejected:invalid_mapping_id"}


# ------------------------------------------------------------------------------------ OUT-05 rate


def test_out_05_a_429_stops_every_invocation_until_the_reset_and_defers_the_records(
    connection: Any, fake: FakeOutreach, function_settings: FunctionSettings
) -> None:
    reset = fake.throttle_for(1800)
    first = pipeline(function_settings, maxConcurrency=1).process(
        records(*(profile(str(p)) for p in (1001, 1002, 1003)))
    )
    assert len(fake.patches()) == 1  # one 429, then no more calls
    for result in first.values():
        assert result.outcome.kind is Kind.RETRY
        assert result.outcome.retry_after == pytest.approx(reset - fake.clock(), abs=2)
    assert float(budget_item()["blockedUntil"]["N"]) == pytest.approx(reset, abs=1)

    other_invocation = pipeline(function_settings).process(records(profile("1004")))
    assert other_invocation["m-0"].outcome.kind is Kind.RETRY
    assert len(fake.patches()) == 1  # the shared budget kept it from calling at all


def test_out_05_the_budget_resynchronises_from_x_ratelimit_remaining(
    connection: Any, fake: FakeOutreach, function_settings: FunctionSettings
) -> None:
    fake.rate_limit = 55  # other apps of this Outreach user spent most of the hour: 55 left
    prospects = add_prospects(fake, 10)
    results = pipeline(function_settings, maxConcurrency=1, remainingReserve=50).process(
        records(*(profile(str(p)) for p in prospects))
    )
    reasons = sorted(kinds(results).values())
    assert reasons == ["delivered:delivered"] * 5 + ["retry:rate_limit_reset_pending"] * 5
    assert 429 not in fake.statuses()
    assert len(fake.patches()) == 5


def test_out_05_the_hourly_budget_is_shared_across_invocations(
    connection: Any, fake: FakeOutreach, function_settings: FunctionSettings
) -> None:
    prospects = add_prospects(fake, 8)
    first = pipeline(function_settings, requestsPerHour=5).process(
        records(*(profile(str(p)) for p in prospects[:4]))
    )
    second = pipeline(function_settings, requestsPerHour=5).process(
        records(*(profile(str(p)) for p in prospects[4:]))
    )
    outcomes = [r.outcome for r in [*first.values(), *second.values()]]
    assert [o.kind for o in outcomes].count(Kind.DELIVERED) == 5
    deferred = [o for o in outcomes if o.kind is Kind.RETRY]
    assert len(deferred) == 3
    assert all(
        o.reason == "rate_budget_exhausted" and o.retry_after and o.retry_after > 3000 for o in deferred
    )
    assert len(fake.patches()) == 5


def test_out_05_changes_waiting_for_the_budget_cost_one_patch_per_prospect_across_batches() -> None:
    """Issue 18: 300 changes on 60 prospects, interleaved over three batches that all wait for the hourly
    reset, cost about one PATCH per prospect once the budget is back, not one per prospect per batch."""
    run = bench_outreach.waiting_changes_run(merge_across_batches=True)
    assert run.waited == 300, "every change first waited for the reset"
    assert run.outcomes == {"delivered:delivered": 60, "skipped:superseded": 240}  # 300: every record
    assert run.calls <= 66, f"{run.calls} PATCH calls (the 429 included) for 60 prospects: at most 1.1 each"
    assert run.final == run.newest, "each prospect holds its newest change"


class SqsSpy:
    def __init__(self, client: Any) -> None:
        self._client = client
        self.visibility: list[int] = []
        self.delays: list[int] = []

    def send_message_batch(self, **kwargs: Any) -> Any:
        self.delays += [entry["DelaySeconds"] for entry in kwargs["Entries"]]
        return self._client.send_message_batch(**kwargs)

    def change_message_visibility(self, **kwargs: Any) -> Any:
        self.visibility.append(kwargs["VisibilityTimeout"])
        return self._client.change_message_visibility(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_out_05_a_429_holds_the_record_in_the_queue_until_the_reset(
    connection: Any, fake: FakeOutreach, function_settings: FunctionSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="outreach-queue")["QueueUrl"]
    dlq = sqs.create_queue(QueueName="outreach-dlq")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(profile("1001")))
    (message,) = sqs.receive_message(QueueUrl=queue, AttributeNames=["All"])["Messages"]
    record = sqs_record(json.loads(message["Body"]), message["MessageId"])
    record["receiptHandle"] = message["ReceiptHandle"]
    record["eventSourceARN"] = "arn:aws:sqs:us-east-1:123456789012:outreach-queue"
    spy = SqsSpy(sqs)
    real_client = aws.client
    monkeypatch.setattr(
        aws, "client", lambda service, **kw: spy if service == "sqs" else real_client(service, **kw)
    )

    reset = fake.throttle_for(1800)
    response = run_batch(
        {"Records": [record]},
        None,
        pipeline(function_settings).process,
        BatchContext("outreach", dlq, STATE_TABLE),
    )
    # Waiting is not failing (issue 14): a delayed copy waits (SQS delays at most 15 min, then it waits
    # again); this message is done with, its receive not used up.
    assert response == {"batchItemFailures": []}
    (delay,) = spy.delays
    assert min(900, reset - fake.clock()) <= delay <= 900
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )
    assert attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"
    assert len(fake.patches()) == 1


# ------------------------------------------------------------------------------------ errors, throughput


def test_a_503_with_a_near_retry_after_is_retried_in_process_and_a_far_one_goes_back_to_the_queue(
    connection: Any, fake: FakeOutreach, function_settings: FunctionSettings
) -> None:
    run = pipeline(function_settings)
    fake.fail_next(r"/prospects/1001$", 1, 503, body={"errors": [{"id": "scheduledServerMaintenance"}]},
                   headers={"Retry-After": "0"})  # fmt: skip
    assert kinds(run.process(records(profile("1001")))) == {"m-0": "delivered:delivered"}
    assert len(fake.patches(1001)) == 2

    fake.fail_next(r"/prospects/1002$", 1, 503, body={"errors": [{"id": "scheduledServerMaintenance"}]},
                   headers={"Retry-After": "2099-01-01T00:00:00"})  # fmt: skip
    outcome = run.process(records(profile("1002")))["m-0"].outcome
    assert (outcome.kind, outcome.reason) == (Kind.RETRY, "http_503")
    assert outcome.retry_after is not None and outcome.retry_after > 86400
    assert len(fake.patches(1002)) == 1  # not hammered while it is down


def test_persistent_5xx_is_tried_three_times_then_left_to_the_queue(
    connection: Any, fake: FakeOutreach, function_settings: FunctionSettings
) -> None:
    fake.fail_next(r"/prospects/", 10, 502, body={"errors": [{"id": "badGateway"}]})
    outcome = pipeline(function_settings).process(records(profile("1001")))["m-0"].outcome
    assert (outcome.kind, outcome.reason) == (Kind.RETRY, "http_502")
    assert len(fake.patches()) == 3


def test_a_415_is_a_permanent_rejection_never_a_retry(
    connection: Any, fake: FakeOutreach, function_settings: FunctionSettings
) -> None:
    fake.fail_next(r"/prospects/", 1, 415, body={"errors": [{"id": "unsupportedMediaType", "details": "x"}]})
    results = pipeline(function_settings).process(records(profile("1001")))
    assert kinds(results) == {"m-0": "rejected:unsupported_media_type"}


def test_out_05_calls_run_in_parallel_within_one_invocation_up_to_max_concurrency(
    connection: Any, fake: FakeOutreach, function_settings: FunctionSettings
) -> None:
    fake.latency = 0.05
    prospects = add_prospects(fake, 40)
    results = pipeline(function_settings, maxConcurrency=8).process(
        records(*(profile(str(p)) for p in prospects))
    )
    assert {r.outcome.kind for r in results.values()} == {Kind.DELIVERED}
    assert 4 <= fake.peak_in_flight <= 8


def test_the_vendor_base_url_must_be_outreach_unless_loopback_is_allowed(
    connection: Any, function_settings: FunctionSettings
) -> None:
    strict = function_settings.model_copy(update={"allow_loopback_urls": False})
    instance = DestinationInstance.model_validate(
        next(d for d in example_config()["destinations"] if d["type"] == "outreach")
    )
    with pytest.raises(PermanentError, match=r"base_url|loopback|https"):
        OutreachDestination().connect(instance, strict)


def erasure(outreach_id: str, request_id: str) -> dict[str, Any]:
    return {
        "detail-type": "Profile Erasure Requested",
        "source": "privacy.requests",
        "id": f"e-{request_id}",
        "detail": {
            "schemaVersion": "1",
            "eventId": f"evt-{request_id}",
            "requestId": request_id,
            "occurredAt": "2026-12-07T10:00:00Z",
            "profile": {"identities": {"outreachId": outreach_id, "email": "x@example.org"}},
        },
    }


def test_erasure_deletes_the_prospect_and_an_unknown_one_is_not_found(
    connection: Any, fake: FakeOutreach, function_settings: FunctionSettings
) -> None:
    prospect = next(iter(SAMPLE_PROSPECTS))
    results = pipeline(function_settings).process(
        records(erasure(str(prospect), "dsr-1"), erasure("424242", "dsr-2"))
    )
    assert kinds(results) == {"m-0": "delivered:delivered", "m-1": "skipped:erasure_not_found"}
    assert prospect not in fake.prospects
    assert [r.method for r in fake.requests if r.path.startswith("/api/v2/prospects/")] == [
        "DELETE",
        "DELETE",
    ]

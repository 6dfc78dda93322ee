"""Outreach: prospects per second in one invocation at 50 ms vendor latency, and PATCH calls per 1,000
membership changes (`make bench`; measured against the fake Outreach on 127.0.0.1, AWS in moto).

- throughput: one SQS batch of 100 records for 100 distinct prospects through the real pipeline
  (mapping, shared rate budget, token, bounded parallel PATCHes) against a plain sequential client
  that PATCHes the same 100 prospects one after the other with no other work at all;
- calls: 1,000 membership changes (250 prospects x 2 audiences x realized/exited) in 10 batches of
  100, against the distinct prospects per batch (one PATCH each is the floor) and against one PATCH per
  change;
- calls across batches that waited for the hourly budget (issue 18): 300 changes on 60 prospects in
  three batches, all deferred by a 429 until the reset, then received again; with the layer's
  `WaitingChanges` against without it (the same run, the same fake).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import httpx
from moto import mock_aws

from activation_core import aws, oauth
from activation_core.config_store import parse_destinations
from activation_core.pipeline import Pipeline
from activation_core.settings import FunctionSettings
from activation_core.waiting import WaitingChanges
from local.fakes.outreach import JSON_API, FakeOutreach
from outreach.service import OutreachDestination
from tests.bench.run import Figure
from tests.support import Clock, create_state_table, example_config, load_event, sqs_record

SECRET = "activation-local/outreach/sales"
LATENCY = 0.05
BATCH = 100
COMMAND = "make bench (tests/bench/bench_outreach.py)"
SETTINGS = FunctionSettings(
    destination_type="outreach",
    config_parameter_name="/bench/destinations",
    state_table_name="state",
    dead_letter_queue_url="unused",
    allow_loopback_urls=True,
)
AUDIENCES = (
    {"id": "aud-expo-invitees", "name": "Expo 2026 invitees", "origin": "segmentation"},
    {"id": "aud-outreach-webinar", "name": "Webinar attendees", "origin": "upload"},
)


def _event(prospect: int, audience: dict[str, str], status: str, second: int) -> dict[str, Any]:
    event = load_event("profile-membership-realized")
    detail = event["detail"]
    detail["eventId"] = f"bench-{prospect}-{audience['id']}-{status}"
    detail["occurredAt"] = f"2026-11-28T10:00:{second:02d}Z"
    detail["profile"]["identities"]["outreachId"] = str(prospect)
    detail["audiences"] = [{**audience, "status": status}]
    return event


def _pipeline(
    destination: OutreachDestination | None = None, waiting: WaitingChanges | None = None, **overrides: Any
) -> Pipeline:
    document = example_config()
    instance = next(d for d in document["destinations"] if d["type"] == "outreach")
    instance["settings"].update(overrides)
    config = parse_destinations(document)
    return Pipeline(destination or OutreachDestination(), SETTINGS, lambda: config, waiting=waiting)


def _secret(fake: FakeOutreach) -> str:
    return json.dumps(
        {
            "baseUrl": fake.base_url,
            "clientId": fake.client_id,
            "clientSecret": fake.client_secret,
            "redirectUri": fake.redirect_uri,
            "refreshToken": fake.issue_refresh_token(),
        }
    )


# ------------------------------------------------------------------ changes waiting across batches
WAITING_PROSPECTS = 60
WAITING_VERSIONS = 5
WAITING_BATCHES = 3


@dataclass(frozen=True)
class WaitingRun:
    """What 300 changes on 60 prospects cost once their three batches had waited for the budget."""

    waited: int  # records told to wait (retry with retry_after) on their first receive
    outcomes: Counter[str]  # kind:reason of every record on its second receive
    calls: int  # PATCH calls at the fake, the first (refused) 429 included
    final: dict[int, str]  # each prospect's custom4 at the fake afterwards
    newest: dict[int, str]  # each prospect's newest status sent


def waiting_changes_run(*, merge_across_batches: bool) -> WaitingRun:
    """The batches are built so that each prospect's 5 changes land in all 3 batches (in-batch merging
    alone costs 60 PATCHes per batch); the fake throttles until a reset, the clock then jumps past it."""
    clock = Clock()
    prospects = list(range(9001, 9001 + WAITING_PROSPECTS))
    batches: list[list[dict[str, Any]]] = [[] for _ in range(WAITING_BATCHES)]
    newest: dict[int, str] = {}
    for version in range(WAITING_VERSIONS):
        for index, prospect in enumerate(prospects):
            status = "realized" if (version + index) % 2 == 0 else "exited"
            event = _event(prospect, AUDIENCES[0], status, index)
            event["detail"]["occurredAt"] = f"2026-11-28T10:{version:02d}:{index:02d}Z"
            event["detail"]["eventId"] = f"waiting-{prospect}-{version}"
            batches[(index + version) % WAITING_BATCHES].append(event)
            newest[prospect] = status
    with _aws(), FakeOutreach(clock=clock) as fake:
        for prospect in prospects:
            fake.add_prospect(prospect, firstName=f"P{prospect}")
        boto3.client("secretsmanager").create_secret(Name=SECRET, SecretString=_secret(fake))
        waiting = (
            WaitingChanges(SETTINGS.state_table_name, SETTINGS.destination_type, clock=clock)
            if merge_across_batches
            else None
        )
        # One call at a time, so the hour's first 429 is the only refused call.
        run = _pipeline(OutreachDestination(clock=clock, sleep=clock.sleep), waiting, maxConcurrency=1)

        def receive(number: int, count: int) -> dict[str, Any]:
            return run.process(
                [sqs_record(e, f"w{number}-{i}", count) for i, e in enumerate(batches[number])]
            )

        reset = fake.throttle_for(1800)  # the hour's budget is spent
        first = [r.outcome for n in range(WAITING_BATCHES) for r in receive(n, 1).values()]
        clock.now = reset + 1
        second = [r.outcome for n in range(WAITING_BATCHES) for r in receive(n, 2).values()]
        return WaitingRun(
            waited=sum(1 for o in first if o.kind.value == "retry" and o.retry_after),
            outcomes=Counter(f"{o.kind.value}:{o.reason}" for o in second),
            calls=len(fake.patches()),
            final={p: str(fake.prospects[p].get("custom4")) for p in prospects},
            newest=newest,
        )


def _waiting_figures() -> list[Figure]:
    ours = waiting_changes_run(merge_across_batches=True)
    baseline = waiting_changes_run(merge_across_batches=False)
    for run_ in (ours, baseline):
        assert sum(run_.outcomes.values()) == WAITING_PROSPECTS * WAITING_VERSIONS, "a record without outcome"
    assert ours.final == ours.newest, "a prospect does not hold its newest change"
    _WAITING_NOTES.append(
        f"Changes waiting across batches: with `WaitingChanges` {ours.calls} PATCH calls "
        f"({dict(ours.outcomes)}), without it {baseline.calls} ({dict(baseline.outcomes)}); without it "
        f"{sum(baseline.final[p] != s for p, s in baseline.newest.items())} of {WAITING_PROSPECTS} prospects "
        "ended with an older status than their newest change (the batches came back oldest first and the "
        "bare pipeline here has no order guard), with it none. The handler also runs the order guard, which "
        "skips an older membership change as `stale` once a newer one was admitted."
    )
    return [
        Figure(
            section="Outreach",
            name=f"PATCH calls per distinct prospect: {WAITING_PROSPECTS * WAITING_VERSIONS} changes on "
            f"{WAITING_PROSPECTS} prospects in {WAITING_BATCHES} batches that all waited for the hourly "
            "budget (the 429 included)",
            ours=ours.calls / WAITING_PROSPECTS,
            baseline=baseline.calls / WAITING_PROSPECTS,
            baseline_name="merged within each batch only",
            unit="calls",
            command=COMMAND,
            goal="<= 1.1",
            goal_met=ours.calls / WAITING_PROSPECTS <= 1.1,
        )
    ]


_WAITING_NOTES: list[str] = []


def notes() -> list[str]:
    return list(_WAITING_NOTES)


@contextlib.contextmanager
def _aws() -> Iterator[None]:
    """moto in-process with a state table; the layer's cached clients and tokens forgotten around it."""
    with mock_aws():
        aws.reset_clients()
        oauth.clear_memory_cache()
        create_state_table(boto3.client("dynamodb"), SETTINGS.state_table_name)
        try:
            yield
        finally:
            oauth.clear_memory_cache()
            aws.reset_clients()


def _sequential(base_url: str, token: str, prospects: list[int]) -> float:
    """The baseline: one PATCH after another, nothing else."""
    with httpx.Client(timeout=10.0) as client:
        started = time.perf_counter()
        for prospect in prospects:
            body = {"data": {"type": "prospect", "id": prospect, "attributes": {"custom4": "realized"}}}
            response = client.patch(
                f"{base_url}/api/v2/prospects/{prospect}",
                content=json.dumps(body),
                headers={"Authorization": f"Bearer {token}", "Content-Type": JSON_API},
            )
            response.raise_for_status()
        return time.perf_counter() - started


def _serve_fake(conn: Any, prospects: list[int], latency: float) -> None:
    """The vendor in its own process, as in production: its threads do not share our interpreter lock."""
    with FakeOutreach(latency=latency) as fake:
        for prospect in prospects:
            fake.add_prospect(prospect, firstName=f"P{prospect}")
        conn.send(
            {
                "baseUrl": fake.base_url,
                "clientId": fake.client_id,
                "clientSecret": fake.client_secret,
                "redirectUri": fake.redirect_uri,
                "refreshToken": fake.issue_refresh_token(),
            }
        )
        conn.recv()  # until the measurements are done


def _throughput(secrets: Any) -> list[Figure]:
    prospects = list(range(5001, 5001 + BATCH))
    ours_conn, vendor_conn = multiprocessing.get_context("spawn").Pipe()
    vendor = multiprocessing.get_context("spawn").Process(
        target=_serve_fake, args=(vendor_conn, prospects, LATENCY), daemon=True
    )
    vendor.start()
    try:
        connection = ours_conn.recv()
        secrets.put_secret_value(SecretId=SECRET, SecretString=json.dumps(connection))
        oauth.clear_memory_cache()
        run = _pipeline()
        run.process(
            [sqs_record(_event(5001, AUDIENCES[0], "realized", 0), "warm")]
        )  # token minted, client warm
        batch = [sqs_record(_event(p, AUDIENCES[0], "realized", 1), f"m-{p}") for p in prospects]
        started = time.perf_counter()
        results = run.process(batch)
        ours = time.perf_counter() - started
        assert all(r.outcome.kind.value == "delivered" for r in results.values()), (
            "the benchmark batch failed"
        )
        token = json.loads(secrets.get_secret_value(SecretId=SECRET)["SecretString"])["cachedToken"][
            "accessToken"
        ]
        baseline = _sequential(connection["baseUrl"], token, prospects)
    finally:
        ours_conn.send("stop")
        vendor.join(timeout=10)
    return [
        Figure(
            section="Outreach",
            name=f"prospects per second, one invocation, {BATCH} prospects, {LATENCY * 1000:.0f} ms vendor latency",
            ours=BATCH / ours,
            baseline=BATCH / baseline,
            baseline_name="sequential client",
            unit="prospects/s",
            command=COMMAND,
            goal=">= 10x",
        )
    ]


def _calls(fake: FakeOutreach) -> list[Figure]:
    prospects = list(range(7001, 7251))
    for prospect in prospects:
        fake.add_prospect(prospect)
    shuffle = random.Random(7)
    run = _pipeline()
    before = len(fake.patches())
    changes = 0
    distinct = 0
    for start in range(0, len(prospects), BATCH // 4):
        group = prospects[start : start + BATCH // 4]
        events = [
            _event(p, audience, status, second)
            for p in group
            for second, (audience, status) in enumerate(
                [
                    (AUDIENCES[0], "realized"),
                    (AUDIENCES[1], "realized"),
                    (AUDIENCES[0], "exited"),
                    (AUDIENCES[1], "exited"),
                ]
            )
        ]
        shuffle.shuffle(events)  # changes of a prospect arrive interleaved with the others'
        run.process([sqs_record(e, f"c-{i}") for i, e in enumerate(events)])
        changes += len(events)
        distinct += len(group)
    calls = len(fake.patches()) - before
    assert changes == 1000
    scale = 1000 / changes
    return [
        Figure(
            section="Outreach",
            name="PATCH calls per 1,000 membership changes (250 prospects, batches of 100)",
            ours=calls * scale,
            baseline=distinct * scale,
            baseline_name="distinct prospects per batch",
            unit="calls",
            command=COMMAND,
            goal="1.00",
        ),
        Figure(
            section="Outreach",
            name="PATCH calls per 1,000 membership changes, against one call per change",
            ours=calls * scale,
            baseline=float(changes) * scale,
            baseline_name="one PATCH per change",
            unit="calls",
            command=COMMAND,
        ),
    ]


def run() -> list[Figure]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    with _aws(), FakeOutreach() as fake:
        secrets = boto3.client("secretsmanager")
        secrets.create_secret(Name=SECRET, SecretString=_secret(fake))
        calls = _calls(fake)  # first: the throughput run points the secret at its own vendor process
        figures = _throughput(secrets) + calls
    return figures + _waiting_figures()


if __name__ == "__main__":
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    sys.path[:0] = [str(root), str(root / "layers" / "activation_core"), str(root / "functions")]
    for figure in run():
        print(
            f"{figure.name}: ours {figure.ours:.2f} {figure.unit}, {figure.baseline_name} {figure.baseline:.2f}, ratio {figure.ratio:.2f}"
        )

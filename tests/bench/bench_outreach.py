"""Outreach: prospects per second in one invocation at 50 ms vendor latency, and PATCH calls per 1,000
membership changes (`make bench`; measured against the fake Outreach on 127.0.0.1, AWS in moto).

- throughput: one SQS batch of 100 records for 100 distinct prospects through the real pipeline
  (mapping, shared rate budget, token, bounded parallel PATCHes) against a plain sequential client
  that PATCHes the same 100 prospects one after the other with no other work at all;
- calls: 1,000 membership changes (250 prospects x 2 audiences x realized/exited) in 10 batches of
  100, against the distinct prospects per batch (one PATCH each is the floor) and against one PATCH per
  change.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import time
from typing import Any

import boto3
import httpx
from moto import mock_aws

from activation_core import aws, oauth
from activation_core.config_store import parse_destinations
from activation_core.pipeline import Pipeline
from activation_core.settings import FunctionSettings
from local.fakes.outreach import JSON_API, FakeOutreach
from outreach.service import OutreachDestination
from tests.bench.run import Figure
from tests.support import create_state_table, example_config, load_event, sqs_record

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


def _pipeline() -> Pipeline:
    config = parse_destinations(example_config())
    return Pipeline(OutreachDestination(), SETTINGS, lambda: config)


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
    with mock_aws(), FakeOutreach() as fake:
        aws.reset_clients()
        oauth.clear_memory_cache()
        create_state_table(boto3.client("dynamodb"), "state")
        secrets = boto3.client("secretsmanager")
        secrets.create_secret(
            Name=SECRET,
            SecretString=json.dumps(
                {
                    "baseUrl": fake.base_url,
                    "clientId": fake.client_id,
                    "clientSecret": fake.client_secret,
                    "redirectUri": fake.redirect_uri,
                    "refreshToken": fake.issue_refresh_token(),
                }
            ),
        )
        try:
            calls = _calls(fake)  # first: the throughput run points the secret at its own vendor process
            return _throughput(secrets) + calls
        finally:
            oauth.clear_memory_cache()
            aws.reset_clients()


if __name__ == "__main__":
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    sys.path[:0] = [str(root), str(root / "layers" / "activation_core"), str(root / "functions")]
    for figure in run():
        print(
            f"{figure.name}: ours {figure.ours:.2f} {figure.unit}, {figure.baseline_name} {figure.baseline:.2f}, ratio {figure.ratio:.2f}"
        )

"""Bombora: API calls per 10,000 domain changes, against the minimum for the configured batch size.

The Bombora connector runs in-process (moto for Secrets Manager and the state table) against the fake
Bombora server over HTTP; the changes arrive in SQS batches of the size template.yaml gives the Bombora
event source mapping. 8,000 accounts join one audience, then 2,000 of them leave it.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from tests.bench.run import Figure

ROOT = Path(__file__).resolve().parents[2]
SECTION = "Bombora (account lists)"
COMMAND = "make bench (tests/bench/bench_bombora.py)"
CHANGES = 10_000
ADDS = 8_000
SECRET = "activation-local/bombora/abm"
STATE_TABLE = "state"


def template_batch_size() -> int:
    from tests.bench.bench_core import template_batch_size as batch_size_of

    return batch_size_of("BomboraFunction")


def _events() -> list[dict[str, Any]]:
    from tests.support import load_event

    base = load_event("account-membership-realized")
    events = []
    for i in range(CHANGES):
        status = "realized" if i < ADDS else "exited"
        domain = f"company{i if i < ADDS else i - ADDS}.example.com"
        event = {**base, "detail": {**base["detail"]}}
        event["detail"]["eventId"] = f"bench-{i}"
        event["detail"]["account"] = {
            "identities": {"crmAccountId": f"ACC-{i}"},
            "attributes": {"accountOrganization": {"domain": f"https://www.{domain}/"}},
        }
        event["detail"]["audiences"] = [
            {"id": "aud-abm-tier1", "name": "ABM tier 1", "status": status, "origin": "segmentation"}
        ]
        events.append(event)
    return events


def measure(sqs_batch: int, batch_size: int) -> dict[str, float]:
    """Vendor calls made for the 10,000 changes, and the seconds it took, on a fresh fake and table."""
    import boto3
    from moto import mock_aws

    from activation_core import aws, oauth
    from activation_core.config_store import parse_destinations
    from activation_core.outcomes import Kind
    from activation_core.pipeline import Pipeline
    from activation_core.settings import FunctionSettings
    from bombora import lists
    from bombora.service import BomboraDestination
    from local.examples import example_config
    from local.fakes.bombora import API, FakeBombora
    from tests.support import create_state_table, sqs_record

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        os.environ[name] = "testing"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.pop("AWS_ENDPOINT_URL", None)
    instance = next(d for d in example_config()["destinations"] if d["type"] == "bombora")
    instance["settings"]["batchSize"] = batch_size
    config = parse_destinations({"schemaVersion": "1", "destinations": [instance]})
    settings = FunctionSettings(
        destination_type="bombora",
        config_parameter_name="/bench/destinations",
        state_table_name=STATE_TABLE,
        dead_letter_queue_url="unused",
        allow_loopback_urls=True,
    )
    events = _events()
    with mock_aws(), FakeBombora() as fake:
        aws.reset_clients()
        oauth.clear_memory_cache()
        lists.clear_memory_cache()
        create_state_table(boto3.client("dynamodb"), STATE_TABLE)
        boto3.client("secretsmanager").create_secret(
            Name=SECRET,
            SecretString=f'{{"baseUrl": "{fake.base_url}", "clientId": "{fake.client_id}", '
            f'"clientSecret": "{fake.client_secret}"}}',
        )
        pipeline = Pipeline(
            BomboraDestination(peers=lambda _: config.of_type("bombora")), settings, lambda: config
        )
        started = time.perf_counter()
        delivered = 0
        for start in range(0, CHANGES, sqs_batch):
            batch = [sqs_record(e, f"m-{start + i}") for i, e in enumerate(events[start : start + sqs_batch])]
            results = pipeline.process(batch)
            delivered += sum(r.outcome.kind is Kind.DELIVERED for r in results.values())
        elapsed = time.perf_counter() - started
        membership = len(fake.requests_to(rf"{API}/account-list/[^/]+/(accounts|delete-accounts)$"))
        total = len(fake.requests)
        remaining = len(next(iter(fake.lists.values())).domains)
        aws.reset_clients()
        oauth.clear_memory_cache()
        lists.clear_memory_cache()
    if delivered != CHANGES or remaining != ADDS - (CHANGES - ADDS):
        raise RuntimeError(
            f"bench run is wrong: {delivered} delivered, {remaining} accounts left in the list"
        )
    return {"membership": membership, "total": total, "seconds": elapsed}


def run() -> list[Figure]:
    from bombora.models import BomboraSettings

    sqs_batch = template_batch_size()
    batch_size = BomboraSettings().batch_size
    minimum = math.ceil(ADDS / batch_size) + math.ceil((CHANGES - ADDS) / batch_size)
    ours = measure(sqs_batch, batch_size)
    small = measure(25, batch_size)
    return [
        Figure(
            SECTION,
            f"add/delete calls per {CHANGES:,} domain changes (SQS batch {sqs_batch}, batchSize {batch_size})",
            ours["membership"],
            minimum,
            "minimum: ceil(changes / batchSize) per operation",
            "calls",
            COMMAND,
            "ratio 1.00",
        ),
        Figure(
            SECTION,
            f"all Bombora calls per {CHANGES:,} changes (token, list lookup and create included)",
            ours["total"],
            CHANGES,
            "one call per change",
            "calls",
            COMMAND,
            "far below 1",
        ),
        Figure(
            SECTION,
            f"add/delete calls per {CHANGES:,} changes, SQS batch {sqs_batch} vs 25",
            ours["membership"],
            small["membership"],
            "SQS BatchSize 25 (the profile destinations' setting)",
            "calls",
            COMMAND,
            "below 1",
        ),
        Figure(
            SECTION,
            f"seconds to deliver {CHANGES:,} changes in-process, loopback fake (SQS batch {sqs_batch} vs 25)",
            ours["seconds"],
            small["seconds"],
            "SQS BatchSize 25",
            "s",
            COMMAND,
            "",
        ),
    ]


if __name__ == "__main__":
    import sys

    sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "activation_core"), str(ROOT / "functions")]
    for figure in run():
        print(figure)

"""The ingestion tasks chained the way statemachine.asl.json chains them, in-process (contract tests,
benchmarks): plan -> per data extension: page until done (typed errors retried like the state
machine's Retry, others caught) -> commit or record the failure -> summary.

The real definition runs in moto's interpreter in tests/integration/test_sfmc_e2e.py; this driver
exists so that the tasks can be exercised against the fake SFMC over HTTP with thousands of rows,
failures injected between pages, and an injected clock, in a fraction of the time.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import boto3

from activation_core.locks import LeaseLock
from activation_core.oauth import TokenProvider
from local.fakes.sfmc import FakeSfmc
from sfmc_ingestion import client as sfmc
from sfmc_ingestion.config import parse_ingestion_config
from sfmc_ingestion.deletions import KeyStore
from sfmc_ingestion.landing import Lander
from sfmc_ingestion.models import SfmcConnection
from sfmc_ingestion.publishing import EventPublisher
from sfmc_ingestion.tasks import commit as commit_task
from sfmc_ingestion.tasks import page as page_task
from sfmc_ingestion.tasks import plan as plan_task
from sfmc_ingestion.tasks import summary as summary_task
from sfmc_ingestion.tasks.errors import SfmcTaskError, SfmcThrottled, SfmcTransient
from sfmc_ingestion.watermarks import WatermarkStore

BUCKET = "sfmc-landing"
BUS = "activation-bus"
SECRET = "activation-local/sfmc/main"
STATE_TABLE = "state"
RETRIED = (SfmcThrottled, SfmcTransient)  # what the state machine's Retry matches on ReadPage


class RecordingEvents:
    """An events client that keeps every accepted entry (then forwards it to moto)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.entries: list[dict[str, Any]] = []
        self.batches: list[tuple[int, str]] = []  # (entries, detail-type of the first) per call
        self.calls = 0
        self.fail_entries: Callable[[dict[str, Any]], bool] | None = None

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
            self.batches.append((len(Entries), Entries[0]["DetailType"] if Entries else ""))
        results: list[dict[str, Any]] = []
        accepted = []
        for entry in Entries:
            if self.fail_entries is not None and self.fail_entries(entry):
                results.append({"ErrorCode": "InternalFailure", "ErrorMessage": "injected"})
            else:
                results.append({"EventId": "x"})
                accepted.append(entry)
        if accepted:
            self._inner.put_events(Entries=accepted)
        with self._lock:
            self.entries.extend(accepted)
        return {"FailedEntryCount": len(Entries) - len(accepted), "Entries": results}

    def details(self, detail_type: str = "Profile Updated") -> list[dict[str, Any]]:
        return [json.loads(e["Detail"]) for e in self.entries if e["DetailType"] == detail_type]


@dataclass
class SfmcEnv:
    """Moto (in-process) + the fake SFMC over HTTP + the tasks, wired like the template wires them."""

    fake: FakeSfmc
    config_document: dict[str, Any]
    clock: Callable[[], float]
    events: RecordingEvents = field(init=False)
    store: WatermarkStore = field(init=False)
    s3: Any = field(init=False)
    dynamodb: Any = field(init=False)
    secrets: Any = field(init=False)
    records: list[dict[str, Any]] = field(default_factory=list)
    page_errors: list[SfmcTaskError] = field(default_factory=list)
    before_page: Callable[[dict[str, Any]], None] | None = None
    _runs: Iterator[int] = field(default_factory=lambda: iter(range(1, 10_000)))

    def __post_init__(self) -> None:
        # One client per service for the whole test (a new botocore session per client costs ~0.2 s).
        self.s3, self.dynamodb, self.secrets = (
            boto3.client("s3"),
            boto3.client("dynamodb"),
            boto3.client("secretsmanager"),
        )
        self.s3.create_bucket(Bucket=BUCKET)
        events = boto3.client("events")
        events.create_event_bus(Name=BUS)
        self.events = RecordingEvents(events)
        self.store = WatermarkStore(STATE_TABLE, dynamodb=self.dynamodb)
        self.keys = KeyStore(STATE_TABLE, dynamodb=self.dynamodb, sleep=lambda _: None)

    def connection(self) -> dict[str, Any]:
        return {
            "authBaseUri": self.fake.base_url,
            "clientId": self.fake.client_id,
            "clientSecret": self.fake.client_secret,
            "accountId": self.fake.account_id,
        }

    def client(self) -> sfmc.SfmcClient:
        """A fresh client and token provider: one per page task, as separate containers would have."""
        tokens = TokenProvider(
            SECRET,
            partial(sfmc.fetch_token, allow_loopback=True),
            lock=LeaseLock(STATE_TABLE, dynamodb=self.dynamodb, clock=self.clock),
            secrets=self.secrets,
            clock=self.clock,
            refresh_margin=page_task.TOKEN_REFRESH_MARGIN,
        )
        connection = SfmcConnection.model_validate(tokens.connection())
        return sfmc.SfmcClient(connection, tokens, allow_loopback=True, sleep=lambda _: None)

    def deps(self) -> page_task.PageDeps:
        return page_task.PageDeps(
            client=self.client(),
            lander=Lander(BUCKET, s3=self.s3),
            publisher=EventPublisher(BUS, events=self.events, sleep=lambda _: None),
            store=self.store,
            keys=self.keys,
        )

    def run(
        self, request: dict[str, Any] | None = None, *, now: datetime | None = None, attempts: int = 4
    ) -> dict[str, Any]:
        """One execution; returns the run record the summary task writes."""
        moment = now or datetime.fromtimestamp(self.clock(), UTC)
        run_id = f"run-{next(self._runs)}"
        state: dict[str, Any] = {"input": request or {"trigger": "manual"}}
        config = parse_ingestion_config(self.config_document)
        try:
            planned = plan_task.plan(
                state, config=config, store=self.store, now=moment, run_id=run_id, keys=self.keys
            )
        except SfmcTaskError as exc:
            state["planError"] = {"Error": type(exc).__name__, "Cause": str(exc)}
        else:
            planned["items"] = [self._iterate(item, attempts) for item in planned["items"]]
            state["plan"] = planned
        record = summary_task.summarize(state, now=moment)
        self.store.put_run(record)
        summary_task.publish_summary(record, BUS, events=self.events)
        self.records.append(record)
        return record

    def _iterate(self, item: dict[str, Any], attempts: int) -> dict[str, Any]:
        while True:
            error: SfmcTaskError | None = None
            for _ in range(attempts):
                if self.before_page is not None:
                    self.before_page(item)
                try:
                    item = page_task.run_page(item, self.deps())
                    error = None
                    break
                except RETRIED as exc:
                    error = exc
                    self.page_errors.append(exc)
                except SfmcTaskError as exc:
                    error = exc
                    self.page_errors.append(exc)
                    break
            if error is not None:
                return self._commit({**item, "error": {"Error": type(error).__name__, "Cause": str(error)}})
            if item["cursor"]["done"]:
                return self._commit(item)

    def _commit(self, item: dict[str, Any]) -> dict[str, Any]:
        publisher = EventPublisher(BUS, events=self.events, sleep=lambda _: None)
        return commit_task.commit(item, store=self.store, keys=self.keys, publisher=publisher)

    def landed_rows(self) -> list[dict[str, Any]]:
        s3 = self.s3
        rows: list[dict[str, Any]] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            for obj in page.get("Contents", []):
                body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
                rows.extend(json.loads(line) for line in gzip.decompress(body).splitlines())
        return rows

    def landed_keys(self) -> list[str]:
        s3 = self.s3
        return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def install_secret(secrets: Any, env: SfmcEnv) -> None:
    secrets.create_secret(Name=SECRET, SecretString=json.dumps(env.connection()))


def single_source(*data_extensions: dict[str, Any], **source: Any) -> dict[str, Any]:
    return {
        "schemaVersion": "1",
        "sources": [
            {
                "id": "sfmc-main",
                "type": "sfmc",
                "secret": SECRET,
                **source,
                "dataExtensions": list(data_extensions),
            }
        ],
    }

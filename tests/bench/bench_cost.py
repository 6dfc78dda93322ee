"""The cost model (issue 18): dollars per million events per destination, from measured counts.

Each destination's real Lambda handler runs in a fresh Lambda-like interpreter (the layer's requirements
plus boto3, as in the cold-start and memory benchmarks) against moto server in its own process and the
destination's fake vendor on 127.0.0.1, on RECORDS events in SQS batches of the template's BatchSize,
one warm container from its cold start on. Inside that interpreter:

- botocore event hooks on every client created count each AWS request by service and operation
  (`provide-client-params`), with what prices it (consistent reads, items of batch and transactional
  calls), and add AWS_LATENCY to each HTTP attempt (`before-send`), a realistic AWS round trip (moto
  answers on loopback in about a millisecond);
- the bytes written to stdout (Powertools' log lines and EMF metrics: what CloudWatch Logs ingests) are
  counted, plus Lambda's own START/END/REPORT lines per invocation;
- each invocation's wall time (the billed duration) and CPU time are taken.

The transport around the function is priced from AWS's documented behaviour, not measured: one
PutEvents entry per event, one SQS SendMessage per event (the EventBridge target), and the event source
mapping's ReceiveMessage and DeleteMessageBatch calls, up to 10 messages each.

`run()` returns the headline figures for BENCHMARKS.md and writes docs/capacity.md.
"""

from __future__ import annotations

import copy
import json
import math
import multiprocessing
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activation_core import manifest
from tests.bench import bench_core as core
from tests.bench.run import Figure

ROOT = Path(__file__).resolve().parents[2]
PRICES = Path(__file__).with_name("prices.toml")
CAPACITY = ROOT / "docs" / "capacity.md"
COMMAND = "make bench (tests/bench/bench_cost.py)"
MANIFEST = manifest.load(core.FUNCTIONS)  # the destinations, from functions/destinations.json
DESTINATIONS = MANIFEST.types
RECORDS = 1_000
AWS_LATENCY = 0.005
GOAL_PER_MILLION = 2.00
# Lambda's own lines per invocation (START, END, REPORT with its X-Ray trace line): about 350 bytes.
PLATFORM_LOG_BYTES = 350
# The event source mapping receives and deletes up to 10 messages per SQS call.
SQS_MESSAGES_PER_CALL = 10
CONFIG_PARAMETER = "/bench/destinations"

_PROBE = """
import io, json, sys, time
spec_file, out_file = sys.argv[1], sys.argv[2]
sys.path[:0] = sys.argv[3:]
with open(spec_file) as f:
    spec = json.load(f)

import botocore.session

counts = {}
create_client = botocore.session.Session.create_client


def counted(self, *args, **kwargs):
    client = create_client(self, *args, **kwargs)

    def count(model, params, **_):  # the API call's own parameters, once per call
        entry = counts.setdefault(
            f"{model.service_model.service_name}:{model.name}", {"requests": 0, "consistent": 0, "items": 0}
        )
        entry["requests"] += 1
        entry["consistent"] += bool(params.get("ConsistentRead"))
        entry["items"] += len(params.get("TransactItems") or params.get("Entries") or [])
        entry["items"] += sum(len(v) if isinstance(v, list) else len(v.get("Keys", []))
                              for v in (params.get("RequestItems") or {}).values())

    def round_trip(**_):  # each HTTP attempt: an AWS round trip; moto answers on loopback at once
        time.sleep(spec["latency"])

    client.meta.events.register("provide-client-params", count)  # as called (not a stand-in: aws.py)
    client.meta.events.register("before-send", round_trip)
    return client


botocore.session.Session.create_client = counted


class Counting(io.TextIOBase):
    written = 0

    def writable(self):
        return True

    def write(self, text):
        Counting.written += len(text.encode())
        return len(text)


sys.stdout = Counting()  # before Powertools' Logger binds its stream
handler = __import__(spec["module"], fromlist=["lambda_handler"]).lambda_handler


class Context:
    function_name = "bench"
    memory_limit_in_mb = spec["memory_mb"]
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench"

    @staticmethod
    def get_remaining_time_in_millis():
        return 30_000


invocations = []
with open(spec["events"]) as f:
    batches = json.load(f)
for batch in batches:
    wall, cpu = time.perf_counter(), time.process_time()
    response = handler({"Records": batch}, Context())
    invocations.append({
        "wall": time.perf_counter() - wall,
        "cpu": time.process_time() - cpu,
        "records": len(batch),
        "failures": len(response["batchItemFailures"]),
    })
with open(out_file, "w") as f:
    json.dump({"counts": counts, "log_bytes": Counting.written, "invocations": invocations}, f)
"""


@dataclass(frozen=True)
class Measured:
    """One destination's handler on RECORDS events."""

    destination: str
    records: int
    batch_size: int
    memory_mb: int
    counts: dict[str, dict[str, int]]
    log_bytes: int
    invocations: list[dict[str, float]]
    vendor_calls: int  # API calls at the fake vendor, token requests excluded

    def requests(self, service: str) -> int:
        return sum(c["requests"] for name, c in self.counts.items() if name.startswith(f"{service}:"))

    @property
    def billed_ms(self) -> float:
        return sum(math.ceil(i["wall"] * 1000) for i in self.invocations)

    @property
    def cpu_ms(self) -> float:
        return sum(i["cpu"] for i in self.invocations) * 1000


# ------------------------------------------------------------------ events
def _profile_events(count: int) -> list[dict[str, Any]]:
    from local.examples import sample_events

    base = next(e for e in sample_events() if e["detail"]["eventId"] == "evt-0001")
    events = []
    for i in range(count):
        event = copy.deepcopy(base)
        detail = event["detail"]
        detail["eventId"] = f"cost-{i}"
        identities = detail["profile"]["identities"]
        identities.update(
            {"email": f"cost.{i}@example.com", "crmId": f"CRM-C{i}", "outreachId": str(100_000 + i)}
        )
        identities.pop("ecid", None)
        detail["profile"]["attributes"]["person"]["name"]["firstName"] = f"Cost{i}"
        events.append(event)
    return events


def _account_events(count: int) -> list[dict[str, Any]]:
    from local.examples import sample_events

    base = next(e for e in sample_events() if e["detail-type"] == "Account Audience Membership Changed")
    events = []
    for i in range(count):
        event = copy.deepcopy(base)
        event["detail"]["eventId"] = f"cost-account-{i}"
        event["detail"]["account"]["attributes"]["accountOrganization"]["domain"] = f"cost{i}.example.com"
        event["detail"]["account"]["identities"]["crmAccountId"] = f"ACC-C{i}"
        events.append(event)
    return events


def _function(destination: str) -> str:
    from activation_core import naming  # the layer joins sys.path in __main__ / the bench runner

    return naming.logical_id(destination, "Function")


def template_memory_mb(function: str) -> int:
    """MemorySize of a function in template.yaml (its own, else the Globals')."""
    text = (ROOT / "template.yaml").read_text()
    block = re.split(r"\n  \w", text.split(f"  {function}:", 1)[1], maxsplit=1)[0]
    own = re.search(r"MemorySize:\s*(\d+)", block)
    found = own or re.search(r"MemorySize:\s*(\d+)", text.split("Globals:", 1)[1].split("Resources:", 1)[0])
    return int(found[1])  # type: ignore[index]


# ------------------------------------------------------------------ measurement
def _measure(destination: str, endpoint: str, tmp: Path, site: Path, conn: Any) -> Measured:
    import boto3

    from local.examples import example_config
    from local.harness import vendor_plugs
    from tests.support import sqs_record

    function = _function(destination)
    batch_size = core.template_batch_size(function)
    memory_mb = template_memory_mb(function)
    records = max(RECORDS, 2 * batch_size)  # at least one warm invocation after the cold one
    records -= records % batch_size
    plug = vendor_plugs()[destination]()
    config = example_config()
    config["destinations"] = [d for d in config["destinations"] if d["type"] == destination][:1]
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    session.client("ssm", endpoint_url=endpoint).put_parameter(
        Name=CONFIG_PARAMETER, Type="String", Value=json.dumps(config), Overwrite=True
    )
    sqs = session.client("sqs", endpoint_url=endpoint)
    dlq = sqs.create_queue(QueueName=f"bench-{destination}-dlq")["QueueUrl"]
    entity = spec.entity if (spec := MANIFEST.get(destination)) else "profile"
    events = _account_events(records) if entity == "account" else _profile_events(records)
    batches = [
        [sqs_record(e, f"{destination}-{i}") for i, e in enumerate(events[start : start + batch_size], start)]
        for start in range(0, records, batch_size)
    ]
    events_file, spec_file, out_file = tmp / "events.json", tmp / "spec.json", tmp / "out.json"
    events_file.write_text(json.dumps(batches))
    spec_file.write_text(
        json.dumps(
            {
                "module": f"{destination}.handler",
                "events": str(events_file),
                "latency": AWS_LATENCY,
                "memory_mb": memory_mb,
            }
        )
    )
    env = core.handler_env(endpoint, destination, CONFIG_PARAMETER, log_level="INFO") | {
        "DEAD_LETTER_QUEUE_URL": dlq,
        "MAX_RECEIVE_COUNT": "5",
    }
    with plug.fake:
        for instance in config["destinations"]:
            session.client("secretsmanager", endpoint_url=endpoint).create_secret(
                Name=instance["secret"], SecretString=json.dumps(plug.connection_secret())
            )
        conn.send("count")
        conn.recv()  # set-up requests are not the handler's
        command = [core.lambda_python(), "-I", "-S", "-c", _PROBE, str(spec_file), str(out_file)]
        subprocess.run(
            [*command, str(core.FUNCTIONS), str(core.LAYER), str(site)],
            env=env,
            cwd=tmp,
            check=True,
            timeout=1200,
            stdout=subprocess.DEVNULL,
        )
        conn.send("count")
        served = conn.recv()
        vendor_calls = sum(1 for r in plug.fake.requests if "oauth/token" not in r.path)
    data = json.loads(out_file.read_text())
    measured = Measured(
        destination,
        records,
        batch_size,
        memory_mb,
        data["counts"],
        data["log_bytes"],
        data["invocations"],
        vendor_calls,
    )
    counted = sum(c["requests"] for c in measured.counts.values())
    failures = sum(i["failures"] for i in measured.invocations)
    if failures or counted != served:
        raise RuntimeError(
            f"{destination}: {failures} failed records; {counted} requests counted, {served} served"
        )
    return measured


# ------------------------------------------------------------------ pricing
@dataclass(frozen=True)
class Line:
    service: str
    what: str
    per_record: float  # units per event
    unit: str
    dollars_per_million: float
    floor: bool = False


def price(measured: Measured, prices: dict[str, Any]) -> list[Line]:
    """Dollars per million events to this destination, per service and charge."""
    n = measured.records
    invocations = len(measured.invocations)
    per_invocation = measured.batch_size
    lines = [
        Line(
            "EventBridge",
            "PutEvents entries (one per event)",
            1.0,
            "events",
            prices["eventbridge"]["custom_event_per_million"],
            True,
        ),
    ]
    sqs_transport = 1.0 + 2.0 / SQS_MESSAGES_PER_CALL
    lines.append(
        Line(
            "SQS",
            "SendMessage by the EventBridge target, ReceiveMessage and DeleteMessageBatch by the event source mapping",
            sqs_transport,
            "requests",
            sqs_transport * prices["sqs"]["request_per_million"],
            True,
        )
    )
    own_sqs = measured.requests("sqs") / n
    if own_sqs:
        lines.append(
            Line(
                "SQS",
                "the function's own calls (DLQ, requeue, visibility)",
                own_sqs,
                "requests",
                own_sqs * prices["sqs"]["request_per_million"],
            )
        )
    lines.append(
        Line(
            "Lambda",
            f"invocations (SQS batches of {per_invocation})",
            invocations / n,
            "invocations",
            invocations / n * prices["lambda"]["request_per_million"],
            True,
        )
    )
    gb_seconds = measured.billed_ms / 1000 * measured.memory_mb / 1024 / n
    lines.append(
        Line(
            "Lambda",
            f"duration at {measured.memory_mb} MB arm64 (measured wall time, {AWS_LATENCY * 1000:.0f} ms per AWS call)",
            gb_seconds,
            "GB-s",
            gb_seconds * 1e6 * prices["lambda"]["arm64_gb_second"],
        )
    )
    writes = reads = 0.0
    for name, c in measured.counts.items():
        if not name.startswith("dynamodb:"):
            continue
        operation = name.split(":", 1)[1]
        if operation in ("PutItem", "UpdateItem", "DeleteItem"):
            writes += c["requests"]
        elif operation == "BatchWriteItem":
            writes += c["items"]
        elif operation == "TransactWriteItems":
            writes += 2 * c["items"]
        elif operation in ("GetItem", "Query", "Scan"):
            reads += c["consistent"] + 0.5 * (c["requests"] - c["consistent"])
        elif operation == "BatchGetItem":
            reads += c["items"]  # at most; eventually consistent would be half
    lines.append(
        Line(
            "DynamoDB",
            "write request units (items up to 1 KB)",
            writes / n,
            "WRU",
            writes / n * prices["dynamodb"]["write_request_unit_per_million"],
        )
    )
    lines.append(
        Line(
            "DynamoDB",
            "read request units (items up to 4 KB)",
            reads / n,
            "RRU",
            reads / n * prices["dynamodb"]["read_request_unit_per_million"],
        )
    )
    secrets = measured.requests("secretsmanager") / n
    lines.append(
        Line(
            "Secrets Manager",
            "API calls (per container, amortised)",
            secrets,
            "calls",
            secrets * prices["secretsmanager"]["api_call_per_million"],
        )
    )
    log_gb = (measured.log_bytes + PLATFORM_LOG_BYTES * invocations) / 1e9 / n
    lines.append(
        Line(
            "CloudWatch Logs",
            "bytes ingested (logs and EMF metrics)",
            log_gb * 1e9,
            "bytes",
            log_gb * 1e6 * prices["logs"]["ingestion_per_gb"],
        )
    )
    traces = invocations / n * prices["xray"]["default_sampling_rate"]
    lines.append(
        Line(
            "X-Ray",
            "traces (default sampling of invocations)",
            traces,
            "traces",
            traces * prices["xray"]["trace_recorded_per_million"],
        )
    )
    return lines


def _load_prices() -> dict[str, Any]:
    return tomllib.loads(PRICES.read_text())


# ------------------------------------------------------------------ vendor ceilings
@dataclass(frozen=True)
class Ceiling:
    destination: str
    limit: str  # the vendor's documented limit (apis.md)
    ceiling: str  # what it allows at the measured calls per event
    actions: str  # what an operator can do about it


def ceilings(measured: dict[str, Measured]) -> list[Ceiling]:
    def per_event(destination: str) -> float:
        m = measured[destination]
        return m.vendor_calls / m.records

    out = []
    mkt = per_event("marketo")
    out.append(
        Ceiling(
            "marketo",
            "100 calls per 20 s per instance, shared by every integration (the docs advise 50 for one); "
            "50,000 calls a day per subscription (resets 12:00 AM CST); 10 calls in flight",
            f"{mkt:.4f} calls per event (batches of 300): {100 / 20 / mkt:,.0f} events/s at the full 100 per "
            f"20 s, {50_000 / mkt:,.0f} events a day if the whole daily quota were ours",
            "Keep the SQS BatchSize at 300 (one Sync Leads and one list call per 300 leads; batches of 25 cost "
            "12x the calls); set `callsPer20Seconds` to this integration's share; ask Adobe for a larger "
            "daily quota; prefer `profile_only` or `audience_only` when one call type is enough (half the calls).",
        )
    )
    out_calls = per_event("outreach")
    out.append(
        Ceiling(
            "outreach",
            "10,000 requests per hour per Outreach user (every app of that user shares it)",
            f"{out_calls:.2f} calls per event here (one PATCH per distinct prospect per batch, all distinct): "
            f"{10_000 / out_calls:,.0f} prospect changes an hour per user; several changes to one prospect "
            "cost one call per batch, and one per budget window across batches once they wait "
            "(`activation_core.waiting`)",
            "Authorise each connection with its own Outreach user (`budgetKey` per user) to add budgets; map "
            "only attributes that matter (every change of a mapped attribute is a call); keep "
            "`remainingReserve` small if no other app uses the user; a backlog waits (requeued up to 24 times) "
            "rather than failing.",
        )
    )
    bom = per_event("bombora")
    out.append(
        Ceiling(
            "bombora",
            "none documented for api.bombora.com (the legacy Surge API: 60 calls per minute per endpoint)",
            f"{bom:.4f} calls per event (one add or delete per 1,000 domains): even at 60 calls a minute, "
            f"{60 / 60 / bom:,.0f} domain changes a second",
            "None needed at these volumes; keep BatchSize 1000 (batches of 25 cost 40x the calls).",
        )
    )
    rnf = per_event("rainfocus")
    out.append(
        Ceiling(
            "rainfocus",
            "no numbers published (the terms say limits exist); the Attendee Store has no batch endpoint",
            f"{rnf:.2f} calls per event (one store call per attendee): throughput is latency-bound, at most "
            "`maxConcurrency` (8) calls in flight per invocation x DestinationMaxConcurrency (5) invocations, "
            "e.g. 800 attendees/s at 50 ms per call",
            "Raise DestinationMaxConcurrency or `maxConcurrency` only with RainFocus's agreement; on 429s the "
            "records wait for the vendor's reset (Retry-After) instead of failing.",
        )
    )
    return out


# ------------------------------------------------------------------ docs/capacity.md
def _money(value: float) -> str:
    return f"${value:,.3f}"


def render(measured: dict[str, Measured], prices: dict[str, Any], seconds: float) -> str:
    priced = {d: price(m, prices) for d, m in measured.items()}
    totals = {d: sum(line.dollars_per_million for line in lines) for d, lines in priced.items()}
    floors = {d: sum(line.dollars_per_million for line in lines if line.floor) for d, lines in priced.items()}
    lines = [
        "# Capacity and cost",
        "",
        f"Generated by `make bench` (`tests/bench/bench_cost.py`, {time.strftime('%Y-%m-%d')}, {seconds:.0f} s) "
        "from measured counts and the price table `tests/bench/prices.toml` "
        f"({prices['region']}, on-demand list prices, no free tier; prices as of {prices['checked']}). "
        "Do not edit by hand: "
        "change the code or the prices and run `make bench` again.",
        "",
        "## How it is measured",
        "",
        f"Each destination's real Lambda handler runs {', '.join(f'{m.records:,} {d}' for d, m in measured.items())} "
        "events (the sample profile event with distinct identities; account events for Bombora) in SQS "
        "batches of the template's BatchSize, in one warm container from its cold start on (token, config "
        "and secret reads are amortised over those events), in a fresh Lambda-like interpreter against moto "
        "server and the destination's fake vendor. A botocore event hook counts every AWS request by service "
        f"and operation and adds {AWS_LATENCY * 1000:.0f} ms to each (an AWS round trip; moto answers on "
        "loopback at once). Log bytes are what the function writes (Powertools' JSON lines and EMF metrics) "
        f"plus {PLATFORM_LOG_BYTES} bytes of Lambda's START/END/REPORT lines per invocation. Duration is each "
        "invocation's wall time, billed per millisecond at the template's memory size; it runs on a shared "
        "2-core machine, so it is an upper bound. The transport is priced from AWS's documented behaviour: one "
        "PutEvents entry and one SQS SendMessage (the EventBridge target) per event, and the event source "
        f"mapping's ReceiveMessage and DeleteMessageBatch calls for up to {SQS_MESSAGES_PER_CALL} messages each.",
        "",
        "Per destination, not per event published: one event that goes to several destinations is published "
        "once (EventBridge is paid once) but queued, processed and delivered once per destination. Fixed "
        "monthly costs are not per event and not included: CloudWatch custom metrics ($0.30 per metric a "
        "month; the functions emit a few per destination and reason), alarms, the SQS long polls of idle "
        "event source mappings, DynamoDB and log storage.",
        "",
        f"## Dollars per million events, per destination (goal <= ${GOAL_PER_MILLION:.2f})",
        "",
        "| destination | total | floor (EventBridge + SQS + Lambda requests) | above the floor | goal met |",
        "| --- | --- | --- | --- | --- |",
    ]
    for destination in measured:
        total, floor = totals[destination], floors[destination]
        met = "yes" if total <= GOAL_PER_MILLION else "**no**"
        lines.append(
            f"| {destination} | {_money(total)} | {_money(floor)} | {_money(total - floor)} | {met} |"
        )
    lines += ["", "What the goal leaves for DynamoDB, everything else as measured:", ""]
    wru = prices["dynamodb"]["write_request_unit_per_million"]
    for destination, lines_ in priced.items():
        dynamodb = sum(line.dollars_per_million for line in lines_ if line.service == "DynamoDB")
        room = GOAL_PER_MILLION - (totals[destination] - dynamodb)
        lines.append(
            f"- {destination}: {_money(dynamodb)} of DynamoDB today "
            f"({measured[destination].requests('dynamodb') / measured[destination].records:.2f} requests per "
            f"event); the goal leaves {_money(max(room, 0.0))}, {max(room, 0.0) / wru:.2f} writes per event"
            + (" (the rest alone is over the goal)" if room <= 0 else "")
        )
    lines += provisioned_lever(measured, priced, totals, prices)
    lines += ["", "## Per service", ""]
    services = list(dict.fromkeys(line.service for lines_ in priced.values() for line in lines_))
    lines += [
        "Dollars per million events (what each service charges for them):",
        "",
        "| service | " + " | ".join(measured) + " |",
        "| --- |" + " --- |" * len(measured),
    ]
    for service in services:
        cells = [
            _money(sum(line.dollars_per_million for line in priced[d] if line.service == service))
            for d in measured
        ]
        lines.append(f"| {service} | " + " | ".join(cells) + " |")
    lines.append("| **total** | " + " | ".join(_money(totals[d]) for d in measured) + " |")
    for destination, m in measured.items():
        lines += [
            "",
            f"### {destination}",
            "",
            f"{m.records:,} events in {len(m.invocations)} invocations of {m.batch_size} at {m.memory_mb} MB: "
            f"{m.billed_ms / m.records:.2f} ms billed and {m.cpu_ms / m.records:.2f} ms of CPU per event, "
            f"{m.vendor_calls / m.records:.4f} vendor API calls per event (token requests excluded).",
            "",
            "| service | charge | per event | $ per million events |",
            "| --- | --- | --- | --- |",
        ]
        for line in priced[destination]:
            lines.append(
                f"| {line.service} | {line.what} | {line.per_record:,.4f} {line.unit} | {_money(line.dollars_per_million)} |"
            )
        requests = ", ".join(
            f"{name} {c['requests'] / m.records:.3f}" for name, c in sorted(m.counts.items())
        )
        lines += ["", f"AWS requests per event, by operation: {requests}."]
    lines += [
        "",
        "## Vendor ceilings",
        "",
        "What each vendor's documented limits (`/work/shared/reference/apis.md`, summarised in "
        "docs/destinations/) allow at the measured calls per event, and what an operator can do about it.",
        "",
        "| destination | vendor limit | ceiling | what an operator can do |",
        "| --- | --- | --- | --- |",
    ]
    for ceiling in ceilings(measured):
        lines.append(f"| {ceiling.destination} | {ceiling.limit} | {ceiling.ceiling} | {ceiling.actions} |")
    lines.append("")
    return "\n".join(lines)


def provisioned_lever(
    measured: dict[str, Measured],
    priced: dict[str, list[Line]],
    totals: dict[str, float],
    prices: dict[str, Any],
) -> list[str]:
    """The same measured units priced at provisioned capacity: computed, not measured (issue 18, goal 4)."""
    on_demand, provisioned = prices["dynamodb"], prices["dynamodb_provisioned"]
    utilisation = provisioned["target_utilisation"]

    def hourly(units_per_event: float, unit_hour: float) -> float:
        # a unit serves one request a second: units per million events / 3600 = unit-hours at 100%
        return units_per_event * 1e6 / 3600 / utilisation * unit_hour

    lines = [
        "",
        "## What DynamoDB's capacity mode would change (computed, not measured)",
        "",
        "The state table is on-demand (the template's `PAY_PER_REQUEST`). The same write and read units per "
        "event, priced at provisioned capacity with auto scaling keeping "
        f"{utilisation:.0%} of the capacity busy (`tests/bench/prices.toml`), and with the guard's "
        "transactional writes (2 units an item) replaced by single conditional writes (1 unit, e.g. "
        'PartiQL `BatchExecuteStatement`; see docs/decisions.md, "The order guard keeps its '
        'transactions"):',
        "",
        "| destination | on-demand (today) | provisioned | on-demand, 1 unit a guard write | provisioned, 1 unit a guard write |",
        "| --- | --- | --- | --- | --- |",
    ]
    for destination, lines_ in priced.items():
        wru = sum(line.per_record for line in lines_ if line.unit == "WRU")
        rru = sum(line.per_record for line in lines_ if line.unit == "RRU")
        dynamodb = sum(line.dollars_per_million for line in lines_ if line.service == "DynamoDB")
        rest = totals[destination] - dynamodb
        m = measured[destination]
        transaction_items = m.counts.get("dynamodb:TransactWriteItems", {}).get("items", 0) / m.records
        single_wru = wru - transaction_items  # each transaction item: 1 unit instead of 2
        scenarios = (
            dynamodb,
            hourly(wru, provisioned["write_capacity_unit_hour"])
            + hourly(rru, provisioned["read_capacity_unit_hour"]),
            single_wru * on_demand["write_request_unit_per_million"]
            + rru * on_demand["read_request_unit_per_million"],
            hourly(single_wru, provisioned["write_capacity_unit_hour"])
            + hourly(rru, provisioned["read_capacity_unit_hour"]),
        )
        cells = [
            f"{_money(rest + cost)}{' (met)' if rest + cost <= GOAL_PER_MILLION else ''}"
            for cost in scenarios
        ]
        lines.append(f"| {destination} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Provisioned capacity is paid by the hour whether or not events arrive, and a burst above it is "
        "throttled (the batch retries) until auto scaling catches up, which takes minutes; on-demand has "
        "neither problem. It pays off for a steady stream. The template does not offer it: a product "
        "decision, as is the guard's write (see docs/decisions.md).",
    ]
    return lines


_SUMMARY: list[str] = []


def notes() -> list[str]:
    return list(_SUMMARY)


def measure_all(destinations: tuple[str, ...] = DESTINATIONS) -> dict[str, Measured]:
    import boto3

    from tests.support import create_state_table

    context = multiprocessing.get_context("spawn")
    ours_conn, moto_conn = context.Pipe()
    moto = context.Process(target=core._serve_moto, args=(moto_conn,), daemon=True)
    moto.start()
    measured: dict[str, Measured] = {}
    with tempfile.TemporaryDirectory() as tmp:
        site = core.build_lambda_site(Path(tmp) / "site")
        try:
            endpoint = ours_conn.recv()
            dynamodb = boto3.session.Session(
                aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
            ).client("dynamodb", endpoint_url=endpoint)
            create_state_table(dynamodb, core.STATE_TABLE)
            for destination in destinations:
                work = Path(tmp) / destination
                work.mkdir()
                measured[destination] = _measure(destination, endpoint, work, site, ours_conn)
        finally:
            ours_conn.send("stop")
            moto.join(timeout=10)
    return measured


def run() -> list[Figure]:
    started = time.monotonic()
    prices = _load_prices()
    measured = measure_all()
    CAPACITY.write_text(render(measured, prices, time.monotonic() - started))
    figures = []
    for destination, m in measured.items():
        lines = price(m, prices)
        total = sum(line.dollars_per_million for line in lines)
        floor = sum(line.dollars_per_million for line in lines if line.floor)
        figures.append(
            Figure(
                "Cost per million events",
                f"{destination}: AWS dollars per million events (docs/capacity.md)",
                total,
                floor,
                "the floor: EventBridge + SQS + Lambda requests",
                "$",
                COMMAND,
                f"<= {GOAL_PER_MILLION:.2f}",
                total <= GOAL_PER_MILLION,
            )
        )
    _SUMMARY.append(
        "Cost: docs/capacity.md is written by this module from measured AWS requests, log bytes and "
        "invocation wall time per event (each destination's real handler, moto server, the fake vendor, "
        f"{AWS_LATENCY * 1000:.0f} ms added per AWS call) and tests/bench/prices.toml; see it for the split "
        "per service and the vendor ceilings."
    )
    return figures


if __name__ == "__main__":
    sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "activation_core"), str(ROOT / "functions")]
    chosen = tuple(sys.argv[1:]) or DESTINATIONS
    began = time.monotonic()
    results = measure_all(chosen)
    text = (
        render(results, _load_prices(), time.monotonic() - began) if set(chosen) == set(DESTINATIONS) else ""
    )
    for name, m in results.items():
        total = sum(line.dollars_per_million for line in price(m, _load_prices()))
        print(f"{name}: ${total:.3f} per million events; requests {m.counts}")
    if text:
        CAPACITY.write_text(text)

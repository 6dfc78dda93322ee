"""The project's local stack: template.yaml deployed into moto, fake vendor servers, connection secrets
and the example config in place. `make demo` and the integration tests both run on it.

A fake vendor plugs in by defining a `Plug` class in `local/fakes/<destination type>.py`.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from activation_core import manifest, naming
from local import moto_speedups
from local.examples import example_config
from local.fakes.base import FakeServer
from local.sam_local import moto_runner as sam_runner
from local.stack import LocalStack

ROOT = Path(__file__).resolve().parent.parent
STACK_NAME = "activation-local"  # the example config's secret names live under this prefix
MANIFEST = manifest.load(ROOT / "functions")  # the one list of destinations
DESTINATION_TYPES = MANIFEST.types


def rule_destination(rule_name: str) -> str | None:
    """The destination whose rule this is (CloudFormation names it `<stack>-<Prefix>Rule-<suffix>`);
    the longest prefix wins, so `GoogleAdsRule` is never taken for an `AdsRule`."""
    owners = [t for t in DESTINATION_TYPES if naming.logical_id(t, "Rule") in rule_name]
    return max(owners, key=lambda t: len(naming.logical_prefix(t)), default=None)


class VendorPlug(Protocol):
    """A fake vendor and the connection secret that points a destination at it."""

    @property
    def fake(self) -> FakeServer: ...

    def connection_secret(self) -> dict[str, Any]: ...


def _install_hook(plug: VendorPlug) -> Callable[[ActivationHarness], None] | None:
    """A plug may define `install(harness)` for set-up beyond a connection secret (e.g. a source)."""
    hook = getattr(plug, "install", None)
    return hook if callable(hook) else None


# Every credential and token the fakes handed out in this process: tests assert none reaches a log.
SECRETS_SEEN: set[str] = set()


def secret_values(plug: VendorPlug) -> set[str]:
    """The plug's connection secret values (not its URL) and every token its fake issued."""
    values = {str(v) for k, v in plug.connection_secret().items() if k != "baseUrl" and isinstance(v, str)}
    values |= {str(t) for t in getattr(plug.fake, "tokens", {})}
    return {v for v in values if len(v) >= 8}


def vendor_plugs() -> dict[str, Callable[[], VendorPlug]]:
    """Every fake vendor: `local/fakes/<destination or source type>.py` defines a `Plug` class."""
    plugs: dict[str, Callable[[], VendorPlug]] = {}
    for path in sorted(Path(__file__).parent.joinpath("fakes").glob("*.py")):
        module = importlib.import_module(f"local.fakes.{path.stem}")
        if hasattr(module, "Plug"):
            plugs[path.stem] = module.Plug
    return plugs


@dataclass
class DestinationReport:
    destination_type: str
    published: int
    ledger: dict[str, int]
    dlq_depth: int
    dlq_reasons: dict[str, int] = field(default_factory=dict)

    def count(self, name: str) -> int:
        return self.ledger.get(name, 0)

    @property
    def reasons(self) -> dict[str, int]:
        return {
            k.removeprefix("reason:"): v for k, v in sorted(self.ledger.items()) if k.startswith("reason:")
        }

    @property
    def balanced(self) -> bool:
        """Nothing lost: every record received is delivered, skipped or in the DLQ (rejected or exhausted)."""
        settled = self.count("delivered") + self.count("skipped") + self.dlq_depth
        return (
            self.published == self.count("received") == settled and self.count("rejected") <= self.dlq_depth
        )


class ActivationHarness:
    """Start with `with ActivationHarness() as h:`; everything runs on 127.0.0.1."""

    def __init__(self, workdir: Path = ROOT / ".local-stack", config: dict[str, Any] | None = None) -> None:
        self.stack = LocalStack(workdir)
        self.config = config or example_config()
        self.plugs: dict[str, VendorPlug] = {}
        self.outputs: dict[str, str] = {}
        self.published: dict[str, int] = dict.fromkeys(DESTINATION_TYPES, 0)

    def __enter__(self) -> ActivationHarness:
        try:
            self.start()
        except BaseException:  # interrupted or failed while starting: stop what did start
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        moto_speedups.apply()  # EventBridge -> SQS fan-out: ~55 -> ~20 ms per published event
        self.stack.start()
        self.outputs = self.stack.deploy(
            ROOT / "template.yaml",
            STACK_NAME,
            # Fakes answer in milliseconds: a short timeout keeps injected slow responses quick to test.
            {"AllowLoopbackUrls": "true", "VendorTimeoutSeconds": "2"},
        )
        for destination_type, plug_factory in vendor_plugs().items():
            plug = plug_factory()
            plug.fake.start()
            self.plugs[destination_type] = plug
        self.install_config(self.config)
        for plug in self.plugs.values():
            hook = _install_hook(plug)
            if hook is not None:
                hook(self)
        if sam_runner.requested():  # LAMBDA_RUNNER=sam: functions run in `sam local start-lambda`
            sam_runner.attach(self)

    def stop(self) -> None:
        for plug in self.plugs.values():
            SECRETS_SEEN.update(secret_values(plug))
            plug.fake.stop()
        self.stack.stop()

    def fake(self, destination_type: str) -> Any:
        return self.plugs[destination_type].fake

    def install_config(self, config: dict[str, Any]) -> None:
        """Connection secrets for every instance with a fake, then the config document in SSM."""
        secrets = self.stack.client("secretsmanager")
        for instance in config["destinations"]:
            plug = self.plugs.get(instance["type"])
            if plug is None:
                continue
            value = json.dumps(plug.connection_secret())
            try:
                secrets.create_secret(Name=instance["secret"], SecretString=value)
            except secrets.exceptions.ResourceExistsException:
                secrets.put_secret_value(SecretId=instance["secret"], SecretString=value)
        self.stack.client("ssm").put_parameter(
            Name=self.outputs["DestinationsConfigParameterName"],
            Value=json.dumps(config),
            Type="String",
            Overwrite=True,
        )
        self.config = config

    def publish(self, events: Iterable[dict[str, Any]]) -> int:
        """PutEvents to the stack's bus, 10 per call; returns how many were accepted. A `detail` given as
        text is sent as is (numbers json.dumps cannot write, e.g. 1e400)."""
        client = self.stack.client("events")
        entries = [
            {
                "Source": e["source"],
                "DetailType": e["detail-type"],
                "Detail": e["detail"] if isinstance(e["detail"], str) else json.dumps(e["detail"]),
                "EventBusName": self.outputs["EventBusName"],
            }
            for e in events
        ]
        for start in range(0, len(entries), 10):
            response = client.put_events(Entries=entries[start : start + 10])
            if response.get("FailedEntryCount"):
                raise RuntimeError(f"PutEvents failed: {response['Entries']}")
        routes = self._routes()
        for e in entries:
            for destination_type, detail_types in routes.items():
                self.published[destination_type] += e["DetailType"] in detail_types
        return len(entries)

    def _routes(self) -> dict[str, set[str]]:
        """The detail-types each destination's rule (as deployed) sends to its queue."""
        rules = self.stack.client("events").list_rules(EventBusName=self.outputs["EventBusName"])["Rules"]
        routes: dict[str, set[str]] = {}
        for rule in rules:
            destination_type = rule_destination(rule["Name"])
            if destination_type is not None:  # other rules (e.g. the snapshot workflow's) feed no queue
                routes[destination_type] = set(json.loads(rule["EventPattern"])["detail-type"])
        return routes

    def drain(self, max_rounds: int = 200) -> int:
        return self.stack.poller.drain(max_rounds=max_rounds)

    def ledger(self, destination_type: str, key: str = "") -> dict[str, int]:
        item = (
            self.stack.client("dynamodb")
            .get_item(
                TableName=self.outputs["StateTableName"],
                Key={"pk": {"S": naming.ledger_key(destination_type)}, "sk": {"S": key or destination_type}},
                ConsistentRead=True,
            )
            .get("Item", {})
        )
        return {k: int(v["N"]) for k, v in item.items() if "N" in v}

    def dlq_messages(self, destination_type: str) -> list[dict[str, Any]]:
        """Every message in the destination's DLQ, left in place (made visible again afterwards)."""
        sqs = self.stack.client("sqs")
        url = self.outputs[naming.output_name(destination_type, "DeadLetterQueueUrl")]
        seen: dict[str, dict[str, Any]] = {}
        while True:  # each receive hides what it returned, so the next one gets the following messages
            batch = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=300, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not batch:
                break
            seen.update((m["MessageId"], m) for m in batch)
        messages = list(seen.values())
        for start in range(0, len(messages), 10):
            sqs.change_message_visibility_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                    for i, m in enumerate(messages[start : start + 10])
                ],
            )
        return messages

    def report(self, destination_type: str) -> DestinationReport:
        messages = self.dlq_messages(destination_type)
        reasons: dict[str, int] = {}
        for message in messages:
            attrs = message.get("MessageAttributes", {})
            reason = attrs.get("reason", {}).get("StringValue", "no_reason:sqs_redrive")
            reasons[reason] = reasons.get(reason, 0) + 1
        return DestinationReport(
            destination_type,
            self.published[destination_type],
            self.ledger(destination_type),
            len(messages),
            reasons,
        )

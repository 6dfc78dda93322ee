"""AWS access for the CLI: one boto3 session per command, the stack's outputs, friendly errors.

boto3 honours `AWS_ENDPOINT_URL` itself, so every command works against AWS and against the local
stack (moto server) alike. Resources are always found through the stack's Outputs, never by name.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from activation_cli.console import fail
from activation_core import naming

STACK_ENV = "ACTIVATION_STACK"
DLQ_OUTPUT = "DeadLetterQueueUrl"


@dataclass
class Session:
    """The profile and region chosen on the command line (None: boto3's usual resolution)."""

    profile: str | None = None
    region: str | None = None
    _session: Any = None
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            import boto3

            if self._session is None:
                self._session = boto3.session.Session(profile_name=self.profile, region_name=self.region)
            self._clients[service] = self._session.client(service)
        return self._clients[service]


_current = Session()


def configure(profile: str | None = None, region: str | None = None) -> None:
    """Called once per command by the app's callback: a fresh session (and no stale clients)."""
    global _current
    _current = Session(profile, region)


def client(service: str) -> Any:
    return _current.client(service)


@contextmanager
def aws_errors() -> Iterator[None]:
    """Turn SDK errors into one readable line and exit code 1 (no traceback for an operator)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        fail(f"AWS refused {exc.operation_name}: {error.get('Code', '?')}: {error.get('Message', '')}")
    except BotoCoreError as exc:
        fail(f"AWS call failed: {exc}")


@dataclass(frozen=True)
class Stack:
    """A deployed activation stack, known by its Outputs."""

    name: str
    outputs: dict[str, str]

    def output(self, key: str) -> str:
        value = self.outputs.get(key)
        if not value:
            fail(f"stack {self.name} has no output {key}: is it an activation stack, and up to date?")
        return value

    def destination_types(self) -> list[str]:
        """Types with a queue and DLQ in this stack (from `<Prefix>DeadLetterQueueUrl` outputs)."""
        prefixes = (key.removesuffix(DLQ_OUTPUT) for key in self.outputs if key.endswith(DLQ_OUTPUT))
        return sorted(t for t in map(naming.type_of_prefix, prefixes) if t)

    def queue_url(self, destination_type: str) -> str:
        return self.output(naming.output_name(destination_type, "QueueUrl"))

    def dead_letter_queue_url(self, destination_type: str) -> str:
        return self.output(naming.output_name(destination_type, DLQ_OUTPUT))

    def secret_prefix(self, name: str) -> str | None:
        return self.outputs.get(naming.output_name(name, "SecretPrefix"))

    def known_type(self, destination_type: str) -> str:
        """The type, checked against the stack (a typo names the known ones)."""
        types = self.destination_types()
        if destination_type not in types:
            fail(f"no destination '{destination_type}' in stack {self.name}; known: {', '.join(types)}")
        return destination_type


def load_stack(name: str) -> Stack:
    with aws_errors():
        described = client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    return Stack(name, outputs)

"""The preview sandbox: a destination's real pipeline and connector, with nothing leaving the process.

Run as `python -m activation_cli.sandbox` by `activation preview` (a request as JSON on stdin, the
result as JSON on stdout), in a process of its own because it swaps global machinery: AWS is moto's
in-memory mock (its reset would wipe a local stack served from the caller's process) and every httpx
transport is replaced by a recorder. The vendor's answers come from the destination's fake
(`local/fakes/<type>.py`) called in-process, so the whole conversation plays out (token, lookups,
writes); a destination without a fake gets a generic success. Credentials are the fake's; the base
URL is the vendor's real one (the connection model's default, or `baseUrl` from the request).
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any
from unittest import mock
from urllib.parse import parse_qsl

PARAMETER = "/activation-preview/destinations"
STATE_TABLE = "activation-preview-state"
DLQ_URL = "https://sqs.us-east-1.amazonaws.com/000000000000/activation-preview-dlq"
SECRET_MASK = "<secret:redacted>"  # noqa: S105 - a placeholder
_QUIET_HEADERS = frozenset(
    {"host", "accept", "accept-encoding", "connection", "user-agent", "content-length"}
)
_CREDENTIAL_NAME = re.compile(r"client|secret|token|password|key", re.IGNORECASE)
_TOKEN_FIELDS = ("access_token", "refresh_token", "accessToken", "refreshToken", "id_token", "token")


@dataclass
class Call:
    method: str
    url: str
    headers: dict[str, str]
    body: Any
    status: int


class Recorder:
    """Stands in for every httpx transport: records each request, answers it from the vendor's fake."""

    def __init__(self, destination_type: str) -> None:
        self.calls: list[Call] = []
        self.tokens: set[str] = set()
        self._lock = threading.Lock()
        self.plug = _plug(destination_type)

    def handle(self, request: Any) -> Any:
        import httpx

        content = request.read()
        status, body, headers = self._answer(request, content)
        if status == 0:  # the fake's "connection reset"
            raise httpx.ConnectError("connection reset (preview fake)", request=request)
        with self._lock:
            self.calls.append(Call(request.method, str(request.url), dict(request.headers), content, status))
            if isinstance(body, dict):
                self.tokens.update(str(body[k]) for k in _TOKEN_FIELDS if isinstance(body.get(k), str))
        payload = b"" if body is None else json.dumps(body).encode()
        return httpx.Response(
            status, headers={"Content-Type": "application/json", **headers}, content=payload, request=request
        )

    def _answer(self, request: Any, content: bytes) -> tuple[int, Any, dict[str, str]]:
        if self.plug is None:
            return _generic_answer(request, content)
        from local.fakes.base import Request

        answer = self.plug.fake.dispatch(
            Request(
                method=request.method,
                path=request.url.path,
                query={key: request.url.params.get_list(key) for key in request.url.params},
                headers={k.lower(): v for k, v in request.headers.items()},
                body=content,
            )
        )
        return answer.status, answer.body, dict(answer.headers)


def _generic_answer(request: Any, content: bytes) -> tuple[int, Any, dict[str, str]]:
    """No fake for this vendor: a token grant gets a token, anything else an empty success."""
    form = dict(parse_qsl(content.decode(errors="replace"))) if content else {}
    if "grant_type" in form or "grant_type" in request.url.params:
        return 200, {"access_token": "preview-access-token", "token_type": "Bearer", "expires_in": 3600}, {}
    return 200, {}, {}


def _plug(destination_type: str) -> Any:
    try:
        module = importlib.import_module(f"local.fakes.{destination_type}")
    except ModuleNotFoundError:
        return None
    factory = getattr(module, "Plug", None)
    return factory() if factory is not None else None


def sandbox_connection(recorder: Recorder, base_url: str | None) -> dict[str, Any]:
    """The fake's credentials, pointed at the vendor's real host (or `base_url`)."""
    plug = recorder.plug
    if plug is None:
        connection: dict[str, Any] = {"clientId": "preview-client", "clientSecret": "preview-secret"}
    else:
        from local.fakes.base import FakeServer

        # connection_secret() names the fake's URL (which we drop): no need to start a server for it.
        with mock.patch.object(FakeServer, "base_url", new_callable=mock.PropertyMock) as url:
            url.return_value = "http://fake.invalid"
            connection = dict(plug.connection_secret())
        connection.pop("baseUrl", None)
    if base_url:
        connection["baseUrl"] = base_url
    return connection


def secret_fields(destination_type: str, connection: dict[str, Any]) -> set[str]:
    """Fields to mask: those the connection model hides, and anything named like a credential."""
    from activation_cli import discovery

    kind = discovery.connection_kinds().get(destination_type)
    if kind is None:
        hidden = set(connection) - {"baseUrl"}
    else:
        hidden = {alias for alias, f in discovery.model_fields(kind.model).items() if f.secret}
    return {k for k in connection if k in hidden or _CREDENTIAL_NAME.search(k)}


def _records(events: Iterable[Any]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for index, event in enumerate(events, start=1):
        if isinstance(event, dict) and "body" in event and "messageId" in event:
            records.append(event)  # already an SQS record (events/sqs/<type>-batch.json)
            continue
        records.append(
            {
                "messageId": f"preview-{index}",
                "receiptHandle": f"preview-{index}",
                "body": json.dumps(event),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:activation-preview-queue",
            }
        )
    return records


def _install_aws(secret: str, connection: dict[str, Any]) -> None:
    from activation_core import aws

    # The layer's own cached clients: the pipeline reuses them (creating a client costs ~0.2 s).
    aws.client("secretsmanager").create_secret(Name=secret, SecretString=json.dumps(connection))
    dynamodb = aws.client("dynamodb")
    dynamodb.create_table(
        TableName=STATE_TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    )


class Masker:
    """Secrets (the connection's values and every token seen) always; emails unless show_pii."""

    def __init__(self, secrets: Iterable[str], show_pii: bool) -> None:
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
        self._show_pii = show_pii

    def text(self, value: str) -> str:
        from activation_core.observability import redact

        for secret in self._secrets:
            value = value.replace(secret, SECRET_MASK)
        # redact() masks emails and every secret the token provider registered while reading.
        return value if self._show_pii else redact(value)

    def data(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.data(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.data(v) for v in value]
        return value

    def headers(self, headers: dict[str, str]) -> dict[str, str]:
        shown: dict[str, str] = {}
        for name, value in headers.items():
            if name.lower() in _QUIET_HEADERS:
                continue
            if name.lower() == "authorization":
                scheme = value.split(" ", 1)[0] if " " in value else ""
                shown[name] = f"{scheme} {SECRET_MASK}".strip()
            else:
                shown[name] = self.text(value)
        return shown


def _body(call: Call) -> Any:
    raw: bytes = call.body
    if not raw:
        return None
    content_type = next((v for k, v in call.headers.items() if k.lower() == "content-type"), "")
    text = raw.decode(errors="replace")
    if "json" in content_type:
        try:
            return json.loads(text)
        except ValueError:
            return text
    if "x-www-form-urlencoded" in content_type:
        return dict(parse_qsl(text, keep_blank_values=True))
    return text


@contextmanager
def _isolated() -> Iterator[None]:
    """Process-wide caches the pipeline fills are emptied before and after, so the sandbox neither
    inherits clients bound to another endpoint nor leaves mock-bound ones behind (in-process use)."""
    from aws_lambda_powertools.utilities import parameters

    from activation_core import aws, oauth
    from activation_core.observability import metrics

    def reset() -> None:
        aws.reset_clients()
        oauth.clear_memory_cache()
        parameters.clear_caches()  # type: ignore[no-untyped-call]
        metrics.clear_metrics()

    reset()
    logging.disable(logging.CRITICAL)  # the pipeline's log lines are not the preview's output
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)
        reset()


def run(request: dict[str, Any]) -> dict[str, Any]:
    """Process the events through one instance, recording (and answering) every vendor request."""
    import httpx
    from aws_lambda_powertools.utilities import parameters
    from moto import mock_aws

    from activation_cli import discovery
    from activation_core.config_store import parse_destinations
    from activation_core.pipeline import Guards, Pipeline
    from activation_core.settings import FunctionSettings

    document: dict[str, Any] = request["config"]
    instance_id: str = request["instance"]
    full = parse_destinations(document)
    instance = next(i for i in full.destinations if i.id == instance_id).model_copy(update={"enabled": True})
    only = full.model_copy(update={"destinations": (instance,)})
    recorder = Recorder(instance.type)
    connection = sandbox_connection(recorder, request.get("baseUrl"))
    settings = FunctionSettings(
        destination_type=instance.type,
        config_parameter_name=PARAMETER,
        state_table_name=STATE_TABLE,
        dead_letter_queue_url=DLQ_URL,
        config_cache_seconds=0,
        allow_loopback_urls=False,
    )

    def handle_request(_transport: Any, http_request: Any) -> Any:
        return recorder.handle(http_request)

    records = _records(request["events"])

    def get_parameter(name: str, *args: Any, **kwargs: Any) -> str:
        # The config parameter, read through Powertools Parameters (a destination may read its peers);
        # served here rather than by moto's SSM, whose import alone costs two seconds.
        if name != PARAMETER:
            raise LookupError(f"the preview has no parameter {name}")
        return json.dumps(document)

    with (
        _isolated(),
        mock_aws(),
        mock.patch.object(httpx.HTTPTransport, "handle_request", handle_request),
        mock.patch.object(parameters, "get_parameter", get_parameter),
    ):
        _install_aws(instance.secret, connection)
        pipeline = Pipeline(discovery.destination(instance.type), settings, lambda: only, Guards())
        results = pipeline.process(records)

    secrets = {
        str(connection[k]) for k in secret_fields(instance.type, connection) if isinstance(connection[k], str)
    }
    masker = Masker(secrets | recorder.tokens, bool(request.get("showPii")))
    calls = [
        {
            **asdict(call),
            "url": masker.text(call.url),
            "headers": masker.headers(call.headers),
            "body": masker.data(_body(call)),
        }
        for call in recorder.calls
    ]
    outcomes = [
        {
            "messageId": message_id,
            "outcome": result.outcome.kind.value,
            "reason": result.outcome.reason,
            "detail": masker.text(result.outcome.detail),
        }
        for message_id, result in results.items()
    ]
    return {
        "type": instance.type,
        "instance": instance.id,
        "fake": recorder.plug is not None,
        "requests": calls,
        "outcomes": outcomes,
    }


def main() -> int:
    request = json.load(sys.stdin)
    try:
        result = run(request)
    except Exception as exc:  # reported to the CLI, which prints it (emails and secrets masked)
        from activation_core.observability import redact

        result = {"error": f"{type(exc).__name__}: {redact(str(exc))[:300]}"}
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

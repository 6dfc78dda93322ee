"""boto3 clients, one per service per container, created lazily.

boto3 honours `AWS_ENDPOINT_URL` itself, so the same code reaches AWS, moto server or LocalStack.
Timeouts are short and bounded: a Lambda must never hang on an SDK call.
"""

from __future__ import annotations

from functools import cache
from typing import Any

_SDK_CONFIG_KWARGS: dict[str, Any] = {
    "connect_timeout": 3,
    "read_timeout": 10,
    "retries": {"mode": "standard", "total_max_attempts": 3},
}


def client(service: str, *, validated: bool = True) -> Any:
    """The container's shared client for `service` (boto3 is imported on first use: cold start).

    `validated=False`: a second client of the service that skips botocore's client-side parameter
    validation, for a caller whose requests are built in one place, always the same shapes, and proven
    valid by tests that inject a validated client (the order guard: validation was a third of its
    CPU, docs/decisions.md). A request it gets wrong is refused by the service instead (a
    ValidationException, a ClientError) rather than by botocore. It shares the service's session, so
    the service model is loaded once."""
    return _client(service, validated)  # one cache key however the flag is passed


@cache
def _client(service: str, validated: bool) -> Any:
    from botocore.config import Config

    from activation_core.observability import start_tracing

    start_tracing()  # X-Ray patches botocore before the first AWS call (built lazily: cold import)
    config = Config(**_SDK_CONFIG_KWARGS, parameter_validation=validated)
    return _session(service).client(service, config=config)


@cache
def _session(service: str) -> Any:
    """One boto3 session per service, shared by that service's clients (its loaded models with it)."""
    import boto3

    return boto3.session.Session()


def reset_clients() -> None:
    """Forget cached clients (tests that change the endpoint or credentials)."""
    _client.cache_clear()
    _session.cache_clear()


class UsesDynamoDB:
    """A store on a DynamoDB table: the client injected at construction (tests) or, resolved on first
    use so constructing a store needs no AWS client, the container's shared one (`_validated = False`:
    the one without client-side parameter validation, see `client`)."""

    _dynamodb: Any = None
    _validated = True

    @property
    def _client(self) -> Any:
        if self._dynamodb is None:
            self._dynamodb = client("dynamodb", validated=self._validated)
        return self._dynamodb

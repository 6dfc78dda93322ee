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


@cache
def client(service: str) -> Any:
    """The container's shared client for `service` (boto3 is imported on first use: cold start)."""
    import boto3
    from botocore.config import Config

    from activation_core.observability import start_tracing

    start_tracing()  # X-Ray patches botocore before the first AWS call (built lazily: cold import)
    return boto3.session.Session().client(service, config=Config(**_SDK_CONFIG_KWARGS))


def reset_clients() -> None:
    """Forget cached clients (tests that change the endpoint or credentials)."""
    client.cache_clear()


class UsesDynamoDB:
    """A store on a DynamoDB table: the client injected at construction (tests) or, resolved on first
    use so constructing a store needs no AWS client, the container's shared one."""

    _dynamodb: Any = None

    @property
    def _client(self) -> Any:
        if self._dynamodb is None:
            self._dynamodb = client("dynamodb")
        return self._dynamodb

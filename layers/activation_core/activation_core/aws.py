"""boto3 clients, one per service per container, created lazily.

boto3 honours `AWS_ENDPOINT_URL` itself, so the same code reaches AWS, moto server or LocalStack.
Timeouts are short and bounded: a Lambda must never hang on an SDK call.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache, partial
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")
# Requests of one batch in flight at once (e.g. the order guard's reads and commits), as many as each
# client's connection pool holds: a batch of 1,000 entities is 10 reads and 10 transactions, each set one
# round trip (docs/decisions.md, "as built").
PARALLEL_REQUESTS = 10
# BatchGetItem reads up to 100 keys a request (DynamoDB's limit); keys it leaves unprocessed (throttled)
# are asked for again after a back-off, a few rounds at most.
BATCH_GET_KEYS = 100
# BatchWriteItem takes up to 25 puts or deletes a request (DynamoDB's limit); the same rounds.
BATCH_WRITE_ITEMS = 25
_UNPROCESSED_ROUNDS = 5


class KeysLeftUnprocessed(Exception):
    """BatchGetItem or BatchWriteItem left keys unprocessed after every round (the table is throttled)."""


_SDK_CONFIG_KWARGS: dict[str, Any] = {
    "connect_timeout": 3,
    "read_timeout": 10,
    "retries": {"mode": "standard", "total_max_attempts": 3},
    "max_pool_connections": PARALLEL_REQUESTS,
}


def client(service: str, *, validated: bool = True) -> Any:
    """The container's shared client for `service` (boto3 is imported on first use: cold start).

    `validated=False`: a second client of the service for a caller whose requests are built in one
    place, always the same shapes, already in the service's wire form, and proven by tests that
    inject a validated client (the order guard: docs/decisions.md). It skips botocore's client-side
    parameter validation (a request it gets wrong is refused by the service instead: a
    ValidationException, a ClientError, rather than botocore's ParamValidationError) and sends the
    large requests of `_AS_BUILT` as built (see `_send_as_built`). It shares the service's session,
    so the service model is loaded once."""
    return _client(service, validated)  # one cache key however the flag is passed


@cache
def _client(service: str, validated: bool) -> Any:
    from botocore.config import Config

    from activation_core.observability import start_tracing

    start_tracing()  # X-Ray patches botocore before the first AWS call (built lazily: cold import)
    config = Config(**_SDK_CONFIG_KWARGS, parameter_validation=validated)
    made = _session(service).client(service, config=config)
    if not validated:
        _send_as_built(made)
    return made


# Requests whose parameters are already the JSON body botocore would send (DynamoDB's wire form:
# attribute values of strings and lists, no binary, no timestamps): per operation, a one-element
# stand-in for botocore to resolve the endpoint and build the request from. botocore's JSON serializer
# walks the model shape of every attribute value, and DynamoDB's endpoint ruleset evaluates a JMESPath
# over every transaction item (its `ResourceArnList` operation context parameter, computed whatever
# the account-id endpoint mode): together 40% of the order guard's CPU on a batch of 1,000, for a body
# equal byte for byte to `json.dumps` of the parameters (docs/decisions.md, "as built").
_PREBUILT = "activation_core.aws.as_built"


def _first_transaction_item(params: Mapping[str, Any]) -> dict[str, Any]:
    return {**params, "TransactItems": list(params["TransactItems"][:1])}


def _first_key_per_table(params: Mapping[str, Any]) -> dict[str, Any]:
    tables = params["RequestItems"]
    return {
        **params,
        "RequestItems": {name: {**read, "Keys": list(read["Keys"][:1])} for name, read in tables.items()},
    }


_AS_BUILT: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "TransactWriteItems": _first_transaction_item,
    "BatchGetItem": _first_key_per_table,
}


def _send_as_built(made: Any) -> None:
    """The `_AS_BUILT` requests of a JSON-protocol client go out with `json.dumps` of the caller's own
    parameters as their body, through botocore's documented events: `provide-client-params` keeps the
    parameters in the request's context and gives botocore the stand-in (same table, same first item:
    the same endpoint, headers and operation), `before-call` puts the body back before botocore signs
    and sends it (its retries resend the same request). Observers that want the call as made hook
    `provide-client-params` (which sees the caller's parameters); the unit tests prove each shape the
    caller sends gives the very body botocore's serializer would."""
    model = made.meta.service_model
    if model.protocol != "json":  # another wire form: nothing is taken as built
        return
    events, service = made.meta.events, model.service_id.hyphenize()
    for operation in _AS_BUILT:
        events.register(f"provide-client-params.{service}.{operation}", _stand_in)
        events.register(f"before-call.{service}.{operation}", _built_body)
    for operation in _AS_SENT:
        events.register(f"before-parse.{service}.{operation}", _body_as_sent)


def _stand_in(params: Mapping[str, Any], model: Any, context: dict[str, Any], **_: Any) -> dict[str, Any]:
    context[_PREBUILT] = params
    return _AS_BUILT[model.name](params)


def _built_body(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    built = context.pop(_PREBUILT)  # a KeyError, not a request with the stand-in's one item, if unpaired
    params["body"] = json.dumps(built).encode()


# Responses taken as DynamoDB sent them: botocore's JSON parser walks the model shape of every
# attribute value of every item read (about half of a read's CPU for 100 items: 72,000 calls for 3,000
# entities), for a result equal to `json.loads` of the body wherever no value is binary (botocore
# decodes B and BS from base64; the order guard's items hold S, N and SS only). A body with a binary
# value, and every error, go through botocore's parser as before.
_AS_SENT = ("BatchGetItem",)
_BINARY = (b'"B":', b'"BS":')


def _body_as_sent(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
    body = response_dict.get("body")
    if response_dict.get("status_code", 500) >= 300 or not isinstance(body, bytes):
        return
    if any(marker in body for marker in _BINARY):
        return
    customized_response_dict.update(json.loads(body))  # botocore adds it over what it parses:
    response_dict["body"] = b"{}"  # nothing left to parse but the response metadata


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


def in_parallel(work: Callable[[T], R], chunks: Sequence[T]) -> list[R]:
    """`work` on each chunk, results in order: inline for one, on up to PARALLEL_REQUESTS threads for
    several (boto3 clients are thread-safe)."""
    if len(chunks) <= 1:
        return [work(chunk) for chunk in chunks]
    with ThreadPoolExecutor(max_workers=min(PARALLEL_REQUESTS, len(chunks))) as pool:
        return list(pool.map(work, chunks))


def batch_get(
    dynamodb: Any, table: str, keys: Sequence[dict[str, Any]], **options: Any
) -> list[dict[str, Any]]:
    """The items of `keys` that exist (strongly consistent), in BatchGetItem requests of up to 100 keys
    sent in parallel; `options` go into each table's request (e.g. `ProjectionExpression`). Raises
    botocore's ClientError, or KeysLeftUnprocessed."""
    chunks = [keys[i : i + BATCH_GET_KEYS] for i in range(0, len(keys), BATCH_GET_KEYS)]
    read = partial(_batch_get_chunk, dynamodb, table, options)
    return [item for part in in_parallel(read, chunks) for item in part]


def _batch_get_chunk(
    dynamodb: Any, table: str, options: dict[str, Any], keys: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    request: dict[str, Any] = {table: {"Keys": list(keys), "ConsistentRead": True, **options}}
    items: list[dict[str, Any]] = []
    for attempt in range(_UNPROCESSED_ROUNDS):
        response = dynamodb.batch_get_item(RequestItems=request)
        items += response.get("Responses", {}).get(table, [])
        request = response.get("UnprocessedKeys") or {}
        if not request:
            return items
        time.sleep(0.05 * 2**attempt)  # DynamoDB's advice for unprocessed keys: back off, then retry
    raise KeysLeftUnprocessed(table)


def batch_write(
    dynamodb: Any,
    table: str,
    requests: Sequence[dict[str, Any]],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Unconditional writes (`{"PutRequest": ...}` / `{"DeleteRequest": ...}`) in BatchWriteItem requests
    of up to 25 sent in parallel, each retrying what DynamoDB left unprocessed after a back-off. Raises
    botocore's ClientError, or KeysLeftUnprocessed."""
    chunks = [requests[i : i + BATCH_WRITE_ITEMS] for i in range(0, len(requests), BATCH_WRITE_ITEMS)]
    in_parallel(partial(_batch_write_chunk, dynamodb, table, sleep), chunks)


def _batch_write_chunk(
    dynamodb: Any, table: str, sleep: Callable[[float], None], requests: Sequence[dict[str, Any]]
) -> None:
    pending: dict[str, Any] = {table: list(requests)}
    for attempt in range(_UNPROCESSED_ROUNDS):
        pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        if not pending:
            return
        sleep(0.05 * 2**attempt)
    raise KeysLeftUnprocessed(table)

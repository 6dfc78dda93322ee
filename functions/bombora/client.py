"""The only file that knows Bombora URLs, payloads and status codes (apis.md section 4).

- `POST {base}/oauth/token` with a JSON body `{client_id, client_secret}` (no grant_type) ->
  `{access_token, token_type, expires_in}`;
- Account List API under `{base}/account-list/v1`: `GET|POST /account-list` (list, create),
  `POST /account-list/{id}/accounts` (add/update, upsert keyed by domain when no id is given),
  `POST /account-list/{id}/delete-accounts` (`{"ids": [...]}`);
- errors are `{"message": ...}` with no machine-readable code: we branch on the HTTP status only.
  401 refresh once; 409 (update pending) and 429 and 5xx retry; 404 = the list is gone; 400/403/422
  are permanent.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from activation_core import http
from activation_core.credentials import Credentials
from activation_core.errors import ActivationError, AuthError, PermanentError, RetryableError
from activation_core.oauth import TokenGrant
from bombora.models import HOST_PATTERN, MANUAL_LIST, BomboraConnection, BomboraSettings

PENDING_REASON = "bombora_update_pending"
# Creating a list is not idempotent: one attempt, then the caller looks for the list before trying again.
_NO_RETRY = http.RetryPolicy(attempts=1)
_DEFAULT_RETRY = http.RetryPolicy()
_LIST_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_DEFAULT_TOKEN_LIFETIME = 3600.0


class ListNotFoundError(RetryableError):
    """The recorded list no longer exists in Bombora (deleted there): forget it, then retry."""


@dataclass(frozen=True, slots=True)
class AccountList:
    id: str
    name: str
    type: str
    created: str
    description: str = ""

    @property
    def manual(self) -> bool:
        return self.type == MANUAL_LIST


def _safe_list_id(list_id: str) -> str:
    # A list id comes from the vendor or our own table, and becomes a URL path segment: check its shape.
    if not _LIST_ID.match(list_id):
        raise PermanentError("bombora_invalid_list_id", "a Bombora list id must be 1-64 letters, digits or -")
    return list_id


class BomboraClient:
    def __init__(
        self,
        connection: BomboraConnection,
        settings: BomboraSettings,
        tokens: Credentials,
        *,
        allow_loopback: bool,
        client: httpx.Client | None = None,
    ) -> None:
        base = http.validate_base_url(
            connection.base_url, host_pattern=HOST_PATTERN, allow_loopback=allow_loopback
        )
        self._api = base + settings.account_list_path
        self._settings = settings
        self._tokens = tokens
        self._client = client or http.shared_client()
        self._counter = threading.Lock()
        self.api_calls = 0  # every HTTP attempt to the Account List API (metrics, benchmarks)

    def _count(self) -> None:
        with self._counter:
            self.api_calls += 1

    def classify(self, response: httpx.Response) -> ActivationError | None:
        if response.status_code == 409:
            # "Pending update or in use": an asynchronous job on the list has not finished yet.
            return RetryableError(
                PENDING_REASON,
                http.safe_excerpt(_message(response)) or "list update pending",
                retry_after=self._settings.pending_retry_seconds,
            )
        return http.classify_response(response)

    def _call(
        self, method: str, path: str, *, policy: http.RetryPolicy = _DEFAULT_RETRY, **kwargs: Any
    ) -> httpx.Response:
        url = self._api + path

        def call(token: str) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            return http.send(
                method, url, client=self._client, classify=self.classify, on_attempt=self._count,
                policy=policy, headers=headers, **kwargs,
            )  # fmt: skip

        try:
            return self._tokens.call_with_token(call)
        except RetryableError as exc:
            if exc.reason == PENDING_REASON and exc.retry_after is not None:
                # Back to SQS with the queue's visibility timeout: a per-record delay would cost one
                # SQS call per record, and a pending job does not end on a schedule we know.
                raise RetryableError(exc.reason, exc.detail) from exc
            raise

    def list_lists(self) -> list[AccountList]:
        """Every account list of the account (the spec shows a bare array and an `accountLists` wrapper)."""
        body = _json(self._call("GET", "/account-list"))
        items = body.get("accountLists") if isinstance(body, dict) else body
        if not isinstance(items, list):
            raise RetryableError("bombora_unexpected_response", "GET /account-list returned no list")
        lists = []
        for item in items:
            if isinstance(item, Mapping) and isinstance(item.get("id"), str):
                lists.append(
                    AccountList(
                        id=str(item["id"]),
                        name=str(item.get("name") or _metadata_name(item)),
                        type=str(item.get("type") or ""),
                        created=str(item.get("createdDate") or ""),
                        description=str(item.get("description") or ""),
                    )
                )
        return lists

    def create_list(self, name: str, description: str) -> str:
        """Create a Manual list; its id. Sent once: a failure may still have created it (see service)."""
        body = {
            "type": MANUAL_LIST,
            "metadata": {"name": name, "description": description},
            "specification": {},
        }
        answer = _json(self._call("POST", "/account-list", policy=_NO_RETRY, json=body))
        list_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(list_id, str) or not list_id:
            raise RetryableError("bombora_unexpected_response", "the create call returned no list id")
        return _safe_list_id(list_id)

    def add_accounts(self, list_id: str, domains: Sequence[str]) -> bool:
        """Upsert accounts keyed by domain (no `id`: primaryId is never sent). True when only accepted (202)."""
        return self._write(list_id, "accounts", [{"domain": domain} for domain in domains])

    def delete_accounts(self, list_id: str, domains: Sequence[str]) -> bool:
        """Remove accounts by identifier (the domain, as added). True when only accepted (202)."""
        return self._write(list_id, "delete-accounts", {"ids": list(domains)})

    def _write(self, list_id: str, action: str, body: Any) -> bool:
        path = f"/account-list/{_safe_list_id(list_id)}/{action}"
        try:
            response = self._call("POST", path, json=body)
        except PermanentError as exc:
            if exc.reason == "http_404":
                raise ListNotFoundError("bombora_list_not_found", exc.detail) from exc
            raise
        return response.status_code == 202


def _metadata_name(item: Mapping[str, Any]) -> str:
    # A list definition (GET /account-list/{id}) carries its name under metadata.
    metadata = item.get("metadata")
    return str(metadata.get("name") or "") if isinstance(metadata, Mapping) else ""


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("message") or "") if isinstance(body, dict) else ""


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise RetryableError("bombora_unexpected_response", "the response is not JSON") from None


def _classify_token(response: httpx.Response) -> ActivationError | None:
    error = http.classify_response(response)
    if response.status_code in (400, 401, 403):
        # Refused credentials (or the Authentication API product not enabled for the app): no retry
        # here; the record waits in the queue until an operator fixes the secret.
        return AuthError("bombora_token_refused", error.detail if error else "")
    return error


def fetch_token(
    connection: Mapping[str, Any], settings: BomboraSettings, *, allow_loopback: bool
) -> TokenGrant:
    """Client-credentials token (BOM-02): JSON body, no grant_type; lifetime from `expires_in`."""
    parsed = BomboraConnection.model_validate(connection)
    base = http.validate_base_url(parsed.base_url, host_pattern=HOST_PATTERN, allow_loopback=allow_loopback)
    response = http.send(
        "POST",
        base + settings.token_path,
        classify=_classify_token,
        json={"client_id": parsed.client_id, "client_secret": parsed.client_secret},
        headers={"Accept": "application/json"},
    )
    body = _json(response)
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise RetryableError("token_response_invalid", "the token endpoint returned no access_token")
    expires_in = body.get("expires_in")
    lifetime = (
        float(expires_in)
        if isinstance(expires_in, int | float) and expires_in > 0
        else _DEFAULT_TOKEN_LIFETIME
    )
    return TokenGrant(access_token=token, expires_in=lifetime)

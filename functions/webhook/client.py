"""The only file that knows the webhook's wire format.

`POST <url>` with `{"records": [...]}` as JSON and the header `<signatureHeader>: sha256=<hex>`, the
HMAC-SHA256 of the exact body bytes with the signing secret, plus `X-Webhook-Delivery` (a digest of the
records' ids: the same records sent again carry the same value, so a receiver can drop a repeat).
Answers: 2xx delivered; 429 and 5xx retried (Retry-After honoured, then SQS); 401 and 403 mean the
signature was refused (the secret is read again once, then the records wait for an operator); any
other 4xx refuses the batch, which the connector splits to find the record it is about.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from activation_core import http
from activation_core.credentials import Credentials
from activation_core.errors import ActivationError, AuthError
from webhook.models import SIGNATURE_PREFIX, WebhookConnection, WebhookSettings

DELIVERY_HEADER = "X-Webhook-Delivery"


def sign(secret: str, body: bytes) -> str:
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def classify(response: httpx.Response) -> ActivationError | None:
    error = http.classify_response(response)
    if response.status_code == 403:  # a receiver that checks signatures may answer either
        return AuthError("http_403", error.detail if error else "")
    return error


class WebhookClient:
    def __init__(
        self,
        connection: WebhookConnection,
        settings: WebhookSettings,
        credentials: Credentials,
        *,
        allow_loopback: bool,
        client: httpx.Client | None = None,
    ) -> None:
        # Any https host the operator names (never an IP literal, never loopback outside the local stack).
        host = re.escape(urlsplit(connection.url).hostname or "")
        self._url = http.validate_base_url(connection.url, host_pattern=host, allow_loopback=allow_loopback)
        self._settings = settings
        self._credentials = credentials
        self._client = client or http.shared_client()

    def post(self, records: Sequence[Mapping[str, Any]]) -> None:
        body = json.dumps({"records": list(records)}, separators=(",", ":"), default=str).encode()
        ids = "\n".join(str(r.get("id", "")) for r in records).encode()
        delivery = hashlib.sha256(ids).hexdigest()[:32]

        def call(secret: str) -> httpx.Response:
            headers = {
                "Content-Type": "application/json",
                self._settings.signature_header: sign(secret, body),
                DELIVERY_HEADER: delivery,
            }
            return http.send(
                "POST", self._url, client=self._client, classify=classify, headers=headers, content=body
            )

        self._credentials.call_with_token(call)

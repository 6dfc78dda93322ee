"""A fake webhook receiver, built to the contract in functions/webhook/client.py's docstring (the
receiver's side of it, written from that contract and not from the client's code).

- `POST /hooks/activation`: the body is `{"records": [...]}`; the signature header must be
  `sha256=<hex HMAC-SHA256 of the raw body with the shared secret>`, else 401 (nothing stored).
- A batch holding a record the receiver refuses (`refuse(record)`, by default a record whose fields
  hold the text `refuse-me`) is refused whole with 422, as bulk endpoints do.
- Stored by record id (a record sent twice is stored once); an `erasure` record deletes the stored
  records of the same identities. Throttles (429 + Retry-After) and outages (503) come from the base
  class's fault injection.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable
from typing import Any

from local.fakes.base import FakeServer, Request, Response

PATH = "/hooks/activation"
SIGNATURE_HEADER = "X-Webhook-Signature"


def _refused_by_default(record: dict[str, Any]) -> bool:
    return "refuse-me" in json.dumps(record.get("fields", {}))


class FakeWebhook(FakeServer):
    def __init__(
        self,
        *,
        signing_secret: str = "whsec-local-0123456789abcdef",  # noqa: S107 - a fake's test credential
        signature_header: str = SIGNATURE_HEADER,
        refuse: Callable[[dict[str, Any]], bool] = _refused_by_default,
    ) -> None:
        super().__init__()
        self.signing_secret = signing_secret
        self.signature_header = signature_header
        self.refuse = refuse
        self.records: dict[str, dict[str, Any]] = {}  # by record id
        self.batches: list[list[dict[str, Any]]] = []  # every accepted batch, in order
        self.erased: list[dict[str, Any]] = []
        self._state = threading.Lock()
        self.route("POST", PATH, self._receive)

    @property
    def url(self) -> str:
        return self.base_url + PATH

    def _receive(self, request: Request, _match: object) -> Response:
        expected = (
            "sha256=" + hmac.new(self.signing_secret.encode(), request.body, hashlib.sha256).hexdigest()
        )
        if not hmac.compare_digest(request.header(self.signature_header), expected):
            return Response(401, {"error": "invalid signature"})
        try:
            records = request.json()["records"]
        except (ValueError, KeyError, TypeError):
            return Response(400, {"error": 'body must be {"records": [...]}'})
        if any(self.refuse(r) for r in records):
            return Response(422, {"error": "a record was refused"})
        with self._state:
            self.batches.append(records)
            for record in records:
                if record.get("type") == "erasure":
                    self.erased.append(record)
                    gone = [k for k, r in self.records.items() if r["identities"] == record["identities"]]
                    for key in gone:
                        del self.records[key]
                else:
                    self.records[record["id"]] = record
        return Response(200, {"accepted": len(records)})

    def stored_for(self, identity: str, value: str) -> list[dict[str, Any]]:
        with self._state:
            return [r for r in self.records.values() if r["identities"].get(identity) == value]


class Plug:
    """Plugs the fake into the local stack (see local/harness.py)."""

    def __init__(self) -> None:
        self.fake: FakeWebhook = FakeWebhook()

    def connection_secret(self) -> dict[str, Any]:
        return {"url": self.fake.url, "signingSecret": self.fake.signing_secret}

"""A connection's credentials, read from its Secrets Manager secret: two modes, one interface.

- `oauth.TokenProvider`: access tokens minted from the secret's credentials and cached in the secret.
- `StaticCredentials`: a long-lived credential the secret holds as it is (an API key, a private-app
  token): read, never minted, never written back.

A client takes a `Credentials` and calls its vendor with `credentials.call_with_token(call)`: `call`
gets the token (or key) to send, and raises `AuthError` when the vendor refuses it. What each mode then
does (mint once more, or read the secret once more) is its own business. Secrets are never echoed:
every value read from a secret is registered for masking in log lines.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from activation_core import aws
from activation_core.errors import AuthError, PermanentError, RetryableError
from activation_core.observability import IDENTIFIER_MIN_LENGTH, register_secret

T = TypeVar("T")

# The access token `oauth.TokenProvider` caches in the secret (accessToken, expiresAt, mintedAt).
CACHED_TOKEN_FIELD = "cachedToken"  # noqa: S105 - a field name, not a secret
# A field whose name says it holds a credential is masked in logs whatever its length.
_CREDENTIAL_FIELD = re.compile(r"secret|token|password|passphrase|key", re.IGNORECASE)


class Credentials(Protocol):
    """What a vendor client needs of a connection, whichever way its credential is obtained."""

    secret_id: str

    def connection(self) -> dict[str, Any]:
        """The secret's fields (base URL, ids, credentials) without any cached token: a copy."""
        ...

    def get(self) -> str:
        """The token (or key) to send now."""
        ...

    def call_with_token(self, fn: Callable[[str], T]) -> T:
        """`fn(token)`; when it raises AuthError, obtain the credential again once and call again."""
        ...


def secret_error(exc: BotoCoreError | ClientError) -> RetryableError:
    """A Secrets Manager failure as a retry: even "not found" or "access denied", which an operator can
    fix while the records wait."""
    code = (
        str(exc.response.get("Error", {}).get("Code", "ClientError"))
        if isinstance(exc, ClientError)
        else type(exc).__name__
    )
    return RetryableError("secret_unavailable", code)


def mask_in_logs(document: Mapping[str, Any]) -> None:
    """Every credential and token read from a connection secret is masked in all later log lines: a
    field named like a credential whatever its length or type, any other (org or profile ids) once it
    is long enough not to be ordinary text."""
    credentials: list[object] = []
    others: list[object] = []
    for key, value in document.items():
        if key != "baseUrl":
            (credentials if _CREDENTIAL_FIELD.search(key) else others).append(value)
    cached = document.get(CACHED_TOKEN_FIELD)
    if isinstance(cached, Mapping):
        credentials.append(cached.get("accessToken"))
    register_secret(*credentials)
    register_secret(*others, min_length=IDENTIFIER_MIN_LENGTH)


def read_secret(client: Any, secret_id: str) -> dict[str, Any]:
    """The secret's JSON object, its values registered for masking; errors never echo its content."""
    try:
        response = client.get_secret_value(SecretId=secret_id)
    except (BotoCoreError, ClientError) as exc:
        raise secret_error(exc) from exc
    raw = response.get("SecretString")
    try:
        document = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise PermanentError("invalid_secret", f"secret {secret_id} is not a JSON object")
    mask_in_logs(document)
    return document


class StaticCredentials:
    """A credential that is not minted: the secret's `field` (e.g. `apiKey`, `accessToken`), sent as is.

    Read from the secret at most every `max_age` seconds (a key an operator rotates is picked up within
    that time) and never written back. When the vendor refuses it, the secret is read again at once:
    a key replaced meanwhile is tried once; the same key refused twice, or refused again, is a retry
    (`credentials_refused`) that names no value, so the records wait for an operator to fix the secret.
    """

    def __init__(
        self,
        secret_id: str,
        *,
        field: str = "apiKey",
        secrets: Any | None = None,
        clock: Callable[[], float] = time.time,
        max_age: float = 300.0,
    ) -> None:
        self.secret_id = secret_id
        self._field = field
        self._secrets = secrets
        self._clock = clock
        self._max_age = max_age
        self._lock = threading.Lock()
        self._read: tuple[dict[str, Any], float] | None = None  # the document, and when it was read

    def connection(self) -> dict[str, Any]:
        return copy.deepcopy(self._document())

    def get(self) -> str:
        """The credential: a non-empty string in the secret's `field`, else a retry naming the field."""
        return self._credential(self._document())

    def call_with_token(self, fn: Callable[[str], T]) -> T:
        credential = self.get()
        try:
            return fn(credential)
        except AuthError:
            pass
        # Refused: an operator may have replaced the key since it was read. Read the secret again, once.
        fresh = self._credential(self._document(force=True))
        if fresh == credential:
            raise RetryableError(
                "credentials_refused",
                f"the vendor refused the credential in secret field '{self._field}'; it is not minted "
                "here: replace it in the secret",
            )
        try:
            return fn(fresh)
        except AuthError as exc:
            raise RetryableError(
                "credentials_refused",
                f"the vendor refused the credential in secret field '{self._field}', read again",
            ) from exc

    def _credential(self, document: Mapping[str, Any]) -> str:
        value = document.get(self._field)
        if not isinstance(value, str) or not value:
            raise RetryableError(
                "credential_missing", f"secret {self.secret_id} has no non-empty string field '{self._field}'"
            )
        return value

    def _document(self, *, force: bool = False) -> dict[str, Any]:
        with self._lock:
            now = self._clock()
            if force or self._read is None or now - self._read[1] > self._max_age:
                if self._secrets is None:
                    self._secrets = aws.client("secretsmanager")
                self._read = (read_secret(self._secrets, self.secret_id), now)
            return self._read[0]

"""Access tokens shared by every invocation of a connection: memory -> Secrets Manager -> token endpoint.

One Secrets Manager secret per connection holds the credentials, the vendor base URL and the cached
token (`cachedToken`: accessToken, expiresAt, mintedAt). A refresh happens under a DynamoDB lease so N
concurrent invocations cause one token request, and a new (rotating) refresh token is persisted before
the access token it came with is used: losing it would lose the connection.

Every write to the secret happens under the lease, so concurrent writers cannot undo each other (Secrets
Manager has no conditional write). Tokens, secrets and credentials never appear in messages or logs.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from activation_core import aws, deadline
from activation_core.credentials import CACHED_TOKEN_FIELD, read_secret, secret_error
from activation_core.errors import AuthError, PermanentError, RetryableError, ThrottledError
from activation_core.locks import Lease, LeaseLock
from activation_core.observability import register_secret
from activation_core.vendor_counts import VENDOR_COUNTS

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class TokenGrant:
    """What a token endpoint returned; `refresh_token` is set when the vendor rotates it."""

    access_token: str
    expires_in: float
    refresh_token: str | None = None
    # Facts about the connection the token endpoint returned (e.g. the tenant's API base URL), kept in
    # the connection secret beside the credentials so every container uses them, not a stale copy.
    connection_updates: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        # A grant must never end up in a log line or traceback through repr().
        return f"TokenGrant(expires_in={self.expires_in!r}, rotates={self.refresh_token is not None})"


# The destination's call to its vendor's token endpoint, given the connection (credentials, base URL).
TokenFetcher = Callable[[Mapping[str, Any]], TokenGrant]


@dataclass(frozen=True)
class _Token:
    access_token: str
    expires_at: float
    minted_at: float | None

    def __repr__(self) -> str:
        return f"_Token(expires_at={self.expires_at!r}, minted_at={self.minted_at!r})"

    def usable(self, now: float, refresh_margin: float) -> bool:
        margin = refresh_margin
        if self.minted_at is not None and self.expires_at > self.minted_at:
            # A short-lived token (lifetime <= 2 * margin) would otherwise be stale the moment it is minted.
            margin = min(margin, (self.expires_at - self.minted_at) / 2)
        return bool(self.access_token) and self.expires_at - margin > now


@dataclass(frozen=True)
class _Entry:
    connection: dict[str, Any]
    token: _Token | None


# Module level so a warm container reuses them across invocations; keyed by secret id.
_memory: dict[str, _Entry] = {}
_memory_lock = threading.Lock()
# A minted grant with a rotated refresh token whose write to the secret failed: the only copy of the
# connection's refresh token. The next get() saves it before anything else (and mints with it).
_pending: dict[str, dict[str, Any]] = {}


def clear_memory_cache() -> None:
    """Forget every cached token and connection (tests: simulates a new container)."""
    with _memory_lock:
        _memory.clear()
        _pending.clear()


def _parse_token(raw: Any) -> _Token | None:
    if not isinstance(raw, Mapping):
        return None
    access_token = raw.get("accessToken")
    expires_at = raw.get("expiresAt")
    minted_at = raw.get("mintedAt")
    if not isinstance(access_token, str) or not isinstance(expires_at, int | float):
        return None
    return _Token(
        access_token=access_token,
        expires_at=float(expires_at),
        minted_at=float(minted_at) if isinstance(minted_at, int | float) else None,
    )


def _connection_of(document: Mapping[str, Any]) -> dict[str, Any]:
    return {key: copy.deepcopy(value) for key, value in document.items() if key != CACHED_TOKEN_FIELD}


class TokenProvider:
    """Access tokens for one connection (one secret), shared across concurrent invocations."""

    def __init__(
        self,
        secret_id: str,
        fetcher: TokenFetcher,
        *,
        lock: LeaseLock,
        secrets: Any | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        refresh_margin: float = 60.0,
        # A token request may use half of it (`deadline.bounded`), so it ends well within the lease; the
        # lease is renewed before the grant is saved.
        lock_lease: float = 60.0,
        wait_timeout: float = 15.0,
        min_mint_interval: float = 0.0,
        refresh_token_field: str = "refreshToken",  # noqa: S107 - a field name
        poll_interval: float = 0.25,
    ) -> None:
        self.secret_id = secret_id
        self._fetcher = fetcher
        self._lock = lock
        self._secrets = secrets
        self._clock = clock
        self._sleep = sleep
        self._refresh_margin = refresh_margin
        self._lock_lease = lock_lease
        self._wait_timeout = wait_timeout
        self._min_mint_interval = min_mint_interval
        self._refresh_token_field = refresh_token_field
        self._poll_interval = max(poll_interval, 0.001)
        self._counter_lock = threading.Lock()
        # Token endpoint calls made by this provider (metrics: token refreshes; benchmarks).
        self.token_requests = 0

    # -- public API ---------------------------------------------------------------------------------

    def connection(self) -> dict[str, Any]:
        """The secret's JSON without the cached token (credentials, base URL): a copy, safe to mutate."""
        entry = _memory.get(self.secret_id)
        if entry is not None and entry.token is not None and self._usable(entry.token):
            return copy.deepcopy(entry.connection)
        document = self._read_secret()
        token = _parse_token(document.get(CACHED_TOKEN_FIELD))
        self._remember(document, token)
        return _connection_of(document)

    def get(self) -> str:
        """A usable access token: from memory, else the secret, else minted once under the lease."""
        return self._get(avoid=None)

    def invalidate(self, access_token: str) -> None:
        """Stop using `access_token` (the vendor refused it): the next get() mints a new one, once."""
        with _memory_lock:
            entry = _memory.get(self.secret_id)
            if entry is not None and entry.token is not None and entry.token.access_token == access_token:
                _memory[self.secret_id] = _Entry(entry.connection, None)

        document = self._read_secret()
        persisted = _parse_token(document.get(CACHED_TOKEN_FIELD))
        if persisted is None or persisted.access_token != access_token or persisted.expires_at <= 0:
            return  # already replaced (or already marked): nothing to do
        lease = self._lock.try_acquire(self._lock_key, self._lock_lease)
        if lease is None:
            # Someone holds the lease, so a refresh (or this very invalidation) is under way.
            return
        try:
            document = self._read_secret()  # re-read under the lease: it may have changed meanwhile
            persisted = _parse_token(document.get(CACHED_TOKEN_FIELD))
            if persisted is not None and persisted.access_token == access_token:
                document[CACHED_TOKEN_FIELD] = {
                    **document[CACHED_TOKEN_FIELD],
                    "expiresAt": 0.0,
                    "invalidatedAt": self._clock(),
                }
                self._write_secret(document)
                logger.info("cached token invalidated for %s", self.secret_id)
        finally:
            self._lock.release(lease)

    def call_with_token(self, fn: Callable[[str], T]) -> T:
        """Call `fn(token)`; on AuthError invalidate, refresh once and call again.

        A second AuthError becomes RetryableError("auth_failed_after_refresh"): the record retries and
        eventually reaches the DLQ instead of looping on refreshes.
        """
        token = self.get()
        try:
            return fn(token)
        except AuthError:
            self.invalidate(token)
        # `avoid`: even if the persisted copy could not be marked, never retry with the refused token.
        fresh = self._get(avoid=token)
        try:
            return fn(fresh)
        except AuthError as exc:
            raise RetryableError(
                "auth_failed_after_refresh", "credentials refused again after a token refresh"
            ) from exc

    # -- internals ----------------------------------------------------------------------------------

    @property
    def _lock_key(self) -> str:
        return f"token#{self.secret_id}"

    @property
    def _client(self) -> Any:
        if self._secrets is None:
            self._secrets = aws.client("secretsmanager")
        return self._secrets

    def _usable(self, token: _Token, avoid: str | None = None) -> bool:
        if avoid is not None and token.access_token == avoid:
            return False
        return token.usable(self._clock(), self._refresh_margin)

    def _remember(self, document: Mapping[str, Any], token: _Token | None) -> None:
        with _memory_lock:
            _memory[self.secret_id] = _Entry(_connection_of(document), token)

    def _get(self, avoid: str | None) -> str:
        entry = _memory.get(self.secret_id)
        if entry is not None and entry.token is not None and self._usable(entry.token, avoid):
            return entry.token.access_token

        if self.secret_id in _pending:
            return self._save_pending(avoid)

        document = self._read_secret()
        token = _parse_token(document.get(CACHED_TOKEN_FIELD))
        if token is not None and self._usable(token, avoid):
            self._remember(document, token)
            return token.access_token

        lease = self._lock.try_acquire(self._lock_key, self._lock_lease)
        if lease is not None:
            return self._refresh_holding(lease, avoid)
        return self._wait_for_refresh(avoid)

    def _save_pending(self, avoid: str | None) -> str:
        """Save the rotated refresh token a failed write left in memory, first, under the lease."""
        lease = self._lock.try_acquire(self._lock_key, self._lock_lease)
        if lease is None:
            raise RetryableError(
                "token_unavailable", "a rotated refresh token waits for the lease to be saved"
            )
        try:
            pending = _pending.get(self.secret_id)
            document = self._read_secret()
            if pending is not None:
                # The secret as it is now (credentials may have changed) with the grant's fields.
                document.update(pending)
                self._persist_grant(document, rotated=True)
                _pending.pop(self.secret_id, None)
                logger.info("saved a rotated refresh token kept in memory for %s", self.secret_id)
            token = _parse_token(document.get(CACHED_TOKEN_FIELD))
            if token is not None and self._usable(token, avoid):
                self._remember(document, token)
                return token.access_token
            return self._mint(document, lease)
        finally:
            self._lock.release(lease)

    def _wait_for_refresh(self, avoid: str | None) -> str:
        """Another invocation is refreshing: poll the secret until its token lands, bounded."""
        waited = 0.0
        # Bounded by the time we asked to sleep, not the clock: an injected clock may stand still.
        while waited < self._wait_timeout:
            pause = min(self._poll_interval, self._wait_timeout - waited)
            self._sleep(pause)
            waited += pause
            document = self._read_secret()
            token = _parse_token(document.get(CACHED_TOKEN_FIELD))
            if token is not None and self._usable(token, avoid):
                self._remember(document, token)
                return token.access_token
            # The holder may have failed and released: take over rather than wait out the timeout.
            lease = self._lock.try_acquire(self._lock_key, self._lock_lease)
            if lease is not None:
                return self._refresh_holding(lease, avoid)
        raise RetryableError("token_unavailable", "no fresh token appeared while another refresh ran")

    def _refresh_holding(self, lease: Lease, avoid: str | None) -> str:
        try:
            # Double check: another invocation may have refreshed between our read and our lease.
            document = self._read_secret()
            token = _parse_token(document.get(CACHED_TOKEN_FIELD))
            if token is not None and self._usable(token, avoid):
                self._remember(document, token)
                return token.access_token
            self._respect_min_mint_interval(token)
            return self._mint(document, lease)
        finally:
            self._lock.release(lease)

    def _respect_min_mint_interval(self, token: _Token | None) -> None:
        if self._min_mint_interval <= 0 or token is None or token.minted_at is None:
            return
        wait = token.minted_at + self._min_mint_interval - self._clock()
        if wait <= 0:
            return
        if wait > self._wait_timeout:
            raise ThrottledError(
                "token_mint_throttled", "token minted too recently to mint another", retry_after=wait
            )
        self._sleep(wait)

    def _mint(self, document: dict[str, Any], lease: Lease) -> str:
        credentials = _connection_of(document)
        with self._counter_lock:
            self.token_requests += 1
        VENDOR_COUNTS.add(token_requests=1)
        minted_at = self._clock()
        with deadline.bounded(self._lock_lease / 2):  # the request ends well within the lease
            grant = self._fetcher(credentials)  # vendor errors propagate: they already are errors.* types
        if not grant.access_token or not math.isfinite(grant.expires_in) or grant.expires_in <= 0:
            raise PermanentError("invalid_token_grant", "token endpoint returned no usable access token")

        register_secret(grant.access_token, grant.refresh_token)
        token = _Token(grant.access_token, minted_at + grant.expires_in, minted_at)
        # What this grant changes in the secret (saved later from memory if this write fails).
        grant_fields: dict[str, Any] = {
            CACHED_TOKEN_FIELD: {
                "accessToken": token.access_token,
                "expiresAt": token.expires_at,
                "mintedAt": minted_at,
            },
            **grant.connection_updates,
        }
        if grant.refresh_token:
            grant_fields[self._refresh_token_field] = grant.refresh_token
        updated = {**document, **grant_fields}
        rotated = bool(grant.refresh_token)
        self._renew(lease)
        # Persist first: a rotated refresh token that only lives in memory dies with this container.
        try:
            self._persist_grant(updated, rotated=rotated)
        except RetryableError:
            if rotated:  # the only copy now: kept for the next get(), which saves it before anything else
                _pending[self.secret_id] = grant_fields
            raise
        self._remember(updated, token)
        logger.info("token minted for %s (expires in %.0fs)", self.secret_id, grant.expires_in)
        return token.access_token

    def _renew(self, lease: Lease) -> None:
        """Extend the lease for the save that follows; a lost lease (fenced off) is logged, and the grant
        is saved all the same: it is the newest the vendor issued."""
        try:
            renewed = self._lock.renew(lease, self._lock_lease)
        except RetryableError:
            renewed = lease
        if renewed is None:
            logger.warning("token lease for %s expired while minting; saving the new grant", self.secret_id)

    def _persist_grant(self, document: dict[str, Any], *, rotated: bool) -> None:
        attempts = 3
        # One version for all attempts: a write that succeeded but whose answer was lost is not doubled.
        request_token = str(uuid.uuid4())
        for attempt in range(1, attempts + 1):
            try:
                self._write_secret(document, request_token)
                return
            except RetryableError:
                if attempt == attempts:
                    if rotated:
                        logger.error(
                            "could not persist a rotated refresh token for %s; kept in memory, the next"
                            " token request saves it first",
                            self.secret_id,
                        )
                    raise
                self._sleep(0.2 * attempt)

    def _read_secret(self) -> dict[str, Any]:
        return read_secret(self._client, self.secret_id)

    def _write_secret(self, document: Mapping[str, Any], request_token: str | None = None) -> None:
        extra = {"ClientRequestToken": request_token} if request_token else {}
        try:
            self._client.put_secret_value(SecretId=self.secret_id, SecretString=json.dumps(document), **extra)
        except (BotoCoreError, ClientError) as exc:
            raise secret_error(exc) from None

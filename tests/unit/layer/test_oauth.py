from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from botocore.exceptions import ClientError

from activation_core import oauth
from activation_core.errors import ActivationError, AuthError, PermanentError, RetryableError, ThrottledError
from activation_core.locks import LeaseLock
from activation_core.oauth import TokenGrant, TokenProvider, clear_memory_cache

SECRET_ID = "activation/test-connection"
NOW = 1_700_000_000.0
CLIENT_SECRET = "csecret-VALUE-123"
FIRST_REFRESH_TOKEN = "rt-0-VALUE"


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Fetcher:
    """A token endpoint stand-in: numbered tokens, optional rotation, optional gate to make it slow."""

    def __init__(self, *, rotate: bool = False, expires_in: float = 3600.0) -> None:
        self.rotate = rotate
        self.expires_in = expires_in
        self.calls = 0
        self.seen: list[dict[str, Any]] = []
        self.entered = threading.Event()
        self.gate: threading.Event | None = None
        self.error: Exception | None = None
        self._lock = threading.Lock()

    def __call__(self, connection: Mapping[str, Any]) -> TokenGrant:
        with self._lock:
            self.calls += 1
            number = self.calls
            self.seen.append(dict(connection))
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(timeout=10)
        if self.error is not None:
            raise self.error
        return TokenGrant(
            access_token=f"at-{number}-VALUE",
            expires_in=self.expires_in,
            refresh_token=f"rt-{number}-VALUE" if self.rotate else None,
        )


class CountingSecrets:
    """Wraps the Secrets Manager client to count calls (and optionally fail writes)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.reads = 0
        self.writes = 0
        self.fail_writes = False

    def get_secret_value(self, **kwargs: Any) -> Any:
        self.reads += 1
        return self._client.get_secret_value(**kwargs)

    def put_secret_value(self, **kwargs: Any) -> Any:
        self.writes += 1
        if self.fail_writes:
            raise ClientError({"Error": {"Code": "InternalServiceError", "Message": "x"}}, "PutSecretValue")
        return self._client.put_secret_value(**kwargs)


@pytest.fixture(autouse=True)
def _fresh_container() -> Iterator[None]:
    clear_memory_cache()
    yield
    clear_memory_cache()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def secrets(secretsmanager: Any) -> CountingSecrets:
    secretsmanager.create_secret(
        Name=SECRET_ID,
        SecretString=json.dumps(
            {
                "baseUrl": "https://abc.api.example.com",
                "clientId": "cid-VALUE",
                "clientSecret": CLIENT_SECRET,
                "refreshToken": FIRST_REFRESH_TOKEN,
            }
        ),
    )
    return CountingSecrets(secretsmanager)


@pytest.fixture
def lock(dynamodb: Any, state_table: str, clock: Clock) -> LeaseLock:
    return LeaseLock(state_table, dynamodb=dynamodb, clock=clock)


Factory = Callable[..., TokenProvider]


@pytest.fixture
def make_provider(secrets: CountingSecrets, lock: LeaseLock, clock: Clock, waits: list[float]) -> Factory:
    def make(fetcher: Fetcher, **kwargs: Any) -> TokenProvider:
        kwargs.setdefault("sleep", waits.append)
        kwargs.setdefault("clock", clock)
        return TokenProvider(SECRET_ID, fetcher, lock=lock, secrets=secrets, **kwargs)

    return make


def _secret(secrets: CountingSecrets) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        secrets._client.get_secret_value(SecretId=SECRET_ID)["SecretString"]
    )
    return document


def _set_cached_token(
    secrets: CountingSecrets, access_token: str, expires_at: float, minted_at: float
) -> None:
    document = _secret(secrets)
    document["cachedToken"] = {"accessToken": access_token, "expiresAt": expires_at, "mintedAt": minted_at}
    secrets._client.put_secret_value(SecretId=SECRET_ID, SecretString=json.dumps(document))


# -- memory -> secret -> token endpoint -------------------------------------------------------------------


def test_first_get_mints_and_persists(make_provider: Factory, secrets: CountingSecrets, clock: Clock) -> None:
    fetcher = Fetcher()
    provider = make_provider(fetcher)
    assert provider.get() == "at-1-VALUE"
    assert fetcher.calls == 1
    assert provider.token_requests == 1
    # The fetcher gets the connection (credentials, base URL), never the cached token.
    assert fetcher.seen[0]["clientSecret"] == CLIENT_SECRET
    assert "cachedToken" not in fetcher.seen[0]
    cached = _secret(secrets)["cachedToken"]
    assert cached == {"accessToken": "at-1-VALUE", "expiresAt": NOW + 3600, "mintedAt": NOW}


def test_memory_hit_reads_nothing(make_provider: Factory, secrets: CountingSecrets) -> None:
    fetcher = Fetcher()
    provider = make_provider(fetcher)
    provider.get()
    reads = secrets.reads
    assert provider.get() == "at-1-VALUE"
    assert make_provider(fetcher).get() == "at-1-VALUE"  # memory is per container, not per instance
    assert secrets.reads == reads
    assert fetcher.calls == 1


def test_new_container_reuses_persisted_token(make_provider: Factory, secrets: CountingSecrets) -> None:
    make_provider(Fetcher()).get()
    clear_memory_cache()  # a new container
    fetcher = Fetcher()
    assert make_provider(fetcher).get() == "at-1-VALUE"
    assert fetcher.calls == 0


def test_expiry_refreshes(make_provider: Factory, secrets: CountingSecrets, clock: Clock) -> None:
    fetcher = Fetcher()
    provider = make_provider(fetcher)
    assert provider.get() == "at-1-VALUE"
    clock.now += 3600 - 61  # just outside the refresh margin: still good
    assert provider.get() == "at-1-VALUE"
    clock.now += 2  # inside the margin: refresh ahead of expiry
    assert provider.get() == "at-2-VALUE"
    assert fetcher.calls == 2
    assert _secret(secrets)["cachedToken"]["accessToken"] == "at-2-VALUE"


def test_short_lived_token_is_not_stale_at_birth(make_provider: Factory, clock: Clock) -> None:
    fetcher = Fetcher(expires_in=60)  # lifetime <= refresh margin
    provider = make_provider(fetcher)
    assert provider.get() == "at-1-VALUE"
    clock.now += 20
    assert provider.get() == "at-1-VALUE"
    clock.now += 15
    assert provider.get() == "at-2-VALUE"
    assert fetcher.calls == 2


def test_connection_excludes_cached_token(make_provider: Factory, secrets: CountingSecrets) -> None:
    provider = make_provider(Fetcher())
    provider.get()
    reads = secrets.reads
    connection = provider.connection()
    assert connection["baseUrl"] == "https://abc.api.example.com"
    assert "cachedToken" not in connection
    connection["baseUrl"] = "mutated"
    assert provider.connection()["baseUrl"] == "https://abc.api.example.com"  # a copy each time
    assert secrets.reads == reads  # cached for the token's life


def test_connection_reads_the_secret_when_nothing_cached(make_provider: Factory) -> None:
    connection = make_provider(Fetcher()).connection()
    assert connection["clientId"] == "cid-VALUE"


# -- rotating refresh token -------------------------------------------------------------------------------


def test_rotating_refresh_token_is_persisted(
    make_provider: Factory, secrets: CountingSecrets, clock: Clock
) -> None:
    fetcher = Fetcher(rotate=True)
    provider = make_provider(fetcher)
    assert provider.get() == "at-1-VALUE"
    assert fetcher.seen[0]["refreshToken"] == FIRST_REFRESH_TOKEN
    raw = secrets._client.get_secret_value(SecretId=SECRET_ID)["SecretString"]
    assert json.loads(raw)["refreshToken"] == "rt-1-VALUE"
    assert FIRST_REFRESH_TOKEN not in raw
    # The next refresh (another container) uses the rotated one.
    clear_memory_cache()
    clock.now += 3600
    assert make_provider(fetcher).get() == "at-2-VALUE"
    assert fetcher.seen[1]["refreshToken"] == "rt-1-VALUE"
    assert _secret(secrets)["refreshToken"] == "rt-2-VALUE"


def test_a_rotated_refresh_token_survives_a_failed_secret_write(
    make_provider: Factory, secrets: CountingSecrets, clock: Clock
) -> None:
    """Issue 14 item 5: the vendor rotated the refresh token but the secret write failed: the grant is
    kept in memory and saved before anything else on the next get(), never lost to a second mint."""
    fetcher = Fetcher(rotate=True)
    provider = make_provider(fetcher)
    secrets.fail_writes = True
    with pytest.raises(RetryableError) as caught:
        provider.get()
    assert caught.value.reason == "secret_unavailable"
    assert secrets.writes == 3  # retried in-process before giving up
    assert oauth._memory.get(SECRET_ID) is None or oauth._memory[SECRET_ID].token is None
    with pytest.raises(RetryableError):  # still failing: still kept, still no second mint
        provider.get()
    secrets.fail_writes = False
    assert provider.get() == "at-1-VALUE"  # saved first, then used: no new token request
    assert fetcher.calls == 1
    assert _secret(secrets)["refreshToken"] == "rt-1-VALUE"
    # The next mint (another container) refreshes with the rotated token.
    clear_memory_cache()
    clock.now += 3600
    assert make_provider(fetcher).get() == "at-2-VALUE"
    assert fetcher.seen[1]["refreshToken"] == "rt-1-VALUE"


def test_a_retried_secret_write_is_one_version(
    make_provider: Factory, secrets: CountingSecrets, secretsmanager: Any
) -> None:
    """A write whose answer was lost is retried with the same ClientRequestToken (no second version)."""
    tokens: list[str] = []
    write = secrets.put_secret_value

    def lost_answer_once(**kwargs: Any) -> Any:
        tokens.append(kwargs["ClientRequestToken"])
        response = write(**kwargs)
        if len(tokens) == 1:
            raise ClientError({"Error": {"Code": "InternalServiceError", "Message": "x"}}, "PutSecretValue")
        return response

    secrets.put_secret_value = lost_answer_once  # type: ignore[method-assign]
    assert make_provider(Fetcher(rotate=True)).get() == "at-1-VALUE"
    assert len(tokens) == 2 and tokens[0] == tokens[1]


def test_a_token_request_ends_well_within_its_lease_and_the_lease_is_renewed(
    secrets: CountingSecrets, dynamodb: Any, state_table: str, clock: Clock, waits: list[float]
) -> None:
    from activation_core import deadline
    from activation_core.locks import Lease

    renewals: list[float] = []

    class RecordingLock(LeaseLock):
        def renew(self, lease: Lease, lease_seconds: float) -> Lease | None:
            renewed = super().renew(lease, lease_seconds)
            renewals.append(renewed.expires_at if renewed else -1.0)
            return renewed

    lock = RecordingLock(state_table, dynamodb=dynamodb, clock=clock)
    budgets: list[float] = []
    fetcher = Fetcher(rotate=True)

    def timed(connection: Mapping[str, Any]) -> TokenGrant:
        budgets.append(deadline.remaining())
        clock.now += 20  # a slow token endpoint: the lease must not lapse before the grant is saved
        return fetcher(connection)

    provider = TokenProvider(
        SECRET_ID, timed, lock=lock, secrets=secrets, clock=clock, sleep=waits.append, lock_lease=30.0
    )
    assert provider.get() == "at-1-VALUE"
    assert budgets and budgets[0] <= 15.0  # half the lease at most
    # After the slow request and before saving, the holder renewed its lease: 30 s from then.
    assert renewals == [NOW + 20 + 30]
    assert deadline.remaining() == float("inf")  # the bound ends with the request


# -- invalidation and refresh once ------------------------------------------------------------------------


def test_invalidate_marks_only_the_same_token(make_provider: Factory, secrets: CountingSecrets) -> None:
    fetcher = Fetcher()
    provider = make_provider(fetcher)
    provider.get()
    provider.invalidate("some-other-token")
    assert _secret(secrets)["cachedToken"]["expiresAt"] == NOW + 3600
    provider.invalidate("at-1-VALUE")
    assert _secret(secrets)["cachedToken"]["expiresAt"] == 0.0
    clear_memory_cache()
    assert make_provider(fetcher).get() == "at-2-VALUE"
    assert fetcher.calls == 2


def test_call_with_token_refreshes_exactly_once(make_provider: Factory, secrets: CountingSecrets) -> None:
    fetcher = Fetcher()
    provider = make_provider(fetcher)
    provider.get()
    used: list[str] = []

    def call(token: str) -> str:
        used.append(token)
        if token == "at-1-VALUE":
            raise AuthError("http_401")
        return "delivered"

    assert provider.call_with_token(call) == "delivered"
    assert used == ["at-1-VALUE", "at-2-VALUE"]
    assert fetcher.calls == 2
    assert _secret(secrets)["cachedToken"]["accessToken"] == "at-2-VALUE"
    # Later calls use the new token without refreshing.
    assert provider.call_with_token(call) == "delivered"
    assert fetcher.calls == 2


def test_second_auth_error_becomes_retryable(make_provider: Factory) -> None:
    fetcher = Fetcher()
    provider = make_provider(fetcher)
    used: list[str] = []

    def refuse(token: str) -> None:
        used.append(token)
        raise AuthError("http_401")

    with pytest.raises(RetryableError) as caught:
        provider.call_with_token(refuse)
    assert caught.value.reason == "auth_failed_after_refresh"
    assert isinstance(caught.value.__cause__, AuthError)
    assert used == ["at-1-VALUE", "at-2-VALUE"]
    assert fetcher.calls == 2


def test_refused_token_is_never_reused_even_if_the_mark_failed(
    make_provider: Factory, lock: LeaseLock, secrets: CountingSecrets
) -> None:
    fetcher = Fetcher()
    holder: list[Any] = []

    def release_holder(_: float) -> None:
        if holder:
            lock.release(holder.pop())

    provider = make_provider(fetcher, sleep=release_holder)
    provider.get()

    def call(token: str) -> str:
        if token == "at-1-VALUE":
            # Someone else takes the lease, so the invalidation cannot mark the persisted token.
            holder.append(lock.try_acquire(f"token#{SECRET_ID}", 30))
            raise AuthError("http_401")
        return token

    assert provider.call_with_token(call) == "at-2-VALUE"
    assert fetcher.calls == 2


# -- single flight ----------------------------------------------------------------------------------------


def test_single_flight_across_concurrent_invocations(
    make_provider: Factory, secrets: CountingSecrets
) -> None:
    _set_cached_token(secrets, "at-old-VALUE", expires_at=NOW - 10, minted_at=NOW - 3610)
    fetcher = Fetcher()
    fetcher.gate = threading.Event()
    polls: list[float] = []
    polls_lock = threading.Lock()

    def poll_sleep(seconds: float) -> None:
        with polls_lock:
            polls.append(seconds)
        time.sleep(0.01)  # yield to the other "invocations"

    contenders = 10
    barrier = threading.Barrier(contenders)
    results: list[str] = []
    errors: list[BaseException] = []

    def invoke() -> None:
        provider = make_provider(fetcher, sleep=poll_sleep, wait_timeout=10.0, poll_interval=0.01)
        barrier.wait()
        try:
            token = provider.get()
        except BaseException as exc:  # reported below
            errors.append(exc)
        else:
            results.append(token)

    threads = [threading.Thread(target=invoke) for _ in range(contenders)]
    for thread in threads:
        thread.start()
    assert fetcher.entered.wait(timeout=10)
    # Let the others find the lease held and start waiting before the token endpoint answers.
    deadline = time.monotonic() + 5
    while len(polls) < contenders - 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    fetcher.gate.set()
    for thread in threads:
        thread.join(timeout=15)

    assert errors == []
    assert polls  # the others really waited on the lease holder
    assert results == ["at-1-VALUE"] * contenders
    assert fetcher.calls == 1


def test_waiter_gives_up_when_no_token_appears(
    make_provider: Factory, lock: LeaseLock, waits: list[float]
) -> None:
    assert lock.try_acquire(f"token#{SECRET_ID}", 300) is not None  # another invocation is refreshing
    fetcher = Fetcher()
    with pytest.raises(RetryableError) as caught:
        make_provider(fetcher, wait_timeout=2.0, poll_interval=0.5).get()
    assert caught.value.reason == "token_unavailable"
    assert sum(waits) == pytest.approx(2.0)
    assert fetcher.calls == 0


def test_waiter_takes_over_when_holder_fails(make_provider: Factory, lock: LeaseLock) -> None:
    held = lock.try_acquire(f"token#{SECRET_ID}", 300)
    assert held is not None

    def holder_gives_up(_: float) -> None:
        lock.release(held)  # the holder failed and released without a token

    fetcher = Fetcher()
    assert make_provider(fetcher, sleep=holder_gives_up).get() == "at-1-VALUE"
    assert fetcher.calls == 1


def test_waiter_picks_up_the_holders_token(
    make_provider: Factory, lock: LeaseLock, secrets: CountingSecrets
) -> None:
    assert lock.try_acquire(f"token#{SECRET_ID}", 300) is not None

    def holder_finishes(_: float) -> None:
        _set_cached_token(secrets, "at-theirs-VALUE", expires_at=NOW + 3600, minted_at=NOW)

    fetcher = Fetcher()
    assert make_provider(fetcher, sleep=holder_finishes).get() == "at-theirs-VALUE"
    assert fetcher.calls == 0


# -- min mint interval -----------------------------------------------------------------------------------


def test_min_mint_interval_waits_when_short(
    make_provider: Factory, secrets: CountingSecrets, waits: list[float]
) -> None:
    _set_cached_token(secrets, "at-old-VALUE", expires_at=0.0, minted_at=NOW - 10)
    fetcher = Fetcher()
    assert make_provider(fetcher, min_mint_interval=20.0).get() == "at-1-VALUE"
    assert waits == [pytest.approx(10.0)]


def test_min_mint_interval_throttles_when_long(
    make_provider: Factory, secrets: CountingSecrets, lock: LeaseLock
) -> None:
    _set_cached_token(secrets, "at-old-VALUE", expires_at=0.0, minted_at=NOW - 10)
    fetcher = Fetcher()
    with pytest.raises(ThrottledError) as caught:
        make_provider(fetcher, min_mint_interval=60.0, wait_timeout=15.0).get()
    assert caught.value.reason == "token_mint_throttled"
    assert caught.value.retry_after == pytest.approx(50.0)
    assert fetcher.calls == 0
    assert lock.try_acquire(f"token#{SECRET_ID}", 30) is not None  # released


def test_min_mint_interval_ignored_once_elapsed(
    make_provider: Factory, secrets: CountingSecrets, waits: list[float]
) -> None:
    _set_cached_token(secrets, "at-old-VALUE", expires_at=NOW - 1, minted_at=NOW - 3601)
    assert make_provider(Fetcher(), min_mint_interval=60.0).get() == "at-1-VALUE"
    assert waits == []


# -- failures and secrecy ----------------------------------------------------------------------------------


def test_fetcher_errors_propagate_and_release_the_lease(make_provider: Factory, lock: LeaseLock) -> None:
    fetcher = Fetcher()
    fetcher.error = PermanentError("token_rejected", "invalid_grant")
    with pytest.raises(PermanentError) as caught:
        make_provider(fetcher).get()
    assert caught.value.reason == "token_rejected"
    assert lock.try_acquire(f"token#{SECRET_ID}", 30) is not None


def test_missing_secret_is_retryable(mocked_aws: None, secretsmanager: Any, lock: LeaseLock) -> None:
    provider = TokenProvider("does-not-exist", Fetcher(), lock=lock, secrets=secretsmanager)
    with pytest.raises(RetryableError) as caught:
        provider.get()
    assert caught.value.reason == "secret_unavailable"


def _sensitive_values(secrets: CountingSecrets) -> list[str]:
    return [
        CLIENT_SECRET,
        FIRST_REFRESH_TOKEN,
        "at-1-VALUE",
        "at-2-VALUE",
        "rt-1-VALUE",
        "rt-2-VALUE",
        "at-old-VALUE",
    ]


def test_no_token_or_secret_in_errors_or_logs(
    make_provider: Factory,
    secrets: CountingSecrets,
    lock: LeaseLock,
    secretsmanager: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    raised: list[ActivationError] = []
    # Our own loggers only: botocore's DEBUG output echoes API bodies by design (and is off in Lambda).
    caplog.set_level(logging.DEBUG, logger="activation_core")

    def capture(action: Callable[[], object]) -> None:
        with pytest.raises(ActivationError) as caught:
            action()
        raised.append(caught.value)

    rotating = Fetcher(rotate=True)
    provider = make_provider(rotating)
    provider.get()

    def refuse(token: str) -> None:
        raise AuthError("http_401")

    capture(lambda: provider.call_with_token(refuse))  # auth_failed_after_refresh
    _set_cached_token(secrets, "at-old-VALUE", expires_at=0.0, minted_at=NOW)
    clear_memory_cache()
    capture(lambda: make_provider(Fetcher(), min_mint_interval=100.0).get())  # throttled
    secrets.fail_writes = True
    capture(lambda: make_provider(Fetcher(rotate=True)).get())  # persist failed
    secrets.fail_writes = False

    held = lock.try_acquire(f"token#{SECRET_ID}", 300)
    capture(lambda: make_provider(Fetcher(), wait_timeout=0.5).get())  # token_unavailable
    assert held is not None
    lock.release(held)
    clear_memory_cache()  # a new container: the grant kept in memory above is not there

    empty = Fetcher()
    empty.expires_in = 0.0
    capture(lambda: make_provider(empty).get())  # invalid grant

    secretsmanager.create_secret(Name="not-json", SecretString="clientSecret=" + CLIENT_SECRET)
    capture(lambda: TokenProvider("not-json", Fetcher(), lock=lock, secrets=secretsmanager).get())

    assert {error.reason for error in raised} == {
        "auth_failed_after_refresh",
        "token_mint_throttled",
        "secret_unavailable",
        "token_unavailable",
        "invalid_token_grant",
        "invalid_secret",
    }
    texts = [str(error) + repr(error) + error.detail for error in raised]
    texts += [record.getMessage() for record in caplog.records if record.name.startswith("activation_core")]
    assert any("token minted" in text for text in texts)
    texts.append(repr(TokenGrant("at-1-VALUE", 60, "rt-1-VALUE")))
    for text in texts:
        for value in _sensitive_values(secrets):
            assert value not in text

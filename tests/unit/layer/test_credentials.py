"""Static credentials (API keys, private-app tokens): read from the connection's secret, never minted,
never written back; a refused key is read again once, then the records wait (retry) for an operator."""

from __future__ import annotations

import json
from typing import Any

import pytest

from activation_core.credentials import StaticCredentials
from activation_core.errors import AuthError, RetryableError
from activation_core.observability import redact

SECRET_ID = "activation/test-static"
API_KEY = "key-ORIGINAL-value-0001"
ROTATED_KEY = "key-ROTATED-value-0002"


class CountingSecrets:
    """The Secrets Manager client, counting reads and refusing any write (static credentials never write)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.reads = 0

    def get_secret_value(self, **kwargs: Any) -> Any:
        self.reads += 1
        return self._client.get_secret_value(**kwargs)

    def put_secret_value(self, **kwargs: Any) -> Any:
        raise AssertionError("static credentials are never written back")


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def secrets(secretsmanager: Any) -> CountingSecrets:
    secretsmanager.create_secret(
        Name=SECRET_ID,
        SecretString=json.dumps(
            {"baseUrl": "https://api.example.com", "apiKey": API_KEY, "accountId": "acct-1"}
        ),
    )
    return CountingSecrets(secretsmanager)


def rotate(secretsmanager: Any, key: str) -> None:
    document = json.loads(secretsmanager.get_secret_value(SecretId=SECRET_ID)["SecretString"])
    secretsmanager.put_secret_value(SecretId=SECRET_ID, SecretString=json.dumps({**document, "apiKey": key}))


def test_the_key_is_read_from_the_secret_once_and_sent_as_is(secrets: CountingSecrets) -> None:
    credentials = StaticCredentials(SECRET_ID, secrets=secrets, clock=Clock())
    sent: list[str] = []

    for _ in range(5):
        credentials.call_with_token(sent.append)

    assert sent == [API_KEY] * 5
    assert secrets.reads == 1
    assert credentials.connection() == {
        "baseUrl": "https://api.example.com",
        "apiKey": API_KEY,
        "accountId": "acct-1",
    }


def test_a_rotated_key_is_picked_up_once_the_read_is_older_than_max_age(
    secrets: CountingSecrets, secretsmanager: Any
) -> None:
    clock = Clock()
    credentials = StaticCredentials(SECRET_ID, secrets=secrets, clock=clock, max_age=300)
    assert credentials.get() == API_KEY
    rotate(secretsmanager, ROTATED_KEY)

    clock.now += 300
    assert credentials.get() == API_KEY  # still within max_age
    clock.now += 1
    assert credentials.get() == ROTATED_KEY
    assert secrets.reads == 2


def test_a_refused_key_is_read_again_and_a_replaced_one_tried_once(
    secrets: CountingSecrets, secretsmanager: Any
) -> None:
    credentials = StaticCredentials(SECRET_ID, secrets=secrets, clock=Clock())
    credentials.get()
    rotate(secretsmanager, ROTATED_KEY)
    tried: list[str] = []

    def call(key: str) -> str:
        tried.append(key)
        if key != ROTATED_KEY:
            raise AuthError("http_401", "refused")
        return "ok"

    assert credentials.call_with_token(call) == "ok"
    assert tried == [API_KEY, ROTATED_KEY]


def test_com_06_the_same_key_refused_again_is_a_retry_that_names_the_field_not_the_value(
    secrets: CountingSecrets,
) -> None:
    credentials = StaticCredentials(SECRET_ID, secrets=secrets, clock=Clock())
    tried: list[str] = []

    def refuse(key: str) -> None:
        tried.append(key)
        raise AuthError("http_401", "refused")

    with pytest.raises(RetryableError) as raised:
        credentials.call_with_token(refuse)

    assert raised.value.reason == "credentials_refused"
    assert "apiKey" in raised.value.detail and API_KEY not in str(raised.value)
    assert tried == [API_KEY]  # never sent twice when nothing changed
    assert secrets.reads == 2  # read again once to look for a replaced key


def test_a_replaced_key_refused_too_is_a_retry(secrets: CountingSecrets, secretsmanager: Any) -> None:
    credentials = StaticCredentials(SECRET_ID, secrets=secrets, clock=Clock())
    credentials.get()
    rotate(secretsmanager, ROTATED_KEY)

    def refuse(key: str) -> None:
        raise AuthError("http_401", "refused")

    with pytest.raises(RetryableError) as raised:
        credentials.call_with_token(refuse)
    assert raised.value.reason == "credentials_refused"


def test_a_secret_without_the_field_is_a_retry_naming_the_field(secretsmanager: Any) -> None:
    secretsmanager.create_secret(Name="no-key", SecretString=json.dumps({"baseUrl": "https://x.example.com"}))
    credentials = StaticCredentials("no-key", field="accessToken", secrets=secretsmanager)

    with pytest.raises(RetryableError) as raised:
        credentials.get()
    assert raised.value.reason == "credential_missing"
    assert "accessToken" in raised.value.detail


def test_a_missing_secret_is_a_retry(secretsmanager: Any) -> None:
    with pytest.raises(RetryableError) as raised:
        StaticCredentials("absent", secrets=secretsmanager).get()
    assert raised.value.reason == "secret_unavailable"


def test_com_06_every_value_read_from_the_secret_is_masked_in_logs(secrets: CountingSecrets) -> None:
    StaticCredentials(SECRET_ID, secrets=secrets).get()

    assert API_KEY not in redact(f"sent {API_KEY} to the vendor")

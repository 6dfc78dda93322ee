"""`activation connect <kind>`: connection secrets written as the destination's model wants them,
secret values never taken from the command line, the cached token dropped (COM-02, COM-06)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from activation_cli import connect, discovery
from tests.cli.conftest import Invoke
from tests.cli.helpers import stdout_json

SECRET = "activation-dev/rainfocus/expo"


@pytest.fixture
def secrets() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def _read(secrets: Any, name: str = SECRET) -> dict[str, Any]:
    return dict(json.loads(secrets.get_secret_value(SecretId=name)["SecretString"]))


def test_every_destination_and_source_has_a_connect_command(cli: Invoke) -> None:
    kinds = set(discovery.connection_kinds())
    assert set(discovery.destination_types()) <= kinds  # every destination of the manifest
    listed = cli("connect", "--help").stdout
    assert all(kind in listed for kind in kinds)


def test_env_names_follow_the_field_aliases() -> None:
    assert connect.env_name("rainfocus", "clientSecret") == "RAINFOCUS_CLIENT_SECRET"
    assert connect.env_name("sfmc", "authBaseUri") == "SFMC_AUTH_BASE_URI"


def test_com_02_connect_creates_the_secret_from_options_environment_and_prompt(
    cli: Invoke, secrets: Any
) -> None:
    result = cli(
        "connect", "rainfocus", "--secret", SECRET, "--set", "orgId=ACME", "--json",
        input="rf-client\n",  # clientId is required and was not given: prompted
        env={"RAINFOCUS_CLIENT_SECRET": "s3cr3t-value", "RAINFOCUS_API_PROFILE": "profile-value"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert _read(secrets) == {
        "orgId": "ACME",
        "clientSecret": "s3cr3t-value",
        "apiProfile": "profile-value",
        "clientId": "rf-client",
    }
    report = json.loads(result.stdout[result.stdout.index("{") :])  # CliRunner echoes the typed answer
    assert (
        report["fields"]["clientSecret"] == "<set>"
        and report["sources"]["clientSecret"] == "$RAINFOCUS_CLIENT_SECRET"
    )
    assert "s3cr3t-value" not in result.output and "profile-value" not in result.output


def test_com_06_a_secret_field_is_refused_on_the_command_line(cli: Invoke, secrets: Any) -> None:
    result = cli("connect", "rainfocus", "--secret", SECRET, "--set", "clientSecret=visible-in-history")
    assert result.exit_code == 1
    assert "RAINFOCUS_CLIENT_SECRET" in result.stderr
    with pytest.raises(secrets.exceptions.ResourceNotFoundException):
        secrets.get_secret_value(SecretId=SECRET)


def test_an_update_keeps_other_fields_and_drops_the_cached_token(cli: Invoke, secrets: Any) -> None:
    secrets.create_secret(
        Name=SECRET,
        SecretString=json.dumps(
            {
                "clientId": "a",
                "clientSecret": "old-secret",
                "orgId": "ACME",
                "cachedToken": {"accessToken": "t"},
            }
        ),
    )
    result = cli("connect", "rainfocus", "--secret", SECRET, env={"RAINFOCUS_CLIENT_SECRET": "new-secret"})
    assert result.exit_code == 0, result.output
    assert _read(secrets) == {"clientId": "a", "clientSecret": "new-secret", "orgId": "ACME"}


def test_an_invalid_connection_is_not_written_and_its_values_are_not_echoed(
    cli: Invoke, secrets: Any
) -> None:
    result = cli(
        "connect", "rainfocus", "--secret", SECRET, "--set", "clientId=c", "--set", "orgId=bad org!",
        env={"RAINFOCUS_CLIENT_SECRET": "never-echoed"},
    )  # fmt: skip
    assert result.exit_code == 1
    assert "orgId" in result.stderr and "never-echoed" not in result.output
    with pytest.raises(secrets.exceptions.ResourceNotFoundException):
        secrets.get_secret_value(SecretId=SECRET)


def test_connect_show_hides_secret_values(cli: Invoke, secrets: Any) -> None:
    secrets.create_secret(
        Name=SECRET,
        SecretString=json.dumps(
            {
                "clientId": "c",
                "clientSecret": "hidden-value",
                "orgId": "ACME",
                "cachedToken": {"expiresAt": 0},
            }
        ),
    )
    shown = stdout_json(cli("connect", "show", "--secret", SECRET, "--json"))["fields"]
    assert shown == {
        "clientId": "c",
        "clientSecret": "<set>",
        "orgId": "ACME",
        "cachedToken": "expires 1970-01-01T00:00:00Z",
    }

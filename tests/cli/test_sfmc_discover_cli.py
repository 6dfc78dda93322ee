"""`activation sfmc discover` against the fake SFMC over HTTP (SOAP Retrieve with paging), the secret
in moto: the account's data extensions and fields become a config skeleton that validates (SFMC-03),
and system data views, native objects and synchronized data extensions are never offered (SFMC-01)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.fakes.sfmc import DataExtension, FakeSfmc, campaign_engagement, contacts, web_activity
from sfmc_ingestion.config import parse_ingestion_config
from tests.cli.conftest import Invoke

SECRET = "activation-dev/sfmc/main"


@pytest.fixture
def fake() -> Iterator[FakeSfmc]:
    with FakeSfmc() as server:
        server.add(contacts(3))
        server.add(campaign_engagement(3))
        server.add(web_activity(3))
        server.add(DataExtension("Contact_Salesforce", ("Id",), {"Id": "Text", "Email": "EmailAddress"}))
        server.soap_page_size = 4  # several Retrieve pages for the fields: ContinueRequest is followed
        yield server


@pytest.fixture
def secret(fake: FakeSfmc) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        client.create_secret(
            Name=SECRET,
            SecretString=json.dumps(
                {"authBaseUri": fake.base_url, "clientId": fake.client_id, "clientSecret": fake.client_secret}
            ),
        )
        yield client


def test_sfmc_03_discover_writes_a_valid_config_skeleton_of_the_accounts_data_extensions(
    cli: Invoke, fake: FakeSfmc, secret: Any, tmp_path: Path
) -> None:
    output = tmp_path / "discovered.json"
    result = cli("sfmc", "discover", "--secret", SECRET, "--output", output, "--allow-loopback", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [d["key"] for d in summary["dataExtensions"]] == [
        "Campaign_Engagement",
        "Contacts",
        "Web_Activity",
    ]
    config = parse_ingestion_config(json.loads(output.read_text()))  # valid as written
    (source,) = config.sources
    assert source.secret == SECRET and not any(de.enabled for de in source.data_extensions)
    by_key = {de.key: de for de in source.data_extensions}
    contacts_de = by_key["Contacts"]
    assert contacts_de.primary_key == ("SubscriberKey",)
    assert contacts_de.incremental_column == "ModifiedDate"
    assert contacts_de.fields["LifetimeValue"] == "Decimal" and contacts_de.fields["EmailOptIn"] == "Boolean"
    assert len(contacts_de.fields) == len(fake.de("Contacts").fields)  # every field, across Retrieve pages
    targets = {rule.column: rule.target for rule in contacts_de.mapping}
    assert targets["EmailAddress"] == "identities.email"
    assert targets["SubscriberKey"] == "identities.sfmcSubscriberKey"
    assert by_key["Campaign_Engagement"].primary_key == ("SubscriberKey", "CampaignId")
    soap = [r for r in fake.requests_to(r"/Service\.asmx$")]
    assert len(soap) > 2 and any(b"ContinueRequest" in r.body for r in soap)
    assert fake.token_requests == 1


def test_sfmc_01_discover_never_offers_system_objects(
    cli: Invoke, fake: FakeSfmc, secret: Any, tmp_path: Path
) -> None:
    output = tmp_path / "discovered.json"
    result = cli("sfmc", "discover", "--secret", SECRET, "--output", output, "--allow-loopback", "--json")
    summary = json.loads(result.stdout)
    assert summary["excluded"] == [
        {"key": "Contact_Salesforce", "reason": "synchronized data extensions (<Object>_Salesforce) are "
         "copies of Salesforce native objects"}
    ]  # fmt: skip
    assert "Contact_Salesforce" not in output.read_text()


def test_discover_fails_clearly_on_refused_credentials(cli: Invoke, fake: FakeSfmc, secret: Any) -> None:
    secret.put_secret_value(
        SecretId=SECRET,
        SecretString=json.dumps(
            {"authBaseUri": fake.base_url, "clientId": "x", "clientSecret": "wrong-value"}
        ),
    )
    result = cli("sfmc", "discover", "--secret", SECRET, "--allow-loopback")
    assert result.exit_code == 1
    assert "sfmc_token_refused" in result.output and "wrong-value" not in result.output

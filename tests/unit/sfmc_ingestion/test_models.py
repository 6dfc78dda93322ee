"""The ingestion config and the connection (SFMC-01, SFMC-02, SFMC-03) - no network."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from activation_core.errors import PermanentError
from local.fakes.sfmc import example_ingestion_config
from sfmc_ingestion.client import endpoints, normalize_auth_base_uri
from sfmc_ingestion.config import SourceConfigError, parse_ingestion_config
from sfmc_ingestion.models import SfmcConnection, parse_time_zone


@pytest.fixture
def document() -> dict[str, Any]:
    return copy.deepcopy(example_ingestion_config())


def contacts_de(document: dict[str, Any]) -> dict[str, Any]:
    de: dict[str, Any] = document["sources"][0]["dataExtensions"][0]
    return de


def test_sfmc_03_the_example_config_selects_maps_and_schedules_three_data_extensions(
    document: dict[str, Any],
) -> None:
    config = parse_ingestion_config(document)
    (source,) = config.sources
    assert [d.key for d in source.data_extensions] == ["Contacts", "Campaign_Engagement", "Web_Activity"]
    contacts = source.data_extensions[0]
    assert contacts.primary_key == ("SubscriberKey",)
    assert contacts.incremental_column == "ModifiedDate"
    assert contacts.schedule.period() == timedelta(hours=1)
    assert source.data_extensions[1].schedule.period() == timedelta(hours=4)
    assert {r.target for r in contacts.mapping} >= {"identities.email", "consents.marketing.email"}
    assert contacts.page_size == 2500


@pytest.mark.parametrize("key", ["_Subscribers", "_Open", "_Sent", "_Job"])
def test_sfmc_01_system_data_views_are_refused(document: dict[str, Any], key: str) -> None:
    contacts_de(document)["key"] = key
    with pytest.raises(SourceConfigError) as err:
        parse_ingestion_config(document)
    assert err.value.instance == "sfmc-main"
    assert err.value.field == f"dataExtensions.{key}.key"
    assert "system data views" in err.value.detail


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("Subscriber", "native object"),
        ("ListSubscriber", "native object"),
        ("sentevent", "native object"),
        ("Contact_Salesforce", "synchronized data extensions"),
        ("Lead_Salesforce_2", "synchronized data extensions"),
    ],
)
def test_sfmc_01_native_objects_and_their_synchronized_copies_are_refused(
    document: dict[str, Any], key: str, words: str
) -> None:
    contacts_de(document)["key"] = key
    with pytest.raises(SourceConfigError) as err:
        parse_ingestion_config(document)
    assert err.value.field == f"dataExtensions.{key}.key" and words in err.value.detail


@pytest.mark.parametrize("key", ["Contacts", "Subscribers_Extended", "Salesforce_Leads", "Purchases"])
def test_sfmc_01_ordinary_data_extension_keys_are_accepted(document: dict[str, Any], key: str) -> None:
    contacts_de(document)["key"] = key
    parse_ingestion_config(document)


def test_sfmc_03_the_incremental_column_must_be_a_declared_date_field(document: dict[str, Any]) -> None:
    contacts_de(document)["incrementalColumn"] = "LifecycleStage"
    with pytest.raises(SourceConfigError, match="must be declared as a Date field"):
        parse_ingestion_config(document)


def test_sfmc_03_no_incremental_column_means_a_full_load(document: dict[str, Any]) -> None:
    contacts_de(document)["incrementalColumn"] = None
    assert parse_ingestion_config(document).sources[0].data_extensions[0].incremental_column is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mapping": [{"column": "FirstName", "target": "attributes.person.name.firstName"}]}, "identities"),
        ({"pageSize": 2501}, "less than or equal to 2500"),
        ({"pageSize": 0}, "greater than or equal to 1"),
        ({"primaryKey": []}, "at least 1"),
        ({"schedule": {"frequency": "minute", "interval": 5}}, "hour"),
        ({"fields": {"ModifiedDate": "Date", "modifieddate": "Date"}}, "declared twice"),
    ],
)
def test_sfmc_03_invalid_settings_are_refused_naming_the_field(
    document: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    contacts_de(document).update(change)
    with pytest.raises(SourceConfigError, match=message) as err:
        parse_ingestion_config(document)
    assert err.value.field.startswith("dataExtensions.Contacts")


def test_sfmc_03_mapping_rules_are_checked(document: dict[str, Any]) -> None:
    contacts_de(document)["mapping"][2]["transforms"] = ["rot13"]
    with pytest.raises(SourceConfigError, match="unknown transform"):
        parse_ingestion_config(document)
    contacts_de(document)["mapping"][2] = {"column": "First Name", "target": "attributes.x"}
    with pytest.raises(SourceConfigError, match="field name"):
        parse_ingestion_config(document)
    contacts_de(document)["mapping"][2] = {"column": "FirstName", "target": "person.firstName"}
    with pytest.raises(SourceConfigError, match="target must be"):
        parse_ingestion_config(document)


def test_sfmc_03_sources_and_data_extensions_are_unique(document: dict[str, Any]) -> None:
    source = document["sources"][0]
    source["dataExtensions"].append(copy.deepcopy(source["dataExtensions"][0]))
    with pytest.raises(SourceConfigError, match="listed twice"):
        parse_ingestion_config(document)
    source["dataExtensions"].pop()
    document["sources"].append(copy.deepcopy(source))
    with pytest.raises(SourceConfigError, match="unique"):
        parse_ingestion_config(document)


def test_sfmc_03_time_zones_default_to_fixed_utc_minus_six(document: dict[str, Any]) -> None:
    del document["sources"][0]["timeZone"]
    zone = parse_ingestion_config(document).sources[0].zone()
    assert zone.utcoffset(None) == timedelta(hours=-6)
    assert parse_time_zone("UTC+05:30").utcoffset(None) == timedelta(hours=5, minutes=30)
    assert str(parse_time_zone("America/Chicago")) == "America/Chicago"
    document["sources"][0]["timeZone"] = "Mars/Olympus"
    with pytest.raises(SourceConfigError, match="time zone"):
        parse_ingestion_config(document)


def test_sfmc_03_a_config_error_never_echoes_values(document: dict[str, Any]) -> None:
    document["sources"][0]["secret"] = ""
    with pytest.raises(SourceConfigError) as err:
        parse_ingestion_config(document)
    assert err.value.field == "secret"
    assert "source 'sfmc-main'" in str(err.value)


@pytest.mark.parametrize(
    "pasted",
    [
        "https://mc563885gzs27c5t9-63k636ttgm.auth.marketingcloudapis.com/",
        "https://mc563885gzs27c5t9-63k636ttgm.auth.marketingcloudapis.com/v2/token",
        "https://MC563885GZS27C5T9-63K636TTGM.auth.marketingcloudapis.com/v2/token?x=1#y",
        "mc563885gzs27c5t9-63k636ttgm.auth.marketingcloudapis.com/",
        "mc563885gzs27c5t9-63k636ttgm",
        "  https://mc563885gzs27c5t9-63k636ttgm.auth.marketingcloudapis.com:443/v2  ",
    ],
)
def test_sfmc_02_the_auth_base_uri_keeps_everything_up_to_the_auth_domain(pasted: str) -> None:
    base, subdomain = normalize_auth_base_uri(pasted, allow_loopback=False)
    assert base == "https://mc563885gzs27c5t9-63k636ttgm.auth.marketingcloudapis.com"
    assert subdomain == "mc563885gzs27c5t9-63k636ttgm"


@pytest.mark.parametrize(
    "pasted",
    [
        "http://mcabc.auth.marketingcloudapis.com/",  # scheme
        "https://mcabc.rest.marketingcloudapis.com/",  # not the auth host
        "https://mcabc.auth.marketingcloudapis.com.evil.example/",  # look-alike
        "https://mc_abc.auth.marketingcloudapis.com/",  # not a DNS label
        "https://a.b.auth.marketingcloudapis.com/",  # two labels
        "https://user:pw@mcabc.auth.marketingcloudapis.com/",  # credentials
        "https://mcabc.auth.marketingcloudapis.com:8443/",  # port
        "http://127.0.0.1:8080/",  # loopback outside local mode
        "",
    ],
)
def test_sfmc_02_a_wrong_auth_base_uri_is_refused(pasted: str) -> None:
    with pytest.raises(PermanentError) as err:
        normalize_auth_base_uri(pasted, allow_loopback=False)
    assert err.value.reason in {"invalid_auth_base_uri", "invalid_base_url"}


def test_sfmc_02_connection_secret_fields_and_derived_rest_base() -> None:
    connection = SfmcConnection.model_validate(
        {"clientId": "id", "clientSecret": "s3cr3t-value", "authBaseUri": "mcabc", "accountId": "510000123"}
    )
    assert "s3cr3t" not in repr(connection)
    urls = endpoints(connection, allow_loopback=False)
    assert urls.auth_base == "https://mcabc.auth.marketingcloudapis.com"
    assert urls.rest_base == "https://mcabc.rest.marketingcloudapis.com"
    local = SfmcConnection.model_validate(
        {"clientId": "id", "clientSecret": "x", "authBaseUri": "http://127.0.0.1:9999/v2/token"}
    )
    assert endpoints(local, allow_loopback=True).rest_base == "http://127.0.0.1:9999"
    with pytest.raises(ValueError, match="accountId"):
        SfmcConnection.model_validate(
            {"clientId": "i", "clientSecret": "s", "authBaseUri": "m", "accountId": "MID-1"}
        )


def test_sfmc_01_the_client_never_requests_a_system_data_view() -> None:
    import httpx

    from sfmc_ingestion.client import SfmcClient

    requests: list[httpx.Request] = []

    class Tokens:
        def call_with_token(self, fn: Any) -> Any:
            return fn("token")

        def connection(self) -> dict[str, str]:
            return {"clientId": "i", "clientSecret": "s", "authBaseUri": "mcabc"}

    def respond(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json={"items": []})

    transport = httpx.MockTransport(respond)
    connection = SfmcConnection.model_validate({"clientId": "i", "clientSecret": "s", "authBaseUri": "mcabc"})
    client = SfmcClient(connection, Tokens(), allow_loopback=False, client=httpx.Client(transport=transport))  # type: ignore[arg-type]
    with pytest.raises(PermanentError, match="system data views"):
        client.first_page("_Subscribers", page_size=10, filter_expr=None, order_by=None)
    with pytest.raises(PermanentError, match="native object"):
        client.first_page("Subscriber", page_size=10, filter_expr=None, order_by=None)
    assert requests == []
    client.first_page(
        "Contacts",
        page_size=10,
        filter_expr="ModifiedDate gte '2024-06-23T00:00:00'",
        order_by="ModifiedDate asc",
    )
    (request,) = requests
    assert request.url.host == "mcabc.rest.marketingcloudapis.com"
    assert request.url.path == "/data/v1/customobjectdata/key/Contacts/rowset"
    assert b"$filter=ModifiedDate%20gte%20'2024-06-23T00%3A00%3A00'" in request.url.query
    with pytest.raises(PermanentError, match="another host"):
        client.resolve_link("https://evil.example/data/v1/customobjectdata/token/t/rowset")
    assert client.resolve_link("/v1/customobjectdata/token/t/rowset?$page=2") == (
        "https://mcabc.rest.marketingcloudapis.com/data/v1/customobjectdata/token/t/rowset?$page=2"
    )


def test_a_retrieve_error_status_or_soap_fault_is_a_permanent_error() -> None:
    from sfmc_ingestion.client import parse_retrieve

    envelope = (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>{}</soap:Body>'
        "</soap:Envelope>"
    )
    denied = envelope.format(
        '<RetrieveResponseMsg xmlns="http://exacttarget.com/wsdl/partnerAPI"><OverallStatus>Error: API '
        "Permission Failed</OverallStatus></RetrieveResponseMsg>"
    )
    with pytest.raises(PermanentError, match="API Permission Failed"):
        parse_retrieve(denied.encode())
    fault = envelope.format(
        "<soap:Fault><faultcode>soap:Client</faultcode><faultstring>Login Failed</faultstring></soap:Fault>"
    )
    with pytest.raises(PermanentError, match="Login Failed"):
        parse_retrieve(fault.encode())
    ok = envelope.format(
        '<RetrieveResponseMsg xmlns="http://exacttarget.com/wsdl/partnerAPI"><OverallStatus>OK</OverallStatus>'
        "<RequestID>r1</RequestID><Results><Name>Email</Name><DataExtension><CustomerKey>C</CustomerKey>"
        "</DataExtension></Results></RetrieveResponseMsg>"
    )
    assert parse_retrieve(ok.encode()) == ("OK", "r1", [{"Name": "Email", "DataExtension.CustomerKey": "C"}])

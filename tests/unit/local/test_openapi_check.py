"""The request check the Marketo and Outreach fakes run (local/fakes/openapi.py), against the vendors'
own documents: what it accepts and refuses, without a server."""

from __future__ import annotations

import json

from local.fakes.marketo import FakeMarketo
from local.fakes.openapi import SpecValidator, vendor_spec
from local.fakes.outreach import FakeOutreach

JSON = "application/json"


def marketo() -> SpecValidator:
    spec = vendor_spec("marketo", "marketo-rest.json", "marketo-identity.json")
    assert spec is not None, "shared/reference/openapi/ is beside the project (as on CI)"
    return spec


def outreach() -> SpecValidator:
    spec = vendor_spec("outreach", "outreach-v2.json")
    assert spec is not None
    return spec


def test_both_fakes_check_against_their_documents_read_once_per_process() -> None:
    assert FakeMarketo().spec is marketo() and FakeOutreach().spec is outreach()
    assert FakeMarketo(spec=False).spec is None


def test_literal_paths_win_over_templates_and_path_parameters_are_typed() -> None:
    assert marketo().check("GET", "/rest/v1/leads/describe2.json", {}, "", b"") == []
    assert outreach().check("GET", "/api/v2/prospects/12", {}, "", b"") == []
    (bad,) = outreach().check("GET", "/api/v2/prospects/twelve", {}, "", b"")
    assert (bad.kind, bad.location) == ("parameter", "path")


def test_multi_parameters_are_repeated_values_and_unknown_parameters_refused() -> None:
    query = {"filterType": ["email"], "filterValues": ["a@x.com", "b@x.com"], "fields": ["id", "email"]}
    assert marketo().check("GET", "/rest/v1/leads.json", query, "", b"") == []
    refused = marketo().check("GET", "/rest/v1/leads.json", {**query, "_method": ["GET"]}, "", b"")
    assert [v.detail for v in refused] == ["unknown query parameter '_method'"]
    ids = marketo().check("POST", "/rest/v1/lists/7/leads.json", {"id": ["1", "x"]}, "", b"")
    assert [v.detail for v in ids] == ["query parameter 'id': 'x' is not an integer"]


def test_a_required_body_and_a_required_query_parameter_are_both_required() -> None:
    body = json.dumps({"input": [{"id": 1}]}).encode()
    path = "/rest/v1/lists/7/leads.json"
    assert marketo().check("DELETE", path, {"id": ["1"]}, JSON, body) == []
    assert [v.kind for v in marketo().check("DELETE", path, {"id": ["1"]}, "", b"")] == ["json"]
    assert [v.kind for v in marketo().check("DELETE", path, {}, JSON, body)] == ["parameter"]


def test_swagger_bodies_are_checked_for_enums_types_and_required_fields() -> None:
    body = json.dumps({"action": "upsert", "input": [{"id": "seven"}]}).encode()
    refused = marketo().check("POST", "/rest/v1/leads.json", {}, JSON, body)
    assert [v.pointer for v in refused] == ["/action", "/input/0/id"]
    (missing,) = marketo().check("POST", "/rest/v1/leads.json", {}, JSON, b"{}")
    assert "'input' is a required property" in missing.detail


def test_openapi_3_bodies_honour_nullable_and_max_length_and_the_media_type() -> None:
    def patch(attributes: dict[str, object], media: str = "application/vnd.api+json") -> list[str]:
        body = json.dumps({"data": {"type": "prospect", "id": 3, "attributes": attributes}}).encode()
        return [
            v.pointer or v.kind for v in outreach().check("PATCH", "/api/v2/prospects/3", {}, media, body)
        ]

    assert patch({"custom4": None, "firstName": "Ada"}) == []
    assert patch({"custom4": "x" * 32_001}) == ["/data/attributes/custom4"]
    assert patch({"custom4": "x"}, JSON) == ["content_type"]


def test_the_identity_call_takes_query_parameters_and_no_body() -> None:
    query = {"grant_type": ["client_credentials"], "client_id": ["c"], "client_secret": ["s"]}
    assert marketo().check("POST", "/identity/oauth/token", query, "", b"") == []
    form = b"grant_type=client_credentials&client_id=c&client_secret=s"
    refused = marketo().check("POST", "/identity/oauth/token", {}, "application/x-www-form-urlencoded", form)
    assert {v.kind for v in refused} == {"parameter", "body"}

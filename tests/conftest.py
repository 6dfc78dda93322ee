"""Fixtures shared by every test layer: sample events, SQS records and the example config."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from local.fakes import openapi
from tests.support import example_config, load_event

# Nothing in a test may reach a real AWS account.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
for _name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"):
    os.environ[_name] = "testing"
os.environ.pop("AWS_PROFILE", None)
# A pytest-xdist worker starts with COLUMNS=80 and LINES=24 in its environment; Rich fixes a console's
# width from COLUMNS when the console is made (at import), so the width a CLI test asks for would be
# ignored and tables folded. Without them a console reads COLUMNS at print time, as in one process.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)


@pytest.fixture
def event() -> Callable[[str], dict[str, Any]]:
    return load_event


@pytest.fixture
def config_document() -> dict[str, Any]:
    return example_config()


_SPEC_CHECKED_UP_TO = [0]


@pytest.fixture(autouse=True)
def vendor_requests_match_their_openapi_documents(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every request a fake vendor with OpenAPI documents (Marketo, Outreach) received during the test,
    or during the module fixtures it set up, matched the documents (local/fakes/openapi.py): a refused
    one fails the test with what was wrong. A test that sends malformed requests on purpose (to test
    a fake) says so with `@pytest.mark.spec_violations`."""
    yield
    found, _SPEC_CHECKED_UP_TO[0] = openapi.recorded_since(_SPEC_CHECKED_UP_TO[0])
    if request.node.get_closest_marker("spec_violations") is None:
        assert not found, "requests the vendor's OpenAPI documents refuse:\n" + "\n".join(map(str, found))

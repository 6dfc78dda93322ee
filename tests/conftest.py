"""Fixtures shared by every test layer: sample events, SQS records and the example config."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

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

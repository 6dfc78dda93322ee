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


@pytest.fixture
def event() -> Callable[[str], dict[str, Any]]:
    return load_event


@pytest.fixture
def config_document() -> dict[str, Any]:
    return example_config()

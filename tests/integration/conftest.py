"""The project's local stack for integration tests: template.yaml in moto, fake vendors on 127.0.0.1."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest

from local.harness import SECRETS_SEEN, ActivationHarness
from local.lambda_runner import CALL_AUDIT

# Every function's AWS calls are recorded, for tests.support.calls_their_roles_refuse (moto enforces no IAM).
os.environ[CALL_AUDIT] = "1"

EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ActivationHarness]:
    """One deployed stack per test module; tests in a module share it (and its counters)."""
    with ActivationHarness(workdir=tmp_path_factory.mktemp("activation")) as running:
        yield running


@pytest.fixture(scope="module", autouse=True)
def test_com_06_no_secret_token_or_email_in_any_function_log(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """After each integration module: every function log line of every stack it ran (handler output,
    exceptions included) holds no plain email, no credential and no token the fakes issued."""
    yield
    leaks: list[str] = []
    for log in sorted(tmp_path_factory.getbasetemp().rglob("logs/*.log")):
        text = log.read_text(errors="replace")
        leaks += [f"{log.name}: email" for _ in EMAIL.finditer(text)][:1]
        leaks += [f"{log.name}: secret {secret[:3]}..." for secret in SECRETS_SEEN if secret in text]
    assert leaks == []

"""SAM local smoke test: every function of template.yaml, as `sam build` packages it, runs in the
Lambda runtime emulator (`sam local start-lambda`, Docker, the base image of local/sam_local) against
the local stack, and its response and outcomes (batch item failures or task result, ledger counters,
DLQ depths) equal those of the same event through the local stack's own runner.

It costs minutes (sam build, one container per function), so `make test` reports it skipped and CI
runs it as its own step on every submission: `make test-sam-local` (ACTIVATION_SAM_LOCAL=1). Without
a Docker daemon it is skipped with the reason, never passed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from local.sam_local import base_image
from local.sam_local.run import Report, cases, run
from local.sam_local.sam import SAM_VENV

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ARCH = os.environ.get("SAM_ARCH", "x86_64")
FUNCTIONS = sorted({case.function for case in cases(smoke=True)})


def _why_not_run() -> str | None:
    if os.environ.get("ACTIVATION_SAM_LOCAL") != "1":
        return "the SAM local smoke test runs in its own step: make test-sam-local (ACTIVATION_SAM_LOCAL=1)"
    problem = base_image.docker_available() or base_image.emulation_missing(ARCH)
    if problem:
        return f"no usable Docker for sam local: {problem}"
    if not (SAM_VENV / "bin" / "sam").exists():
        made = subprocess.run(
            ["make", "-s", ".sam-venv/bin/sam"], cwd=ROOT, capture_output=True, text=True, check=False
        )
        if made.returncode != 0:
            return f"the SAM CLI could not be installed into .sam-venv: {made.stderr.strip()[-300:]}"
    return None


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    reason = _why_not_run()
    if reason:
        pytest.skip(reason)
    result = run(ARCH, smoke=True, workdir=tmp_path_factory.mktemp("sam-local"), via="start-lambda")
    print(result.render())
    return result


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_function_runs_in_the_sam_emulator_as_in_the_local_stack(report: Report, function: str) -> None:
    rows = [(case, problems) for case, _seen, problems in report.rows if case.function == function]
    assert rows, f"no sample event for {function} in events/"
    assert [(case.name, problems) for case, problems in rows if problems] == []

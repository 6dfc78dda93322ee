"""`sam validate --lint` and `sam build` (no Docker) on template.yaml, with the SAM CLI in its own
virtual environment (.sam-venv, `make -s .sam-venv/bin/sam`): its pins clash with the project's."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from samtranslator.yaml_helper import yaml_parse

from activation_core import naming
from local.harness import DESTINATION_TYPES

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAM_VENV = ROOT / ".sam-venv"
SAM = SAM_VENV / "bin" / "sam"


@pytest.fixture(scope="module")
def sam() -> Path:
    if not SAM.exists():
        made = subprocess.run(
            ["make", "-s", ".sam-venv/bin/sam"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if made.returncode != 0 or not SAM.exists():
            pytest.skip(f"the SAM CLI could not be installed into .sam-venv: {made.stderr.strip()[-300:]}")
    return SAM


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        # The layer's Makefile runs `python3 -m pip`: the SAM venv's python, whatever the caller's is.
        "PATH": f"{SAM_VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "SAM_CLI_TELEMETRY": "0",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    env.pop("AWS_ENDPOINT_URL", None)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False)


def test_sam_validate_lint_passes(sam: Path) -> None:
    result = _run(str(sam), "validate", "--lint", "--template-file", "template.yaml", "--region", "us-east-1")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_sam_build_without_docker_builds_every_function_alone_and_the_arm64_layer(
    sam: Path, tmp_path: Path
) -> None:
    build = tmp_path / "build"
    # A cold build every time (SAM's cache keys on the layer's files, which tests' .pyc files change);
    # pip's own download cache keeps it at ~20 s.
    result = _run(str(sam), "build", "--template-file", "template.yaml", "--build-dir", str(build))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Build Succeeded" in result.stdout + result.stderr
    layer = build / "ActivationCoreLayer" / "python"
    assert (layer / "activation_core" / "pipeline.py").exists()
    assert list(layer.glob("pydantic_core/_pydantic_core.cpython-313-aarch64-linux-gnu.so"))
    for destination_type in DESTINATION_TYPES:  # the manifest: a destination without a function fails
        assert (
            build / naming.logical_id(destination_type, "Function") / destination_type / "handler.py"
        ).exists()
    assert (build / "template.yaml").exists()
    # Each function ships its own package (the one its handler names) and nothing else: the layer
    # brings the rest, and no vendor's code rides along in another vendor's function.
    built = yaml_parse((build / "template.yaml").read_text())["Resources"]
    functions = {k: r for k, r in built.items() if r["Type"] == "AWS::Serverless::Function"}
    assert len(functions) >= len(DESTINATION_TYPES)
    for logical_id, function in functions.items():
        package = function["Properties"]["Handler"].split(".")[0]
        shipped = {p.name for p in (build / logical_id).iterdir()}
        assert shipped == {package}, (logical_id, sorted(shipped))

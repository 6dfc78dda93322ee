"""The layer's `BuildMethod: makefile` target picks wheels for the Lambda runtime (arm64, python3.13),
not for this machine, so `sam build` works without Docker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

LAYER = Path(__file__).resolve().parents[2] / "layers" / "activation_core"


@pytest.mark.integration
def test_layer_build_ships_arm64_wheels_and_the_core_package(tmp_path: Path) -> None:
    result = subprocess.run(
        ["make", "-s", "build-ActivationCoreLayer", f"ARTIFACTS_DIR={tmp_path}"],
        cwd=LAYER,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path)},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    python = tmp_path / "python"
    assert (python / "activation_core" / "pipeline.py").exists()
    assert list(python.glob("pydantic_core/_pydantic_core.cpython-313-aarch64-linux-gnu.so"))
    assert not list(python.rglob("__pycache__"))

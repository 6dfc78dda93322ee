"""The operator CLI is installable on its own: what pyproject.toml packages (as setuptools reads it) is
enough to run `activation`, with neither the repository's functions/ nor local/ on the path; only the
development commands need local/, and they say so.

No wheel is built here (a build takes ~8 s and writes build/ into the tree): the packages setuptools
would put in the wheel are copied into a scratch site folder, links followed as a wheel build does,
and the CLI runs from it in a fresh interpreter (`-I -S`: no .pth, so no editable finder either).
"""

from __future__ import annotations

import ast
import json
import shutil
import site
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from setuptools.config.pyprojecttoml import expand_configuration, read_configuration

from activation_cli import discovery
from tests.support import example_config

ROOT = Path(__file__).resolve().parents[2]
DEV_ONLY = "local"  # the development half: installed too, but the operator commands never import it

_RUN_CLI = """
import sys
sites, root = sys.argv[1].split("|"), sys.argv[2]
sys.path[:0] = sites
sys.argv = ["activation", *sys.argv[3:]]
from activation_cli.main import app
tree = {root + suffix for suffix in ("", "/functions", "/layers/activation_core", "/local")}
leaks = [p for p in sys.path if p.rstrip("/") in tree]
assert not leaks, f"the CLI put the repository on sys.path: {leaks}"
from_tree = [m.__name__ for m in list(sys.modules.values()) if (getattr(m, "__file__", None) or "").startswith(tuple(tree - {root}))]
assert not from_tree, f"imported from the repository: {from_tree}"
app()
"""


def _wheel_layout() -> tuple[dict[str, Path], dict[str, list[str]]]:
    """Top-level package -> its folder in the tree, and the package data, as setuptools reads them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # setuptools calls [tool.setuptools] beta
        raw = read_configuration(ROOT / "pyproject.toml", expand=False)
        config = expand_configuration(raw, root_dir=ROOT)["tool"]["setuptools"]
    package_dir = config.get("package-dir", {})
    tops = {name for name in config["packages"] if "." not in name}
    return {name: ROOT / package_dir.get(name, name) for name in tops}, config.get("package-data", {})


@pytest.fixture(scope="module")
def operator_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel's packages without local/: what an operator's install runs the CLI with."""
    packages, _ = _wheel_layout()
    target = tmp_path_factory.mktemp("site")
    for name, folder in packages.items():
        if name != DEV_ONLY:
            shutil.copytree(folder, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def _activation(operator_site: Path, *args: object) -> subprocess.CompletedProcess[str]:
    # The interpreter's own site-packages holds the dependencies (pydantic, typer, boto3, ...).
    sites = [str(operator_site), *site.getsitepackages()]
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", _RUN_CLI, "|".join(sites), str(ROOT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


def test_the_wheel_holds_the_cli_the_layer_every_destination_and_the_manifest() -> None:
    packages, data = _wheel_layout()
    expected = {
        "activation_cli",
        "activation_core",
        *discovery.destination_types(),
        *discovery.SOURCE_PACKAGES,
    }
    assert expected <= set(packages)
    assert "tests" not in packages
    assert data.get("activation_cli") == ["destinations.json"]
    shipped = json.loads((packages["activation_cli"] / "destinations.json").read_text())
    assert shipped == json.loads((ROOT / "functions" / "destinations.json").read_text())


def test_activation_runs_from_the_installed_packages_alone(operator_site: Path, tmp_path: Path) -> None:
    help_text = _activation(operator_site, "--help")
    assert help_text.returncode == 0, help_text.stderr
    assert "config" in help_text.stdout and "connect" in help_text.stdout

    config = tmp_path / "config.json"
    config.write_text(json.dumps(example_config()))
    validated = _activation(operator_site, "config", "validate", config, "--json")
    assert validated.returncode == 0, validated.stderr
    report = json.loads(validated.stdout)
    assert sorted(report["destinations"]) == sorted(d["id"] for d in example_config()["destinations"])

    broken = example_config()
    broken["destinations"][0]["type"] = "no_such_destination"  # never a real type: no manifest entry
    config.write_text(json.dumps(broken))
    refused = _activation(operator_site, "config", "validate", config, "--json")
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["errors"][0]["field"] == "type"


def test_a_development_command_without_local_says_what_it_needs(operator_site: Path) -> None:
    result = _activation(operator_site, "config", "example")
    assert result.returncode == 1
    assert "development command" in result.stderr and "local/" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_cli_edits_no_import_path() -> None:
    """No `sys.path` edit anywhere in activation_cli/: what it imports comes from its installation."""
    edits = [
        f"{path.name}:{node.lineno}"
        for path in sorted((ROOT / "activation_cli").glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute)
        and node.attr == "path"
        and isinstance(node.value, ast.Name)
        and node.value.id == "sys"
    ]
    assert edits == []

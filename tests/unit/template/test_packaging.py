"""Each function ships its own package and the layer, nothing else (functions/Makefile, docs/decisions.md):
so no package may import another one, or its function fails at import in AWS, `sam local` and the
local stack alike ("No module named ...")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

FUNCTIONS = Path(__file__).resolve().parents[3] / "functions"
PACKAGES = sorted(p.name for p in FUNCTIONS.iterdir() if (p / "__init__.py").exists())


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", PACKAGES)
def test_a_function_package_imports_no_other_package(package: str) -> None:
    others = set(PACKAGES) - {package}
    found = {
        f"{path.relative_to(FUNCTIONS)}: {root}"
        for path in (FUNCTIONS / package).rglob("*.py")
        for root in _imported_roots(path) & others
    }
    assert found == set()

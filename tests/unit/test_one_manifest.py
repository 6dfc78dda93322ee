"""functions/destinations.json is the one list of destinations: no Python source keeps a list of its own
(a tuple, list, set or dict naming three or more destination types, or their logical ids such as
`RainfocusFunction`), which a new destination would have to find and extend. A test or bench that
needs the destinations reads the manifest (activation_core.manifest, local.harness.MANIFEST,
activation_cli.discovery)."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

from activation_core import manifest, naming

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = manifest.load(ROOT / "functions")
# Sources still holding a list, each with why; remove the entry when it reads the manifest.
KNOWN: dict[str, str] = {}  # a file allowed a list of destination names, with the reason


def _names(text: str) -> set[str]:
    """The destination types `text` is, or whose logical id it is (`RainfocusFunction`)."""
    found = {t for t in MANIFEST.types if text == t}
    found |= {
        t
        for t in MANIFEST.types
        if text.startswith(prefix := naming.logical_prefix(t))
        and text[len(prefix) : len(prefix) + 1].isupper()
    }
    return found


def _lists(source: str) -> list[tuple[int, set[str]]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            items = list(node.elts)
        elif isinstance(node, ast.Dict):
            items = [k for k in node.keys if k is not None] + list(node.values)
        else:
            continue
        named = {
            n
            for i in items
            if isinstance(i, ast.Constant) and isinstance(i.value, str)
            for n in _names(i.value)
        }
        if len(named) >= 3:
            found.append((node.lineno, named))
    return found


def test_no_python_source_keeps_its_own_list_of_destinations() -> None:
    tracked = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "*.py"], capture_output=True, text=True, check=True
    ).stdout.split()
    lists = [
        f"{path}:{line} names {sorted(named)}"
        for path in tracked
        if path not in KNOWN and (ROOT / path).exists()
        for line, named in _lists((ROOT / path).read_text())
    ]
    assert lists == [], "read functions/destinations.json (activation_core.manifest) instead"


def test_the_check_finds_a_hidden_list() -> None:
    assert _lists('DESTINATIONS = ("bombora", "marketo", "rainfocus")')
    assert _lists('FUNCTIONS = {"a": "BomboraFunction", "b": "MarketoFunction", "c": "OutreachQueue"}')
    assert not _lists('PAIR = ("marketo", "rainfocus")  # two examples, not the list')
    assert not _lists('IDS = ("marketo-expo2026", "rainfocus-expo2026", "outreach-sales")  # instances')


def test_the_packaging_and_lint_settings_name_no_destination() -> None:
    """pyproject.toml finds destination packages (setuptools' find, ruff's `src`): a new folder in
    functions/ is packaged and sorted as first-party without an edit there."""
    text = (ROOT / "pyproject.toml").read_text().lower()
    assert [t for t in MANIFEST.types if t in text] == []

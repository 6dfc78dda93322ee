"""The layer holds vendor-neutral mechanisms only: no destination of the manifest is named in it (code,
comments or examples), so a destination's logic can only live in its own folder."""

from __future__ import annotations

import re
from pathlib import Path

from activation_core import manifest

ROOT = Path(__file__).resolve().parents[3]
LAYER = ROOT / "layers" / "activation_core" / "activation_core"


def test_no_destination_is_named_in_the_layer() -> None:
    names = {spec.type for spec in manifest.load(ROOT / "functions").destinations}
    names |= {spec.display_name.lower() for spec in manifest.load(ROOT / "functions").destinations}
    pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, names))) + r")\b", re.IGNORECASE)
    found = [
        f"{path.relative_to(ROOT)}:{number}: {match.group(0)}"
        for path in sorted(LAYER.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        for match in [pattern.search(line)]
        if match
    ]
    assert found == []

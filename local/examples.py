"""The example destinations config and sample events (light: no moto).

Each destination's example instance is `functions/<type>/example.json` (one instance, pointing at the
local stack's secrets), read in manifest order; the sample events are in events/eventbridge/.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from activation_core import manifest

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"
EXAMPLE_FILE = "example.json"


def example_config() -> dict[str, Any]:
    """One config document from every destination's `functions/<type>/example.json`."""
    files = [FUNCTIONS / t / EXAMPLE_FILE for t in manifest.load(FUNCTIONS).types]
    instances = [json.loads(p.read_text()) for p in files if p.exists()]
    return {"schemaVersion": "1", "destinations": instances}


def sample_events() -> list[dict[str, Any]]:
    """Every EventBridge event in events/eventbridge/, in file-name order."""
    return [json.loads(p.read_text()) for p in sorted((ROOT / "events" / "eventbridge").glob("*.json"))]

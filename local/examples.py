"""The example destinations config and sample events shipped in shared/ and events/ (light: no moto)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIGS = ROOT / "shared" / "config"


def example_config() -> dict[str, Any]:
    """One config document from shared/config/*.example.json (one destination instance per file)."""
    instances = [json.loads(p.read_text()) for p in sorted(EXAMPLE_CONFIGS.glob("*.example.json"))]
    return {"schemaVersion": "1", "destinations": instances}


def sample_events() -> list[dict[str, Any]]:
    """Every EventBridge event in events/eventbridge/, in file-name order."""
    return [json.loads(p.read_text()) for p in sorted((ROOT / "events" / "eventbridge").glob("*.json"))]

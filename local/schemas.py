"""Generate the JSON Schemas in shared/schemas/ from the pydantic models (`make schemas`).

The event and config contracts are language-neutral files for upstream teams; a test fails when the
checked-in files drift from the models.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = ROOT / "shared" / "schemas"


def _models() -> dict[str, type[BaseModel]]:
    """The layer's contracts, plus each destination's `JSON_SCHEMAS` (in `functions/<type>/models.py`)."""
    from activation_core.models.config import DestinationsConfig
    from activation_core.models.events import AccountEventDetail, ErasureRequestDetail, ProfileEventDetail
    from activation_core.models.snapshots import (
        SnapshotAccountMember,
        SnapshotManifest,
        SnapshotProfileMember,
        SnapshotReadyDetail,
    )

    models: dict[str, type[BaseModel]] = {
        "profile-event-detail": ProfileEventDetail,
        "account-event-detail": AccountEventDetail,
        "profile-erasure-request-detail": ErasureRequestDetail,
        "destinations-config": DestinationsConfig,
        "snapshot-manifest": SnapshotManifest,
        "snapshot-profile-member": SnapshotProfileMember,
        "snapshot-account-member": SnapshotAccountMember,
        "snapshot-ready-detail": SnapshotReadyDetail,
    }
    for package in sorted(p.parent.name for p in (ROOT / "functions").glob("*/models.py")):
        models.update(getattr(importlib.import_module(f"{package}.models"), "JSON_SCHEMAS", {}))
    return models


def render() -> dict[str, str]:
    """File name -> schema text, exactly as written to disk."""
    out: dict[str, str] = {}
    for name, model in _models().items():
        schema: dict[str, Any] = model.model_json_schema(by_alias=True, mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"urn:audience-activation:{name}:1"
        out[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def main() -> int:
    SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
    for file_name, text in render().items():
        (SCHEMA_DIR / file_name).write_text(text)
        print(f"wrote shared/schemas/{file_name}")
    return 0


if __name__ == "__main__":
    sys.path[:0] = [str(ROOT / "layers" / "activation_core"), str(ROOT / "functions")]
    raise SystemExit(main())

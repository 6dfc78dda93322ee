"""Fixtures of the unit tests that read the template."""

from __future__ import annotations

from typing import Any

import pytest

from local.sam_translate import translate
from tests.support import ROOT


@pytest.fixture(scope="session")
def resources() -> dict[str, Any]:
    """template.yaml translated by aws-sam-translator, as CloudFormation receives it (once per run)."""
    cfn = translate(
        ROOT / "template.yaml",
        region="us-east-1",
        parameters={},
        upload=lambda logical_id, path: f"s3://b/{logical_id}",
    )
    return dict(cfn["Resources"])

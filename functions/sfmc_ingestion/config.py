"""The ingestion config from its SSM parameter (Powertools Parameters, short cache), validated.

An invalid document fails the plan with the source and field named (the run fails and alarms)
rather than ingesting with a half-understood config.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from activation_core.errors import ConfigError
from sfmc_ingestion.models import IngestionConfig


class SourceConfigError(ConfigError):
    """A ConfigError that names a source rather than a destination."""

    def __init__(self, source: str, field: str, detail: str) -> None:
        super().__init__(source, field, detail, subject="source")


def parse_ingestion_config(document: str | bytes | dict[str, Any]) -> IngestionConfig:
    try:
        data = json.loads(document) if isinstance(document, str | bytes) else document
    except json.JSONDecodeError as exc:
        raise SourceConfigError("<ingestion config>", "<root>", f"not JSON: {exc.msg}") from None
    try:
        return IngestionConfig.model_validate(data)
    except ValidationError as exc:
        raise _named(data, exc) from None


def _named(data: Any, error: ValidationError) -> SourceConfigError:
    """Name the source (by id) and the field; never echo input values (they may be secrets)."""
    first = error.errors(include_input=False, include_url=False)[0]
    loc = [str(part) for part in first["loc"]]
    source = "<ingestion config>"
    if len(loc) >= 2 and loc[0] == "sources" and loc[1].isdigit():
        try:
            source = str(data["sources"][int(loc[1])].get("id") or f"#{loc[1]}")
        except (KeyError, IndexError, TypeError, AttributeError):
            source = f"#{loc[1]}"
        loc = loc[2:]
        if len(loc) >= 2 and loc[0] == "dataExtensions" and loc[1].isdigit():
            try:
                key = data["sources"][int(first["loc"][1])]["dataExtensions"][int(loc[1])].get("key")
            except (KeyError, IndexError, TypeError, AttributeError, ValueError):
                key = None
            loc = ["dataExtensions", str(key or loc[1]), *loc[2:]]
    return SourceConfigError(source, ".".join(loc) or "<source>", first["msg"])


def load_ingestion_config(parameter_name: str, max_age: int, *, force: bool = False) -> IngestionConfig:
    from aws_lambda_powertools.utilities import parameters

    raw = parameters.get_parameter(parameter_name, max_age=max_age, force_fetch=force)
    return parse_ingestion_config(str(raw))

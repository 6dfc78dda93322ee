"""What the CLI learns from the manifest and the code by convention, so a new destination needs no
CLI change:

- a destination type is an entry of `functions/destinations.json` (the manifest, shipped with the CLI
  as `activation_cli/destinations.json`) whose package `<type>` has a `service.py` that defines
  `validate_instance`;
- its `service.py` holds a class with `destination_type == <type>` and `connect()` (the pipeline's
  Destination), and `call_plan(instance)`: the fewest vendor calls per record and the vendor's rate
  limits (`activation_core.vendor_calls`; backfill estimates and the benches);
- every package's `models.py` may publish `JSON_SCHEMAS`; a `<name>-connection-secret` entry is the
  model of a connection secret (`activation connect <name>`).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import as_file, files
from types import ModuleType
from typing import Any

from pydantic import BaseModel

from activation_core import manifest
from activation_core.vendor_calls import CallPlan

CONNECTION_SUFFIX = "-connection-secret"
# Packages of functions/ that deliver nothing but publish models (a connection secret, a config): the
# inbound sources, each with commands of its own (`activation sfmc`, `activation ingest`).
SOURCE_PACKAGES = ("sfmc_ingestion",)


def _packages() -> list[str]:
    return sorted({*destination_types(), *SOURCE_PACKAGES})


def destinations() -> manifest.Manifest:
    with as_file(files("activation_cli") / manifest.MANIFEST_FILE) as path:
        return manifest.load(path.resolve().parent)


def destination_types() -> list[str]:
    """The manifest's types (a package missing for one of them fails the tests, not the CLI)."""
    return list(destinations().types)


def source_packages() -> list[str]:
    """Packages that publish models but deliver nothing (the SFMC ingestion)."""
    return [name for name in SOURCE_PACKAGES if json_schemas(name)]


def service_module(destination_type: str) -> ModuleType | None:
    if destination_type not in destination_types():
        return None
    return importlib.import_module(f"{destination_type}.service")


def instance_validator(destination_type: str) -> Callable[[Any], object] | None:
    module = service_module(destination_type)
    validator = getattr(module, "validate_instance", None) if module else None
    return validator if callable(validator) else None


def call_plan(instance: Any) -> CallPlan:
    """The vendor calls and rate limits of sending records to this instance (its destination's own)."""
    module = service_module(instance.type)
    plan = getattr(module, "call_plan", None) if module else None
    if not callable(plan):
        raise LookupError(f"{instance.type}.service defines no call_plan(instance)")
    result: CallPlan = plan(instance)
    return result


def destination(destination_type: str) -> Any:
    """A fresh instance of the type's Destination (what its handler plugs into the pipeline)."""
    module = service_module(destination_type)
    if module is None:
        raise LookupError(f"no destination package for type '{destination_type}'")
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and getattr(value, "destination_type", None) == destination_type
            and callable(getattr(value, "connect", None))
        ):
            return value()
    raise LookupError(f"{destination_type}.service defines no Destination class")


def json_schemas(package: str) -> dict[str, type[BaseModel]]:
    if importlib.util.find_spec(package) is None or importlib.util.find_spec(f"{package}.models") is None:
        return {}
    schemas = getattr(importlib.import_module(f"{package}.models"), "JSON_SCHEMAS", {})
    return dict(schemas) if isinstance(schemas, dict) else {}


@dataclass(frozen=True)
class ConnectionKind:
    """A connection secret the CLI can set up: `name` as in `<Name>SecretPrefix`, its model."""

    name: str
    package: str
    model: type[BaseModel]


def connection_kinds() -> dict[str, ConnectionKind]:
    kinds: dict[str, ConnectionKind] = {}
    for package in _packages():
        for key, model in json_schemas(package).items():
            if key.endswith(CONNECTION_SUFFIX):
                name = key.removesuffix(CONNECTION_SUFFIX)
                kinds[name] = ConnectionKind(name, package, model)
    return kinds


@dataclass(frozen=True)
class ModelField:
    """A field of a connection model as the CLI asks for it; secret when the model hides it from repr."""

    required: bool
    secret: bool
    description: str


def model_fields(model: type[BaseModel]) -> dict[str, ModelField]:
    """alias -> the field."""
    return {
        (info.alias or name): ModelField(info.is_required(), info.repr is False, info.description or "")
        for name, info in model.model_fields.items()
    }

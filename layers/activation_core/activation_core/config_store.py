"""Destination configuration from Parameter Store (Powertools Parameters, short cache).

`parse_destinations` is strict (the CLI's `config validate`): any invalid instance rejects the document.
The functions load the document per instance (`load_instances`): an invalid instance is set aside with
its ConfigError and holds back only its own records, every valid instance runs. Only a document that
cannot be read at all (not JSON, no destinations list) fails every record (they retry, then the DLQ).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from activation_core.errors import ConfigError
from activation_core.models.config import DestinationInstance, DestinationsConfig


def describe_validation_error(error: ValidationError, instance: str = "") -> ConfigError:
    """A ConfigError naming the instance and field, without echoing input values (they may be secrets)."""
    first = error.errors(include_input=False, include_url=False)[0]
    location = [str(part) for part in first["loc"]]
    field = ".".join(location) or "<root>"
    if not instance and len(location) >= 2 and location[0] == "destinations":
        instance = f"#{location[1]}"
    return ConfigError(instance or "<document>", field, first["msg"])


def parse_destinations(document: str | bytes | dict[str, Any]) -> DestinationsConfig:
    """Validate a whole configuration document (JSON text or an already-parsed mapping)."""
    try:
        data = json.loads(document) if isinstance(document, str | bytes) else document
        return DestinationsConfig.model_validate(data)
    except json.JSONDecodeError as exc:
        raise ConfigError("<document>", "<root>", f"not JSON: {exc.msg}") from None
    except ValidationError as exc:
        named = _name_instance(data, exc)
        raise named from None


def _name_instance(data: Any, error: ValidationError) -> ConfigError:
    loc = error.errors(include_input=False)[0]["loc"]
    instance = ""
    if len(loc) >= 2 and loc[0] == "destinations" and isinstance(loc[1], int):
        try:
            instance = str(data["destinations"][loc[1]].get("id") or f"#{loc[1]}")
        except (KeyError, IndexError, TypeError, AttributeError):
            instance = f"#{loc[1]}"
        trimmed = [str(part) for part in loc[2:]]
        first = error.errors(include_input=False, include_url=False)[0]
        return ConfigError(instance, ".".join(trimmed) or "<instance>", first["msg"])
    return describe_validation_error(error)


@dataclass(frozen=True, slots=True)
class InvalidInstance:
    """An instance of the document that failed validation, with what could still be read of it."""

    id: str
    type: str
    enabled: bool
    # The audience ids it activates; None when even they cannot be read (then every record is its own).
    audience_ids: frozenset[str] | None
    error: ConfigError


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A document validated per instance: the valid ones, and the invalid ones set aside."""

    config: DestinationsConfig
    invalid: tuple[InvalidInstance, ...] = ()

    def invalid_of_type(self, destination_type: str) -> list[InvalidInstance]:
        return [i for i in self.invalid if i.type == destination_type and i.enabled]


def parse_instances(document: str | bytes | dict[str, Any]) -> LoadedConfig:
    """Validate the document's shell, then each instance on its own (one bad instance spoils nothing else)."""
    try:
        data = json.loads(document) if isinstance(document, str | bytes) else document
    except json.JSONDecodeError as exc:
        raise ConfigError("<document>", "<root>", f"not JSON: {exc.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("destinations", []), list):
        raise ConfigError("<document>", "destinations", "the document must be an object with a list")
    raw_instances: list[Any] = data.get("destinations", [])
    try:
        shell = DestinationsConfig.model_validate({**data, "destinations": []})
    except ValidationError as exc:
        raise describe_validation_error(exc) from None
    ids = [raw.get("id") if isinstance(raw, dict) else None for raw in raw_instances]
    valid: list[DestinationInstance] = []
    invalid: list[InvalidInstance] = []
    for index, raw in enumerate(raw_instances):
        name = str(ids[index]) if isinstance(ids[index], str) and ids[index] else f"#{index}"
        try:
            if ids[index] is not None and ids.count(ids[index]) > 1:
                raise ConfigError(name, "id", "destination ids must be unique")
            try:
                valid.append(DestinationInstance.model_validate(raw))
            except ValidationError as exc:
                first = exc.errors(include_input=False, include_url=False)[0]
                field = ".".join(str(part) for part in first["loc"]) or "<instance>"
                raise ConfigError(name, field, first["msg"]) from None
        except ConfigError as error:
            invalid.append(_set_aside(name, raw, error))
    return LoadedConfig(shell.model_copy(update={"destinations": tuple(valid)}), tuple(invalid))


def _set_aside(name: str, raw: Any, error: ConfigError) -> InvalidInstance:
    fields = raw if isinstance(raw, dict) else {}
    audiences = fields.get("audiences", [])
    audience_ids: frozenset[str] | None = None
    if isinstance(audiences, list) and all(
        isinstance(a, dict) and isinstance(a.get("id"), str) for a in audiences
    ):
        audience_ids = frozenset(a["id"] for a in audiences)
    return InvalidInstance(
        id=name,
        type=str(fields.get("type", "")),
        enabled=fields.get("enabled", True) is not False,
        audience_ids=audience_ids,
        error=error,
    )


def load_instances(parameter_name: str, max_age: int) -> LoadedConfig:
    """The current configuration document per instance, cached for `max_age` seconds per container."""
    from aws_lambda_powertools.utilities import parameters

    raw = parameters.get_parameter(parameter_name, max_age=max_age, decrypt=True)
    return _parse_cached(str(raw))


def load_destinations(parameter_name: str, max_age: int) -> DestinationsConfig:
    """The valid instances of the current configuration document (see `load_instances`)."""
    return load_instances(parameter_name, max_age).config


@lru_cache(maxsize=4)
def _parse_cached(text: str) -> LoadedConfig:
    """One validation per document text, not one per batch. The models are frozen and nothing writes to
    their `settings`/`extras` dicts, so every batch can share them.

    An unreadable document raises every time (lru_cache does not keep exceptions).
    """
    return parse_instances(text)

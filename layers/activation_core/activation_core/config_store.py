"""Destination configuration from Parameter Store (Powertools Parameters, short cache).

An invalid document fails loudly with the instance and field named; the caller turns that into
retries for the whole batch, so records wait in the queue (and reach the DLQ) rather than vanish.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from activation_core.errors import ConfigError
from activation_core.models.config import DestinationsConfig


def describe_validation_error(error: ValidationError, instance: str = "") -> ConfigError:
    """A ConfigError naming the instance and field, without echoing input values (they may be secrets)."""
    first = error.errors(include_input=False, include_url=False)[0]
    location = [str(part) for part in first["loc"]]
    field = ".".join(location) or "<root>"
    if not instance and len(location) >= 2 and location[0] == "destinations":
        instance = f"#{location[1]}"
    return ConfigError(instance or "<document>", field, first["msg"])


Model = TypeVar("Model", bound=BaseModel)


def validate_part(model: type[Model], data: Any, instance: str, part: str) -> Model:
    """Validate one part of an instance (its settings, an audience's extras, its connection secret):
    an invalid one is a ConfigError naming the instance and `<part>.<field path>`, never the value
    (pydantic's own message quotes the input: a numeric client secret would reach a traceback)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise ConfigError(instance, f"{part}.{field}", first["msg"]) from None


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


def load_destinations(parameter_name: str, max_age: int) -> DestinationsConfig:
    """The current configuration document, cached for `max_age` seconds per container."""
    from aws_lambda_powertools.utilities import parameters

    raw = parameters.get_parameter(parameter_name, max_age=max_age, decrypt=True)
    return _parse_cached(str(raw))


@lru_cache(maxsize=4)
def _parse_cached(text: str) -> DestinationsConfig:
    """One validation per document text, not one per batch. The models are frozen and nothing writes to
    their `settings`/`extras` dicts, so every batch can share them.

    An invalid document raises every time (lru_cache does not keep exceptions).
    """
    return parse_destinations(text)

"""The checks every destination's `validate_instance` makes, each raising a `ConfigError` that names
the instance and the field (as data: `error.instance`, `error.field`, `error.message`).

    def validate_instance(instance: DestinationInstance) -> MySettings:
        settings = validated(MySettings, instance.settings, instance.id, at="settings")
        require_identity(instance, "email")
        check_targets(instance, FIELDS, f"not a field of the vendor's record {sorted(FIELDS)}")
        check_origins(instance, {"segmentation"})
        return settings
"""

from __future__ import annotations

from collections.abc import Collection, Container
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from activation_core.config_store import describe_validation_error
from activation_core.errors import ConfigError
from activation_core.models.config import DestinationInstance, MappingRow

M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], data: Any, instance_id: str, *, at: str) -> M:
    """`data` validated by `model`; else a ConfigError naming `<at>.<field>` (never the input value)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = describe_validation_error(exc, instance_id)
        raise ConfigError(instance_id, f"{at}.{error.field}", error.message) from None


def require_identity(instance: DestinationInstance, target: str, note: str = "") -> MappingRow:
    """The instance maps `target`, and only it, as its target identity (what the vendor matches on)."""
    rows = [row for row in instance.mapping if row.identity]
    if [row.target for row in rows] != [target]:
        suffix = f" ({note})" if note else ""
        raise ConfigError(
            instance.id, "mapping", f"{target} must be mapped as the one target identity{suffix}"
        )
    return rows[0]


def check_targets(instance: DestinationInstance, allowed: Container[str], message: str) -> None:
    """Every mapping row (identity rows included) writes a target the vendor has; else `message`."""
    for row in instance.mapping:
        if row.target not in allowed:
            raise ConfigError(instance.id, f"mapping.{row.target}", message)


def check_origins(instance: DestinationInstance, accepted: Collection[str], why: str = "") -> None:
    """Every activated audience comes from an origin the vendor takes; else `'<origin>' <why>`."""
    for index, audience in enumerate(instance.audiences):
        if audience.origin not in accepted:
            reason = why or f"is not one of {sorted(accepted)}"
            raise ConfigError(instance.id, f"audiences.{index}.origin", f"'{audience.origin}' {reason}")

"""Destination configuration: connections, activated audiences and field mappings (COM-02, COM-03, COM-05).

The layer validates what is common to every destination; each destination validates its own
`settings` with its own model (see `activation_core.config_store.DestinationSpec`).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_SOURCE_ROOTS = ("identities.", "attributes.", "account.")
# The transforms a mapping row may name: part of the contract, so the models need no mapping engine.
# activation_core.mapping implements exactly these (it refuses to load otherwise).
TRANSFORM_NAMES: frozenset[str] = frozenset(
    {"trim", "lowercase", "uppercase", "sha256", "email_lc_sha256", "to_string"}
)


def transform_names(value: Any) -> tuple[str, ...]:
    """Validate a row's transform names (a name or a list of names) against TRANSFORM_NAMES."""
    items = [value] if isinstance(value, str) else list(value or ())
    unknown = [t for t in items if t not in TRANSFORM_NAMES]
    if unknown:
        raise ValueError(f"unknown transform(s) {unknown}; known: {sorted(TRANSFORM_NAMES)}")
    return tuple(items)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class MappingRow(_Strict):
    """One row: a dotted source path onto a target field, with optional transforms."""

    source: str = Field(description="Dotted path: identities.<namespace> or attributes.<path>")
    target: str = Field(min_length=1)
    transforms: tuple[str, ...] = Field(
        default=(), description=f"Applied in order; one of {sorted(TRANSFORM_NAMES)}"
    )
    identity: bool = Field(default=False, description="The target is an identity of the destination")
    required: bool = Field(
        default=False,
        description="A record without a value is rejected (skipped instead where the destination declares the gap ordinary)",
    )

    @field_validator("source")
    @classmethod
    def _source_has_known_root(cls, value: str) -> str:
        if not value.startswith(_SOURCE_ROOTS) or value.endswith(".") or ".." in value:
            raise ValueError(f"source must start with one of {_SOURCE_ROOTS} and be a dotted path")
        return value

    @field_validator("transforms", mode="before")
    @classmethod
    def _known_transforms(cls, value: Any) -> Any:
        return transform_names(value)


class ActivatedAudience(_Strict):
    """An audience chosen for a connection, with destination-specific extras (list id, mapping id, ...)."""

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    origin: str = "segmentation"
    extras: dict[str, Any] = Field(default_factory=dict)


_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def _names(value: tuple[str, ...], what: str) -> tuple[str, ...]:
    bad = [v for v in value if not _NAME.match(v)]
    if bad:
        raise ValueError(f"{what} must be 1-63 lower-case letters, digits, '-' or '_': {bad}")
    return value


class UsageLabel(_Strict):
    """A data usage label (AEP: a DULE label) and the marketing actions it forbids."""

    forbids: tuple[str, ...] = Field(description="Marketing actions a labelled attribute may not be used for")
    description: str = ""

    @field_validator("forbids")
    @classmethod
    def _action_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _names(value, "marketing actions")


class UsagePolicies(_Strict):
    """Labels on attributes, checked against each instance's marketing actions before anything leaves."""

    labels: dict[str, UsageLabel] = Field(
        default_factory=dict, description="Label name -> the marketing actions it forbids"
    )
    attributes: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="Source path (identities.<ns>, attributes.<path>, account.<path>) -> its labels; a label "
        "on a path covers everything under it",
    )

    @model_validator(mode="after")
    def _labels_are_defined(self) -> UsagePolicies:
        _names(tuple(self.labels), "label names")
        for path, labels in self.attributes.items():
            if not path.startswith(_SOURCE_ROOTS) or path.endswith(".") or ".." in path:
                raise ValueError(f"labelled path '{path}' must start with one of {_SOURCE_ROOTS}")
            unknown = sorted(set(labels) - set(self.labels))
            if unknown:
                raise ValueError(f"path '{path}' has undefined label(s) {unknown}")
        return self


class DestinationInstance(_Strict):
    """A connection plus its activation (AEP's destination connection + dataflow)."""

    id: str = Field(description="Unique id, lower-case letters, digits and dashes")
    type: str = Field(description="Destination type: the function that serves it")
    name: str = ""
    description: str = ""
    enabled: bool = True
    secret: str = Field(min_length=1, description="Secrets Manager name or ARN of the connection secret")
    consent_purpose: str | None = Field(
        default="marketing.email",
        alias="consentPurpose",
        description="profile.consents key that must not be 'n' for a profile to leave the platform (COM-06)",
    )
    missing_consent: Literal["allow", "block"] = Field(
        default="allow",
        alias="missingConsent",
        description="A profile without an answer for consentPurpose: sent ('allow') or skipped as consent ('block')",
    )
    marketing_actions: tuple[str, ...] = Field(
        default=(),
        alias="marketingActions",
        description="What this instance uses data for (e.g. email_marketing, advertising, third_party_export); "
        "a mapped attribute whose label forbids one of them is refused",
    )
    settings: dict[str, Any] = Field(default_factory=dict, description="Validated by the destination's model")
    audiences: tuple[ActivatedAudience, ...] = ()
    mapping: tuple[MappingRow, ...] = ()

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("id must be 1-63 lower-case letters, digits or dashes")
        return value

    @field_validator("audiences")
    @classmethod
    def _unique_audiences(cls, value: tuple[ActivatedAudience, ...]) -> tuple[ActivatedAudience, ...]:
        ids = [a.id for a in value]
        if len(ids) != len(set(ids)):
            raise ValueError("an audience is activated twice on this destination")
        return value

    @field_validator("mapping")
    @classmethod
    def _unique_targets(cls, value: tuple[MappingRow, ...]) -> tuple[MappingRow, ...]:
        targets = [m.target for m in value]
        if len(targets) != len(set(targets)):
            raise ValueError("a target field is mapped twice")
        return value

    @field_validator("marketing_actions")
    @classmethod
    def _action_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _names(value, "marketing actions")

    def audience(self, audience_id: str) -> ActivatedAudience | None:
        return next((a for a in self.audiences if a.id == audience_id), None)


class DestinationsConfig(_Strict):
    """The whole document stored in Parameter Store (and in the examples, `functions/*/example.json`)."""

    schema_version: str = Field(default="1", alias="schemaVersion")
    usage_policies: UsagePolicies = Field(default_factory=UsagePolicies, alias="usagePolicies")
    destinations: tuple[DestinationInstance, ...] = ()

    @model_validator(mode="after")
    def _unique_ids(self) -> DestinationsConfig:
        ids = [d.id for d in self.destinations]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"destination ids must be unique: {duplicates}")
        return self

    def of_type(self, destination_type: str) -> list[DestinationInstance]:
        return [d for d in self.destinations if d.type == destination_type and d.enabled]

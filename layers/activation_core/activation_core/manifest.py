"""The destination manifest: the one list of destinations (`functions/destinations.json`).

Everything that needs the list of destinations reads it here: the local stack, the CLI, the docs
generator, the tests and the generator of template.yaml's per-destination blocks
(`local/template_blocks.py`, `make template`). This module knows the shape of an entry, never a vendor.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from activation_core import naming

MANIFEST_FILE = "destinations.json"
Entity = Literal["profile", "account"]
# How a destination obtains its credential: tokens minted and cached in the connection secret
# (oauth.TokenProvider: writes the secret, takes a token lease) or one read as it is
# (credentials.StaticCredentials: reads the secret only). Its role gets what the mode needs, no more.
CredentialMode = Literal["oauth", "static"]
# Every destination alarms on these; a destination may add its own (`<Prefix><Name>Alarm` in the
# template, e.g. a vendor's daily quota), named here in PascalCase.
REQUIRED_ALARMS: tuple[str, ...] = ("DeadLetter", "Errors", "Backlog")
ALARM_NAME = r"^[A-Z][A-Za-z0-9]*$"


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class DestinationSpec(_Entry):
    """One destination: its function package, what it receives and how its queue feeds it."""

    type: str = Field(description="snake_case package name under functions/")
    display_name: str = Field(alias="displayName", min_length=1)
    entity: Entity = Field(description="What its events describe: a person or an account")
    detail_types: tuple[str, ...] = Field(alias="detailTypes", min_length=1)
    batch_size: int = Field(alias="batchSize", ge=1, le=10000)
    batch_window_seconds: int = Field(alias="batchWindowSeconds", ge=0, le=300)
    timeout_seconds: int = Field(alias="timeoutSeconds", ge=1, le=900)
    visibility_timeout_seconds: int = Field(alias="visibilityTimeoutSeconds", ge=0, le=43200)
    alarms: tuple[Annotated[str, Field(pattern=ALARM_NAME)], ...] = Field(default=REQUIRED_ALARMS)
    credentials: CredentialMode = Field(
        default="oauth",
        description="oauth: tokens minted and cached in the connection secret (its role may write the "
        "secret and take token leases); static: a credential read as it is (its role only reads it)",
    )
    state_keys: tuple[str, ...] = Field(
        default=(),
        alias="stateKeys",
        description="State-table partition keys its own code writes (IAM StringLike patterns), besides "
        "the ones every destination writes (token leases, erasure records, ledgers, order guards)",
    )

    @field_validator("type")
    @classmethod
    def _snake_case(cls, value: str) -> str:
        return naming.check_type(value)

    @model_validator(mode="after")
    def _queue_outlives_function(self) -> DestinationSpec:
        # Lambda's guidance for an SQS event source: visibility timeout >= 6x the function timeout.
        if self.visibility_timeout_seconds < 6 * self.timeout_seconds:
            raise ValueError(f"{self.type}: visibilityTimeoutSeconds must be >= 6 x timeoutSeconds")
        missing = [a for a in REQUIRED_ALARMS if a not in self.alarms]
        if missing:
            raise ValueError(f"{self.type}: alarms must include {missing}")
        # Least privilege: a destination's own keys are named after its type, so no two overlap.
        foreign = [k for k in self.state_keys if not re.search(rf"(^|#){self.type}[#-]", k)]
        if foreign:
            raise ValueError(
                f"{self.type}: stateKeys must name the type ('{self.type}#' or '#{self.type}-'): {foreign}"
            )
        return self

    @property
    def logical_prefix(self) -> str:
        return naming.logical_prefix(self.type)


class Manifest(_Entry):
    destinations: tuple[DestinationSpec, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Manifest:
        types = [d.type for d in self.destinations]
        if len(set(types)) != len(types):
            raise ValueError(f"a destination type is listed twice: {types}")
        return self

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(d.type for d in self.destinations)

    def get(self, destination_type: str) -> DestinationSpec | None:
        return next((d for d in self.destinations if d.type == destination_type), None)


@cache
def load(functions_dir: Path) -> Manifest:
    """The manifest in `functions_dir` (the folder of the destination packages)."""
    return Manifest.model_validate_json((functions_dir / MANIFEST_FILE).read_text())

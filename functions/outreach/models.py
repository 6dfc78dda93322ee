"""Outreach settings, connection secret, audience extras and prospect attributes (OUT-01..04).

Vendor facts (apis.md section 2, OUTREACH-OAS): prospects have `custom1`..`custom150` (nullable
strings, maxLength 32000); the writable standard attributes and their types below are the prospect
schema of the OpenAPI file without the attributes it badges read-only.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from activation_core.errors import InvalidRecordError

HOST_PATTERN = r"([a-z0-9-]+\.)*outreach\.io"
IDENTITY_TARGET = "OutreachId"
MAPPING_ID_MIN, MAPPING_ID_MAX = 1, 150  # "Outreach supports a maximum of 150 custom label fields"
CUSTOM_FIELD_LIMIT = 32_000
MAX_CONCURRENCY = 20  # parallel PATCHes per invocation at most; the HTTP client keeps as many connections
_CUSTOM = re.compile(r"^custom([1-9][0-9]{0,2})$")
_OUTREACH_ID = re.compile(r"^[0-9]{1,18}$")

AttributeKind = Literal["text", "list", "boolean", "integer", "number", "date", "datetime"]

# name -> (kind, max length of a text value). Data, not logic: one row per writable attribute.
_TEXT_255 = (
    "addressCity", "addressCountry", "addressState", "addressStreet", "addressStreet2", "addressZip",
    "angelListUrl", "callsOptStatus", "campaignName", "degree", "emailsOptStatus", "eventName",
    "externalId", "externalOwner", "externalSource", "facebookUrl", "firstName", "gender",
    "githubUsername", "googlePlusUrl", "lastName", "linkedInId", "middleName", "nickname", "occupation",
    "preferredContact", "quoraUrl", "region", "school", "sharingTeamId", "source", "stackOverflowId",
    "timeZone", "title", "twitterUsername",
)  # fmt: skip
_TEXT_1000 = ("githubUrl", "linkedInUrl", "stackOverflowUrl", "twitterUrl")
_TEXT_65535 = (
    "company", "personalNote1", "personalNote2", "specialties", "websiteUrl1", "websiteUrl2", "websiteUrl3",
)  # fmt: skip
_LISTS = ("emails", "homePhones", "mobilePhones", "otherPhones", "tags", "voipPhones", "workPhones")
PROSPECT_ATTRIBUTES: dict[str, tuple[AttributeKind, int]] = {
    **{name: ("text", 255) for name in _TEXT_255},
    **{name: ("text", 1000) for name in _TEXT_1000},
    **{name: ("text", 65_535) for name in _TEXT_65535},
    **{name: ("list", 255) for name in _LISTS},
    **{name: ("boolean", 0) for name in ("callOptedOut", "emailOptedOut", "optedOut")},
    **{name: ("date", 0) for name in ("dateOfBirth", "graduationDate", "jobStartDate")},
    **{name: ("datetime", 0) for name in ("addedAt", "availableAt", "trashedAt")},
    "linkedInConnections": ("integer", 0),
    "score": ("number", 0),
}


def custom_field(mapping_id: int) -> str:
    """The prospect attribute an audience's status is written to (OUT-03)."""
    return f"custom{mapping_id}"


def custom_field_number(name: str) -> int | None:
    """N for `customN` with N in 1..150, else None."""
    match = _CUSTOM.match(name)
    if match is None:
        return None
    number = int(match[1])
    return number if MAPPING_ID_MIN <= number <= MAPPING_ID_MAX else None


class OutreachSettings(BaseModel):
    """`settings` of an Outreach destination instance."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    max_concurrency: int = Field(
        default=16,
        alias="maxConcurrency",
        ge=1,
        le=MAX_CONCURRENCY,
        description="PATCH calls in flight per invocation",
    )
    requests_per_hour: int = Field(
        default=10_000,
        alias="requestsPerHour",
        ge=1,
        le=10_000,
        description="This connection's share of the Outreach user's 10,000 requests per hour",
    )
    remaining_reserve: int = Field(
        default=50,
        alias="remainingReserve",
        ge=0,
        le=5_000,
        description="Stop until X-RateLimit-Reset once X-RateLimit-Remaining is this low",
    )
    token_mint_interval_seconds: float = Field(
        default=60.0,
        alias="tokenMintIntervalSeconds",
        ge=0,
        le=3600,
        description=(
            "Least time between two access-token mints for this connection's user and app. Outreach "
            "allows one per 60 s (a third-party fact, not in its API reference): change it if Outreach "
            "documents otherwise"
        ),
    )
    budget_key: str | None = Field(
        default=None,
        alias="budgetKey",
        pattern=r"^[A-Za-z0-9._/-]{1,128}$",
        description="Connections authorised by the same Outreach user share one budget (default: the secret)",
    )


class OutreachConnection(BaseModel):
    """The connection secret (Secrets Manager, JSON); `refreshToken` is written by `outreach.authorize`."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    base_url: str = Field(default="https://api.outreach.io", alias="baseUrl")
    client_id: str = Field(alias="clientId", min_length=1)
    client_secret: str = Field(alias="clientSecret", min_length=1, repr=False)
    redirect_uri: str = Field(alias="redirectUri", min_length=1, description="The OAuth app's redirect URI")
    refresh_token: str = Field(default="", alias="refreshToken", repr=False)


class OutreachAudienceExtras(BaseModel):
    """`audiences[].extras` of an Outreach instance: the audience's mapping ID (OUT-03)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    mapping_id: int = Field(
        alias="mappingId",
        description="N of the prospect custom field customN that holds this audience's status (1..150)",
    )

    @field_validator("mapping_id", mode="before")
    @classmethod
    def _whole_number_in_range(cls, value: Any) -> int:
        # Whole numbers only: 4.5, true or "custom4" are configuration mistakes, not IDs.
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("must be a whole number")
        if not MAPPING_ID_MIN <= value <= MAPPING_ID_MAX:
            raise ValueError(f"must be between {MAPPING_ID_MIN} and {MAPPING_ID_MAX}")
        return value


def prospect_id(value: Any) -> int:
    """The numeric OutreachId (the id in the prospect's URL) or a rejection naming it (OUT-02)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidRecordError(IDENTITY_TARGET, "OutreachId is mandatory and the profile has none")
    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not _OUTREACH_ID.match(text) or int(text) == 0:
        raise InvalidRecordError(IDENTITY_TARGET, "OutreachId must be a positive whole number")
    return int(text)


def _scalar_text(target: str, value: Any, limit: int) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidRecordError(target, f"'{target}' must be text")
    text = str(value)
    if len(text) > limit:
        raise InvalidRecordError(target, f"'{target}' is longer than {limit} characters")
    return text


def attribute_value(target: str, value: Any) -> Any:  # noqa: PLR0911 - one return per attribute kind
    """A mapped value as the prospect attribute `target` takes it; invalid values name the target."""
    if custom_field_number(target) is not None:
        return _scalar_text(target, value, CUSTOM_FIELD_LIMIT)
    kind, limit = PROSPECT_ATTRIBUTES[target]
    if kind == "text":
        return _scalar_text(target, value, limit)
    if kind == "list":
        items = value if isinstance(value, list | tuple) else [value]
        return [_scalar_text(target, item, limit) for item in items]
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise InvalidRecordError(target, f"'{target}' must be true or false")
    if kind in ("integer", "number"):
        try:
            number = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number) or (kind == "integer" and not number.is_integer()):
            raise InvalidRecordError(target, f"'{target}' must be a finite {kind}")
        return int(number) if kind == "integer" else number
    text = _scalar_text(target, value, 64)
    try:
        if kind == "date":
            date.fromisoformat(text)
        else:
            datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRecordError(target, f"'{target}' must be an ISO 8601 {kind}") from None
    return text


def is_mappable_target(target: str) -> bool:
    return target in PROSPECT_ATTRIBUTES or custom_field_number(target) is not None


# Published in shared/schemas/ (make schemas).
JSON_SCHEMAS: dict[str, type[BaseModel]] = {
    "outreach-settings": OutreachSettings,
    "outreach-connection-secret": OutreachConnection,
    "outreach-audience-extras": OutreachAudienceExtras,
}

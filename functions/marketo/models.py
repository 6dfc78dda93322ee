"""Marketo Engage settings, connection secret, audience extras and lead payloads (MKT-01, 05, 06, 09).

The settings are AEP's connection + dataflow fields: Munchkin ID, workspace, sync type, partition,
Marketo dedupe field and person action; each activated audience names its static list.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from activation_core.errors import InvalidRecordError

# The one target identity (AEP's `DedupeField`): its value is what matches a profile to a lead.
DEDUPE_TARGET = "DedupeField"
# Marketo needs these to create a lead (MKT-06); `email` may come from the dedupe field itself.
CREATE_REQUIRED_FIELDS = ("firstName", "lastName", "email")
# Lead ID is system-managed and ECID is not a Marketo field: neither may deduplicate (MKT-05).
REFUSED_DEDUPE_FIELDS = frozenset({"id", "leadid", "lead id", "lead_id", "ecid"})
# An ECID identity may not feed the dedupe field either (AEP refuses it as a dedupe source).
REFUSED_DEDUPE_SOURCES = frozenset({"identities.ecid"})
# Targets Marketo manages itself: sending them would be refused or would hijack another lead.
SYSTEM_FIELDS = frozenset({"id", "createdAt", "updatedAt", "leadPartitionId"})
MUNCHKIN_ID = r"[0-9]{3}-[A-Z]{3}-[0-9]{3}"
DEFAULT_PARTITION = "Default"
# Marketo's documented ceilings per instance (apis.md 1.8): 100 calls / 20 s, 10 calls in flight.
RATE_LIMIT_CALLS = 100
RATE_LIMIT_SECONDS = 20.0
CONCURRENCY_LIMIT = 10
# The daily quota of a typical subscription (apis.md 1.8: "at least 10,000 ... 50,000 or more is common").
DAILY_QUOTA_CALLS = 50_000
DAY_SECONDS = 86_400.0
BATCH_LIMIT = 300  # records per Sync Leads call, ids per list call, filter values per lookup

_TEXT_LIMIT = 2000
_ASCII = re.compile(r"^[\x21-\x7e]+$")


class SyncType(StrEnum):
    AUDIENCE_ONLY = "audience_only"
    PROFILE_ONLY = "profile_only"
    AUDIENCE_AND_PROFILE = "audience_and_profile"

    @property
    def syncs_profiles(self) -> bool:
        return self is not SyncType.AUDIENCE_ONLY

    @property
    def manages_lists(self) -> bool:
        return self is not SyncType.PROFILE_ONLY


class PersonAction(StrEnum):
    UPDATE_EXISTING_ONLY = "update_existing_only"
    UPDATE_AND_CREATE = "update_and_create"


class MarketoSettings(BaseModel):
    """`settings` of a Marketo destination instance (MKT-01)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    munchkin_id: str = Field(
        alias="munchkinId",
        pattern=f"^{MUNCHKIN_ID}$",
        description="Marketo Munchkin (account) ID, e.g. 284-RPR-133: the API is https://{munchkinId}.mktorest.com",
    )
    workspace: str = Field(
        default="Default",
        min_length=1,
        max_length=255,
        description="Marketo workspace of the dataflow: the list folder (listFolder) is looked up in it; "
        "the partition's workspace is not exposed by the REST API",
    )
    sync_type: SyncType = Field(
        alias="syncType", description="audience_only, profile_only or audience_and_profile"
    )
    person_action: PersonAction | None = Field(
        default=None,
        alias="personAction",
        description="update_existing_only or update_and_create; required by the profile sync types, "
        "not applicable to audience_only",
    )
    partition: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Lead partition new leads are created in, by name or id (profile sync types only; "
        "Default when unset); checked against Marketo's partitions when the instance connects",
    )
    dedupe_field: str = Field(
        alias="dedupeField",
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z][A-Za-z0-9_]*$",
        description="Marketo field (REST name, searchable) that matches profiles to leads, e.g. email",
    )
    list_folder: str | None = Field(
        default=None,
        alias="listFolder",
        min_length=1,
        max_length=255,
        description="Marketing folder (name, in the workspace) where the static list of an audience without "
        "listId is created, named after the audience (audience sync types)",
    )
    calls_per_window: int = Field(
        default=RATE_LIMIT_CALLS,
        alias="callsPer20Seconds",
        ge=1,
        le=RATE_LIMIT_CALLS,
        description="Calls this destination may make per 20 s on the instance (Marketo's limit is 100, shared)",
    )
    concurrent_calls: int = Field(
        default=CONCURRENCY_LIMIT,
        alias="concurrentCalls",
        ge=1,
        le=CONCURRENCY_LIMIT,
        description="Calls in flight on the instance (Marketo's limit is 10, shared)",
    )

    @property
    def partition_name(self) -> str:
        """Where new leads go (MKT-07): the chosen partition, else Default."""
        return self.partition or DEFAULT_PARTITION


class MarketoConnection(BaseModel):
    """The connection secret (Secrets Manager, JSON): a LaunchPoint custom service's credentials."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    client_id: str = Field(alias="clientId", min_length=1)
    client_secret: str = Field(alias="clientSecret", min_length=1, repr=False)
    base_url: str | None = Field(
        default=None,
        alias="baseUrl",
        description="Defaults to https://{munchkinId}.mktorest.com; must be that host (loopback in local mode)",
    )


class MarketoAudience(BaseModel):
    """`extras` of an audience activated on a Marketo instance."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    list_id: int | None = Field(
        default=None,
        alias="listId",
        gt=0,
        description="Marketo static list id (audience sync types); unset: the list named after the audience "
        "is found, or created in settings.listFolder",
    )
    audience_type: str = Field(
        default="person",
        alias="audienceType",
        description="person (the only type Marketo accepts), account, prospect or dataset",
    )

    @field_validator("audience_type")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower()


def normalize_key(value: str) -> str:
    """How two dedupe values compare: Marketo matches case-insensitively."""
    return value.strip().casefold()


def dedupe_value(value: Any) -> str:
    """The dedupe value as a filter value: text, no comma (filterValues is comma-separated)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRecordError(DEDUPE_TARGET, f"'{DEDUPE_TARGET}' must be text or an integer")
    text = str(value).strip()
    if not text:
        raise InvalidRecordError(DEDUPE_TARGET, f"'{DEDUPE_TARGET}' is empty")
    if "," in text or len(text) > 255:
        raise InvalidRecordError(DEDUPE_TARGET, f"'{DEDUPE_TARGET}' holds a comma or exceeds 255 characters")
    return text


def build_lead(fields: dict[str, Any], dedupe_field: str, dedupe: str) -> dict[str, Any]:
    """The Sync Leads input record: mapped fields plus the dedupe field (it must be in every record)."""
    lead: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, dict | list):
            # Marketo lead fields are scalar: arrays, objects and maps are not supported.
            raise InvalidRecordError(name, f"'{name}' must be a single value, not a list or object")
        if isinstance(value, str):
            text = value.strip()
            if len(text) > _TEXT_LIMIT:
                raise InvalidRecordError(name, f"'{name}' is longer than {_TEXT_LIMIT} characters")
            lead[name] = text
        else:
            lead[name] = value
    lead[dedupe_field] = dedupe
    email = lead.get("email")
    if isinstance(email, str) and email and not _ASCII.match(email):
        raise InvalidRecordError("email", "'email' must be ASCII without spaces (a Marketo rule)")
    return lead


# Published in shared/schemas/ (make schemas).
JSON_SCHEMAS: dict[str, type[BaseModel]] = {
    "marketo-settings": MarketoSettings,
    "marketo-connection-secret": MarketoConnection,
    "marketo-audience-extras": MarketoAudience,
}

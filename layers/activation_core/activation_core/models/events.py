"""The event contract upstream systems publish to the bus (schemaVersion 1).

JSON Schemas in the project's `shared/schemas/` are generated from these models
(`python -m local.schemas`) and checked for drift by a test.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1"

PROFILE_MEMBERSHIP_CHANGED = "Profile Audience Membership Changed"
PROFILE_UPDATED = "Profile Updated"
ACCOUNT_MEMBERSHIP_CHANGED = "Account Audience Membership Changed"
PROFILE_ERASURE_REQUESTED = "Profile Erasure Requested"
EVENT_SOURCE = "activation.profiles"


class _Contract(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True, defer_build=True)


class MembershipStatus(StrEnum):
    """The platform's segment membership statuses: `existing` is a member that was already in the
    audience (reported again, e.g. on re-evaluation); it is a current member, like `realized`."""

    REALIZED = "realized"
    EXISTING = "existing"
    EXITED = "exited"

    @property
    def is_member(self) -> bool:
        return self is not MembershipStatus.EXITED


class AudienceMembership(_Contract):
    id: str = Field(min_length=1, max_length=256)
    name: str = Field(min_length=1, max_length=512)
    status: MembershipStatus
    origin: str = Field(default="segmentation", max_length=64)
    updated_at: AwareDatetime | None = Field(default=None, alias="updatedAt")


class Profile(_Contract):
    identities: dict[str, str] = Field(default_factory=dict)
    attributes: dict[str, Any] = Field(default_factory=dict)
    consents: dict[str, Literal["y", "n"]] = Field(default_factory=dict)


class Account(_Contract):
    identities: dict[str, str] = Field(default_factory=dict)
    attributes: dict[str, Any] = Field(default_factory=dict)


class _DetailBase(_Contract):
    schema_version: Literal["1"] = Field(alias="schemaVersion")
    event_id: str = Field(alias="eventId", min_length=1, max_length=256)
    # Time-zone aware only: a naive time cannot be ordered against another event (issue 14).
    occurred_at: AwareDatetime = Field(alias="occurredAt")
    audiences: list[AudienceMembership] = Field(default_factory=list, max_length=1000)
    change_origin: Literal["stream", "snapshot"] = Field(
        default="stream",
        alias="changeOrigin",
        description="'snapshot': the change was computed from an audience snapshot (backfill, diff, resync)",
    )
    snapshot_id: str | None = Field(default=None, alias="snapshotId", max_length=128)
    target_instances: tuple[str, ...] | None = Field(
        default=None,
        alias="targetInstances",
        min_length=1,
        max_length=100,
        description="Only these destination instances receive the event; default: every instance",
    )
    target_types: tuple[str, ...] | None = Field(
        default=None,
        alias="targetTypes",
        min_length=1,
        max_length=20,
        description="Destination types the bus routes the event to (set with targetInstances)",
    )


class ProfileEventDetail(_DetailBase):
    """`detail` of `Profile Audience Membership Changed` and `Profile Updated`."""

    profile: Profile


class AccountEventDetail(_DetailBase):
    """`detail` of `Account Audience Membership Changed`."""

    account: Account


class ErasureRequestDetail(_DetailBase):
    """`detail` of `Profile Erasure Requested`: remove the person from every destination (GDPR art. 17).

    `requestId` names the data subject request; outcomes are listed per request id
    (`activation erasure status REQUEST_ID`). Only identities are needed, and only they are read.
    """

    request_id: str = Field(alias="requestId", min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
    profile: Profile


class EventEnvelope(_Contract):
    """The EventBridge envelope as an SQS target receives it."""

    id: str
    detail_type: str = Field(alias="detail-type")
    source: str
    time: datetime | None = None
    detail: dict[str, Any]

"""The ingestion config (SFMC-01, SFMC-03), the connection secret (SFMC-02) and the Step Functions
payloads the tasks exchange. JSON Schemas of the first two are published by `make schemas`.

The ingestion config lives in its own SSM parameter (stack output `SfmcIngestionConfigParameterName`):
which data extensions to read (by external key), their primary key, the incremental (delta) column,
the field types (SFMC returns every value as a string), the mapping onto the profile contract, the
audiences the resulting profiles are members of, and a schedule.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from activation_core.models.config import TRANSFORM_NAMES, transform_names

# SFMC stores dates in US Central Standard Time without daylight saving (TAP-ET uses a fixed -6 "to
# avoid DST impact", apis.md 3.4): the default account time zone.
DEFAULT_TIME_ZONE = "-06:00"
MAX_PAGE_SIZE = 2500  # [INFER] apis.md 3.3: the SDK default and the observed maximum
MAX_CONCURRENCY = 10
# A row may become visible a little after the value it is stamped with (an import or automation still
# running when a run reads): re-read this far behind the watermark.
DEFAULT_LOOK_BACK_SECONDS = 600
# Pages one execution of the pages state machine reads before the next range runs in a child
# execution: 500 pages at worst 37 history events each (retries included) stay under Step Functions'
# 25,000-event history limit (tests/unit/sfmc_ingestion/test_statemachine.py computes it).
MAX_PAGES_PER_EXECUTION = 500
# Data extensions in one ingestion config: each adds at most ~30 events to the run's own history.
MAX_DATA_EXTENSIONS = 200

FieldType = Literal["Text", "Number", "Decimal", "Boolean", "Date", "EmailAddress", "Phone", "Locale"]
TEXT_TYPES = frozenset({"Text", "EmailAddress", "Phone", "Locale"})

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# Data extension field names: letters, digits, underscores (spaces are not allowed in SFMC field names).
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# External keys are free text in SFMC (often GUIDs); keep to what is safe in a URL path and an S3 key.
_EXTERNAL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
_OFFSET = re.compile(r"^(?:UTC)?([+-])(\d{2}):(\d{2})$")
_TARGET = re.compile(r"^(identities|attributes|consents)\.[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")


# SFMC-01: data extensions only. SFMC's standard system tables are refused by name, wherever a key is
# accepted (config, client, discovery):
# - system data views: every one is named with a leading underscore (_Subscribers, _Sent, _Open,
#   _Click, _Bounce, _Job, _Journey, _ListSubscribers, _EnterpriseAttribute, ...);
# - native objects: Marketing Cloud's built-in objects (the SOAP API's standard objects: subscribers,
#   lists, sends, emails, tracking events, ...), which have predefined fields and are not data
#   extensions; a data extension given one of their names is refused too, to avoid the confusion;
# - synchronized data extensions (Marketing Cloud Connect): system-managed, read-only copies of the
#   Salesforce CRM's native objects, named `<Object>_Salesforce` (`_Salesforce_<n>` for more orgs).
NATIVE_OBJECTS = frozenset(
    name.lower()
    for name in (
        "Account", "AccountUser", "BounceEvent", "BusinessUnit", "Campaign", "ClickEvent",
        "ContentArea", "DataExtension", "DataExtensionField", "DataExtensionObject", "Email",
        "EmailSendDefinition", "FilterDefinition", "ForwardedEmailEvent", "ImportDefinition", "List",
        "ListSubscriber", "NotSentEvent", "OpenEvent", "QueryDefinition", "Send", "SendClassification",
        "SenderProfile", "SentEvent", "SMSTriggeredSend", "Subscriber", "SubscriberList",
        "SuppressionListDefinition", "SurveyEvent", "TriggeredSendDefinition", "UnsubEvent",
    )
)  # fmt: skip
_SYNCHRONIZED = re.compile(r"_salesforce(_\d+)?$", re.IGNORECASE)


def system_object_reason(key: str) -> str | None:
    """Why `key` is not a data extension this source may read (None: it may be one)."""
    if key.startswith("_"):
        return "system data views (names starting with '_') are not data extensions"
    if key.lower() in NATIVE_OBJECTS:
        return f"'{key}' is a Marketing Cloud native object, not a data extension"
    if _SYNCHRONIZED.search(key):
        return "synchronized data extensions (<Object>_Salesforce) are copies of Salesforce native objects"
    return None


def parse_time_zone(text: str) -> tzinfo:
    """`-06:00` / `UTC-06:00` (fixed offset) or an IANA name such as `America/Chicago`."""
    match = _OFFSET.match(text)
    if match:
        sign, hours, minutes = match.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes))
        if delta > timedelta(hours=14):
            raise ValueError(f"offset {text!r} is out of range")
        return timezone(-delta if sign == "-" else delta)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{text!r} is neither a UTC offset (-06:00) nor an IANA time zone name") from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class MappingRule(_Strict):
    """One data extension column onto one profile target."""

    column: str = Field(description="Data extension field name (matched case-insensitively)")
    target: str = Field(
        description="identities.<namespace>, attributes.<dotted.path> or consents.<purpose> (y/n)"
    )
    transforms: tuple[str, ...] = Field(
        default=(), description=f"Applied in order; one of {sorted(TRANSFORM_NAMES)}"
    )
    required: bool = Field(
        default=False, description="A row without a value is counted failed, not published"
    )

    @field_validator("column")
    @classmethod
    def _column_name(cls, value: str) -> str:
        if not _COLUMN.match(value):
            raise ValueError("column must be a data extension field name (letters, digits, underscores)")
        return value

    @field_validator("target")
    @classmethod
    def _target_path(cls, value: str) -> str:
        if not _TARGET.match(value):
            raise ValueError("target must be identities.<ns>, attributes.<dotted.path> or consents.<purpose>")
        return value

    @field_validator("transforms", mode="before")
    @classmethod
    def _known_transforms(cls, value: Any) -> Any:
        return transform_names(value)


class AudienceRef(_Strict):
    """An audience every profile from this data extension is a realized member of (an upload audience)."""

    id: str = Field(min_length=1, max_length=256)
    name: str = Field(min_length=1, max_length=512)
    origin: str = Field(default="upload", max_length=64)


class Schedule(_Strict):
    """How often the data extension is due (AEP: hourly or slower); the scheduler ticks hourly."""

    frequency: Literal["hour", "day", "week"] = "hour"
    interval: int = Field(default=1, ge=1, le=1000)

    def period(self) -> timedelta:
        unit = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}
        return unit[self.frequency] * self.interval


class DataExtensionConfig(_Strict):
    """One data extension to ingest (SFMC-01: data extensions only, never system data views)."""

    key: str = Field(description="External key (CustomerKey) of the data extension")
    name: str = ""
    enabled: bool = True
    primary_key: tuple[str, ...] = Field(alias="primaryKey", min_length=1, max_length=10)
    incremental_column: str | None = Field(
        default=None,
        alias="incrementalColumn",
        description="A Date field: rows with a value >= the watermark are read; null = full load each run",
    )
    fields: dict[str, FieldType] = Field(
        default_factory=dict, description="Field types (SFMC FieldType); undeclared fields stay text"
    )
    mapping: tuple[MappingRule, ...] = Field(min_length=1)
    audiences: tuple[AudienceRef, ...] = ()
    schedule: Schedule = Schedule()
    page_size: int = Field(default=MAX_PAGE_SIZE, alias="pageSize", ge=1, le=MAX_PAGE_SIZE)
    deletion_check: Schedule | None = Field(
        default=None,
        alias="deletionCheck",
        description="How often every primary key is compared with the previous check's: rows deleted in SFMC "
        "become exits of this data extension's audiences (null: never)",
    )
    look_back_seconds: int = Field(
        default=DEFAULT_LOOK_BACK_SECONDS,
        alias="lookBackSeconds",
        ge=0,
        le=86400,
        description="Each run re-reads rows stamped up to this long before the watermark (rows that became "
        "visible late); the ones already processed are recognised and not published again",
    )

    @field_validator("key")
    @classmethod
    def _data_extension_key(cls, value: str) -> str:
        reason = system_object_reason(value)
        if reason is not None:
            raise ValueError(reason)
        if not _EXTERNAL_KEY.match(value):
            raise ValueError("key must be 1-200 letters, digits, '.', '_' or '-'")
        return value

    @field_validator("primary_key", "fields", "incremental_column")
    @classmethod
    def _columns(cls, value: Any) -> Any:
        names = value if isinstance(value, tuple | dict) else ([] if value is None else [value])
        for name in names:
            if not _COLUMN.match(name):
                raise ValueError(f"{name!r} is not a data extension field name")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DataExtensionConfig:
        types = self.field_types()
        if len(types) != len(self.fields):
            raise ValueError("fields: a field is declared twice (names are case-insensitive)")
        if self.incremental_column is not None and types.get(self.incremental_column.lower()) != "Date":
            raise ValueError(
                f"incrementalColumn '{self.incremental_column}' must be declared as a Date field in 'fields'"
            )
        targets = [rule.target for rule in self.mapping]
        if len(targets) != len(set(targets)):
            raise ValueError("mapping: a target is mapped twice")
        if not any(t.startswith("identities.") for t in targets):
            raise ValueError("mapping: at least one identities.<namespace> target is required")
        ids = [a.id for a in self.audiences]
        if len(ids) != len(set(ids)):
            raise ValueError("audiences: an audience is listed twice")
        return self

    def field_types(self) -> dict[str, FieldType]:
        """Declared types by lower-cased field name (SFMC returns names in any case)."""
        return {name.lower(): kind for name, kind in self.fields.items()}


class SourceConfig(_Strict):
    """One SFMC connection (its secret) and the data extensions read through it."""

    id: str
    type: Literal["sfmc"] = "sfmc"
    name: str = ""
    description: str = ""
    enabled: bool = True
    secret: str = Field(
        min_length=1, description="Secrets Manager name of the connection (under <stack>/sfmc/)"
    )
    time_zone: str = Field(
        default=DEFAULT_TIME_ZONE,
        alias="timeZone",
        description="Account time zone of SFMC date values: UTC offset (-06:00) or IANA name",
    )
    filter_date_format: str = Field(
        default="%Y-%m-%dT%H:%M:%S",
        alias="filterDateFormat",
        description="strftime format of the watermark in $filter, in the account time zone [INFER]",
    )
    max_concurrency: int = Field(default=4, alias="maxConcurrency", ge=1, le=MAX_CONCURRENCY)
    pages_per_execution: int = Field(
        default=MAX_PAGES_PER_EXECUTION,
        alias="pagesPerExecution",
        ge=1,
        le=MAX_PAGES_PER_EXECUTION,
        description="Pages read by one Step Functions execution before the next range starts in a child "
        "execution (keeps every execution history bounded); rarely changed",
    )
    data_extensions: tuple[DataExtensionConfig, ...] = Field(alias="dataExtensions", min_length=1)

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("id must be 1-63 lower-case letters, digits or dashes")
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        parse_time_zone(value)
        return value

    @field_validator("filter_date_format")
    @classmethod
    def _format(cls, value: str) -> str:
        sample = datetime(2024, 6, 23, 13, 4, 5, tzinfo=UTC).strftime(value)
        if "'" in sample or not re.search(r"\d", sample):
            raise ValueError("filterDateFormat must render digits and no quote")
        return value

    @field_validator("data_extensions")
    @classmethod
    def _unique_keys(cls, value: tuple[DataExtensionConfig, ...]) -> tuple[DataExtensionConfig, ...]:
        keys = [d.key.lower() for d in value]
        if len(keys) != len(set(keys)):
            raise ValueError("a data extension is listed twice")
        return value

    def zone(self) -> tzinfo:
        return parse_time_zone(self.time_zone)


class IngestionConfig(_Strict):
    """The whole document in the ingestion config parameter."""

    schema_version: Literal["1"] = Field(default="1", alias="schemaVersion")
    sources: tuple[SourceConfig, ...] = ()

    @field_validator("sources")
    @classmethod
    def _unique_ids(cls, value: tuple[SourceConfig, ...]) -> tuple[SourceConfig, ...]:
        ids = [s.id for s in value]
        if len(ids) != len(set(ids)):
            raise ValueError("source ids must be unique")
        if sum(len(s.data_extensions) for s in value) > MAX_DATA_EXTENSIONS:
            raise ValueError(
                f"at most {MAX_DATA_EXTENSIONS} data extensions in one ingestion config (one run's history)"
            )
        return value


class SfmcConnection(BaseModel):
    """The connection secret (Secrets Manager, JSON); the tasks add `cachedToken` beside it."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    client_id: str = Field(alias="clientId", min_length=1)
    client_secret: str = Field(alias="clientSecret", min_length=1, repr=False)
    auth_base_uri: str = Field(
        alias="authBaseUri",
        min_length=1,
        description="Authentication base URI (or its subdomain); anything after "
        ".auth.marketingcloudapis.com/ is removed",
    )
    account_id: str | None = Field(
        default=None, alias="accountId", pattern=r"^[0-9]{1,20}$", description="MID"
    )
    rest_base_uri: str | None = Field(
        default=None,
        alias="restBaseUri",
        description="Only until the first token: then the REST instance URL SFMC returns with it is used",
    )
    soap_instance_url: str | None = Field(
        default=None,
        alias="soapInstanceUrl",
        description="Written by the stack: the SOAP instance URL the token endpoint returned (discovery)",
    )
    rest_instance_url: str | None = Field(
        default=None,
        alias="restInstanceUrl",
        description="Written by the stack: the REST instance URL the token endpoint returned (the installed "
        "package's endpoint); never typed by hand",
    )


# --- Step Functions payloads -----------------------------------------------------------------------


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Watermark(_Payload):
    """Where the last successful run stopped: rows >= value - lookBack are read again, minus the
    `recent` rows the run already processed."""

    value: str | None = None  # ISO 8601 UTC of the highest incremental value processed
    # Primary-key digests of the rows processed in the look-back window, by incremental value (ISO
    # UTC); complete for values >= `recentFrom`. The plan leaves them in the state table (only
    # `recentCount` travels in the Step Functions state) and the page task loads them when needed.
    recent: dict[str, list[str]] = Field(default_factory=dict)
    recent_count: int = Field(default=0, alias="recentCount")
    recent_from: str | None = Field(default=None, alias="recentFrom")
    version: int = 0
    last_success_at: str | None = Field(default=None, alias="lastSuccessAt")


class SourceRef(_Payload):
    id: str
    secret: str
    time_zone: str = Field(default=DEFAULT_TIME_ZONE, alias="timeZone")
    filter_date_format: str = Field(default="%Y-%m-%dT%H:%M:%S", alias="filterDateFormat")
    pages_per_execution: int = Field(default=MAX_PAGES_PER_EXECUTION, alias="pagesPerExecution")


class Cursor(_Payload):
    next: str | None = None
    page: int = 0
    done: bool = False
    # Another page follows in this same execution (false at the end of an execution's range: the
    # pages state machine then starts the next range in a child execution).
    more: bool = False


class Progress(_Payload):
    rows_read: int = Field(default=0, alias="rowsRead")
    rows_landed: int = Field(default=0, alias="rowsLanded")
    events_published: int = Field(default=0, alias="eventsPublished")
    rows_failed: int = Field(default=0, alias="rowsFailed")
    rows_duplicate: int = Field(default=0, alias="rowsDuplicate")
    rows_expected: int | None = Field(default=None, alias="rowsExpected")
    pages: int = 0
    objects: int = 0
    high: Watermark = Field(default_factory=Watermark)
    request_token: str | None = Field(default=None, alias="requestToken")
    consistent: bool = True
    failure_reasons: dict[str, int] = Field(default_factory=dict, alias="failureReasons")
    keys_seen: int = Field(default=0, alias="keysSeen")  # a deletion check: primary keys recorded


class WorkItem(_Payload):
    """One data extension's state while the Map iteration pages through it."""

    run_id: str = Field(alias="runId")
    started_at: str = Field(alias="startedAt")
    source: SourceRef
    data_extension: DataExtensionConfig = Field(alias="dataExtension")
    watermark: Watermark = Field(default_factory=Watermark)
    cursor: Cursor = Field(default_factory=Cursor)
    progress: Progress = Field(default_factory=Progress)
    # "rows": read new and changed rows (incremental or full load); "keys": a deletion check, reading
    # every primary key (and the identities) to find the rows deleted since the previous check.
    mode: Literal["rows", "keys"] = "rows"

    def dump(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json")


# Published in shared/schemas/ (make schemas).
JSON_SCHEMAS: dict[str, type[BaseModel]] = {
    "sfmc-ingestion-config": IngestionConfig,
    "sfmc-connection-secret": SfmcConnection,
}

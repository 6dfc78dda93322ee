"""`discover`: the account's data extensions and their fields, as an ingestion config skeleton to edit
(SFMC-03; what a Singer tap's discovery does), so nobody types keys, primary keys and field types.

SOAP Retrieve (apis.md 3.2, option B, the well-trodden path): `DataExtension` (CustomerKey, Name,
CategoryID) and `DataExtensionField` (Name, FieldType, IsPrimaryKey, IsRequired, the data extension's
CustomerKey). System data views, native objects and synchronized data extensions are left out by the
same rule the config applies (`models.system_object_reason`), and listed with the reason.

The skeleton validates as it is, with every data extension disabled: the operator enables the ones
to ingest, checks the mapping and the audiences, then `validate` and `push-config`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sfmc_ingestion.models import MAX_PAGE_SIZE, FieldType, system_object_reason

DATA_EXTENSION_PROPERTIES = ("CustomerKey", "Name", "CategoryID")
FIELD_PROPERTIES = ("Name", "FieldType", "IsPrimaryKey", "IsRequired", "DataExtension.CustomerKey")
# SFMC FieldType -> the config's types; anything else (e.g. a future type) stays text.
_TYPES: dict[str, FieldType] = {
    "text": "Text", "number": "Number", "decimal": "Decimal", "boolean": "Boolean", "date": "Date",
    "emailaddress": "EmailAddress", "phone": "Phone", "locale": "Locale",
}  # fmt: skip
# A change-stamp column, in this order of preference (TAP-ET's replication keys, then common names).
_INCREMENTAL = ("modifieddate", "_modifieddate", "lastmodifieddate", "updatedat", "joindate", "_createddate")
_SUBSCRIBER_KEYS = ("subscriberkey", "contactkey")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")

Retrieve = Callable[[str, Sequence[str]], list[dict[str, str]]]


@dataclass
class DiscoveredField:
    name: str
    kind: FieldType
    primary_key: bool
    required: bool


@dataclass
class DiscoveredDataExtension:
    key: str
    name: str
    fields: list[DiscoveredField] = field(default_factory=list)
    excluded: str | None = None  # why it is not offered (system data view, native object, ...)


def discover(retrieve: Retrieve) -> list[DiscoveredDataExtension]:
    """Every data extension of the account (by key), with its fields; excluded ones carry the reason."""
    found = {
        obj["CustomerKey"]: DiscoveredDataExtension(
            obj["CustomerKey"],
            obj.get("Name", obj["CustomerKey"]),
            excluded=system_object_reason(obj["CustomerKey"]),
        )
        for obj in retrieve("DataExtension", DATA_EXTENSION_PROPERTIES)
        if obj.get("CustomerKey")
    }
    for obj in retrieve("DataExtensionField", FIELD_PROPERTIES):
        owner = found.get(obj.get("DataExtension.CustomerKey", ""))
        if owner is None or not obj.get("Name"):
            continue
        owner.fields.append(
            DiscoveredField(
                name=obj["Name"],
                kind=_TYPES.get(obj.get("FieldType", "").lower(), "Text"),
                primary_key=obj.get("IsPrimaryKey", "").lower() == "true",
                required=obj.get("IsRequired", "").lower() == "true",
            )
        )
    return sorted(found.values(), key=lambda de: de.key.lower())


def _attribute(name: str) -> str:
    return name[:1].lower() + name[1:]


def skeleton_entry(de: DiscoveredDataExtension) -> dict[str, Any] | None:
    """One `dataExtensions[]` entry (disabled), or None when nothing can be proposed (no usable field)."""
    fields = [f for f in de.fields if _COLUMN.match(f.name)]
    if de.excluded or not fields:
        return None
    primary = [f.name for f in fields if f.primary_key] or [fields[0].name]
    dates = {f.name.lower(): f.name for f in fields if f.kind == "Date"}
    incremental = next((dates[n] for n in _INCREMENTAL if n in dates), None)
    mapping: list[dict[str, Any]] = []
    identity = False
    for f in fields:
        lower = f.name.lower()
        if f.kind == "EmailAddress" and not any(m["target"] == "identities.email" for m in mapping):
            mapping.append(
                {"column": f.name, "target": "identities.email", "transforms": ["trim", "lowercase"]}
            )
            identity = True
        elif lower in _SUBSCRIBER_KEYS and not any(
            m["target"] == "identities.sfmcSubscriberKey" for m in mapping
        ):
            mapping.append({"column": f.name, "target": "identities.sfmcSubscriberKey", "required": True})
            identity = True
        else:
            mapping.append({"column": f.name, "target": f"attributes.{_attribute(f.name)}"})
    if not identity:  # an identity is required: propose the primary key, to be checked
        first = next(m for m in mapping if m["column"] == primary[0])
        first["target"] = "identities.sfmcKey"
    return {
        "key": de.key,
        "name": de.name,
        "enabled": False,
        "primaryKey": primary,
        "incrementalColumn": incremental,
        "fields": {f.name: f.kind for f in fields},
        "mapping": mapping,
        "audiences": [],
        "schedule": {"frequency": "day", "interval": 1},
        "pageSize": MAX_PAGE_SIZE,
    }


def skeleton(found: Sequence[DiscoveredDataExtension], *, source_id: str, secret: str) -> dict[str, Any]:
    """An ingestion config document: one source, every offered data extension disabled."""
    entries = [e for e in (skeleton_entry(de) for de in found) if e is not None]
    return {
        "schemaVersion": "1",
        "sources": [
            {
                "id": source_id,
                "name": "Salesforce Marketing Cloud (discovered)",
                "secret": secret,
                "dataExtensions": entries,
            }
        ],
    }

"""Data extension rows -> typed values -> profile events (SFMC-03, SFMC-04).

SFMC returns every value as a string (apis.md 3.3): dates as US-locale text in the account's time zone
(`6/23/2024 12:00:00 AM`), booleans as `True`/`False`, numbers as text, null as `""`. Each row is typed
by the declared field types, mapped onto the profile contract, and becomes one `Profile Updated`
event; a row that cannot be mapped is counted failed (and still landed), never silently dropped.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from activation_core.mapping import TRANSFORMS
from activation_core.models.events import PROFILE_UPDATED
from sfmc_ingestion.models import TEXT_TYPES, DataExtensionConfig, FieldType, SourceRef

EVENT_SOURCE = "sfmc.ingestion"
DETAIL_TYPE = PROFILE_UPDATED
_SFMC_FORMATS = ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M %p", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y")
_US_DATE = re.compile(
    r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s*([AaPp][Mm]))?)?$"
)
_TRUE = frozenset({"true", "1", "yes", "y"})
_ABSENT: Any = object()  # a primary-key column the row does not carry
_FALSE = frozenset({"false", "0", "no", "n"})


class ColumnError(ValueError):
    """A value that cannot be used, naming its column (never the value: it may be PII)."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


def parse_date(text: str, zone: tzinfo) -> datetime:
    """An SFMC date string in the account's zone (or ISO 8601) -> an aware UTC datetime."""
    value = text.strip()
    parsed = _parse_us(value)
    if parsed is None:
        for fmt in _SFMC_FORMATS:
            try:
                parsed = datetime.strptime(value, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"not an SFMC date: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


def _parse_us(value: str) -> datetime | None:
    """The common `M/D/YYYY h:mm:ss AM` form without strptime (5x faster: every row has dates)."""
    fast = _parse_sfmc_clock(value)
    if fast is not None:
        return fast
    match = _US_DATE.match(value)
    if match is None:
        return None
    month, day, year, hour, minute, second, meridiem = match.groups()
    h = int(hour or 0)
    if meridiem is not None:
        if not 1 <= h <= 12:
            return None
        h = h % 12 + (12 if meridiem.upper() == "PM" else 0)
    try:
        return datetime(int(year), int(month), int(day), h, int(minute or 0), int(second or 0))
    except ValueError:
        return None


def _parse_sfmc_clock(value: str) -> datetime | None:
    """Exactly `M/D/YYYY h:mm:ss AM|PM`, the form SFMC writes every date in, by splitting rather than a
    regular expression (half the CPU); None for anything else, which `_US_DATE` then reads."""
    parts = value.split(" ")
    if len(parts) != 3:
        return None
    date, clock, meridiem = parts
    ymd, hms = date.split("/"), clock.split(":")
    if len(ymd) != 3 or len(hms) != 3:
        return None
    month, day, year = ymd
    hour, minute, second = hms
    if not (
        0 < len(month) < 3 and 0 < len(day) < 3 and len(year) == 4 and 0 < len(hour) < 3
        and len(minute) == 2 and len(second) == 2
        and (month + day + year + hour + minute + second).isdecimal()  # what \d matches
    ):  # fmt: skip
        return None
    upper = meridiem.upper()
    h = int(hour)
    if upper not in ("AM", "PM") or not 1 <= h <= 12:
        return None
    try:
        return datetime(
            int(year), int(month), int(day), h % 12 + (12 if upper == "PM" else 0), int(minute), int(second)
        )
    except ValueError:
        return None


def _iso_date(text: str, zone: tzinfo) -> str:
    """`iso(parse_date(text, zone))`, without the aware-datetime round trip when the zone is a fixed
    offset (SFMC's default -06:00): every row has dates, this was a third of typing a row."""
    if isinstance(zone, timezone):
        local = _parse_us(text.strip())
        if local is not None:
            moment = local - zone.utcoffset(None)
            return moment.isoformat() + "Z"  # whole seconds (no microseconds to write)
    return iso(parse_date(text, zone))


class _HourCache:
    """SFMC dates (`M/D/YYYY h:mm:ss AM`) of one page, converted per local hour rather than per value.

    In a zone at a whole-hour offset from UTC, a value's minutes and seconds are the same in UTC, so
    the UTC date and hour (`YYYY-MM-DDTHH:`) depend on `M/D/YYYY h` and AM/PM only. Rows come ordered by
    their incremental date, so most rows of a page share an hour: a lookup and a concatenation
    replace the parse. Only values whose converted form is exactly that prefix plus `mm:ss` and `Z`
    are remembered (anything else is converted in full every time); at most one entry per distinct
    hour of one page, so memory stays flat in the data extension's size.
    """

    __slots__ = ("_prefixes",)

    def __init__(self) -> None:
        self._prefixes: dict[str, str] = {}

    @staticmethod
    def usable(zone: tzinfo) -> bool:
        if not isinstance(zone, timezone):
            return False
        offset = zone.utcoffset(None)
        return offset is not None and offset % timedelta(hours=1) == timedelta(0)

    @staticmethod
    def _split(text: str) -> tuple[str, str] | None:
        """(`M/D/YYYY h` + ` AM`, `mm:ss`) when `text` ends in exactly `:mm:ss AM` (minutes and
        seconds two digits below 60), else None."""
        head, _, tail = text.partition(":")
        if (
            len(tail) == 8 and tail[2] == ":" and tail[5] == " " and tail[0] < "6" and tail[3] < "6"
            and tail[:2].isdecimal() and tail[3:5].isdecimal()
        ):  # fmt: skip
            return head + tail[5:], tail[:5]
        return None

    def get(self, text: str) -> str | None:
        parts = self._split(text)
        if parts is None:
            return None
        prefix = self._prefixes.get(parts[0])
        return None if prefix is None else prefix + parts[1] + "Z"

    def put(self, text: str, converted: str) -> None:
        parts = self._split(text)
        if parts is not None and len(converted) == 20 and converted[14:] == parts[1] + "Z":
            self._prefixes[parts[0]] = converted[:14]


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with a Z; microseconds only when there are any (SFMC dates have seconds)."""
    text = moment.astimezone(UTC).isoformat(timespec="microseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def to_filter_literal(watermark: str, zone: tzinfo, fmt: str) -> str:
    """The watermark (UTC) as SFMC compares it: local time of the account, `fmt` (an [INFER] format)."""
    return parse_iso(watermark).astimezone(zone).strftime(fmt)


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("not a boolean")


def _number(text: str, whole: bool) -> int | float:
    if whole and text.isdigit() and text.isascii():
        return int(text)  # the common case ("42") without Decimal
    number = Decimal(text.strip().replace(",", ""))  # US locale: "1,234.50"
    if not number.is_finite():
        raise ValueError("not a finite number")
    integral = number == number.to_integral_value()
    if whole and not integral:
        raise ValueError("not a whole number")
    return int(number) if whole or (integral and "." not in text) else float(number)


def convert(column: str, raw: Any, kind: FieldType, zone: tzinfo) -> Any:
    """One SFMC string value -> its typed value; "" -> None. Raises ColumnError naming the column."""
    text = "" if raw is None else str(raw)
    if text.strip() == "":
        return None
    try:
        if kind in TEXT_TYPES:
            value: Any = text
        elif kind == "Date":
            value = _iso_date(text, zone)
        elif kind == "Boolean":
            value = _boolean(text)
        else:
            value = _number(text, whole=kind == "Number")
    except (ValueError, InvalidOperation, ArithmeticError) as exc:
        # The value stays out of the message: it may be PII.
        raise ColumnError(column, f"'{column}' is not a valid {kind}: {type(exc).__name__}") from None
    return value


# One encoder per shape, built once: json.dumps() with non-default options builds a new encoder on every
# call, which was a fifth of a page's CPU. Output is byte-identical to json.dumps with these options.
_DIGEST_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)


def digest(values: list[Any]) -> str:
    """A short, stable fingerprint of a primary key (80 bits: collisions are negligible here)."""
    return hashlib.sha256(_DIGEST_ENCODER.encode(values).encode()).hexdigest()[:20]


def _digest_of_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _identity(rule: _Rule, value: Any) -> str:
    """A value that is not text as an identity: a number as text; a boolean, object or list refused."""
    if isinstance(value, bool | dict | list):
        raise ColumnError(rule.column, f"invalid_identity:{rule.column}")
    return str(value)


def _consent(value: Any) -> str:
    if isinstance(value, bool):
        return "y" if value else "n"
    lowered = str(value).strip().lower()
    if lowered in _TRUE:
        return "y"
    if lowered in _FALSE:
        return "n"
    raise ValueError("a consent must be a boolean or y/n")


@dataclass(slots=True)
class RowResult:
    """One row after transformation: a published event, or a failure with reasons."""

    row: dict[str, Any]  # typed values by field name as SFMC returned it
    raw: dict[str, Any]
    pk_digest: str
    keys: dict[str, Any]
    incremental: str | None  # ISO UTC of the incremental column, when there is one
    event: dict[str, Any] | None = None  # the PutEvents `Detail` document
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.event is not None and not self.errors


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    lower: str
    kind: FieldType
    text: bool  # a text type: the value is kept as SFMC sent it ("" -> None), no parsing
    date: bool = False
    whole: bool = False  # a Number


@dataclass(frozen=True, slots=True)
class _Shape:
    """The columns of rows with the same names in the same order (every row of a page, as a rule),
    resolved once: the typed row by lower-case name is the row itself when every name is lower case,
    and the primary key's raw values are read by position."""

    columns: tuple[_Column, ...]
    all_lower: bool
    pk_names: tuple[str | None, ...]  # per primary-key column, the name the row carries it under
    pk_found: tuple[str, ...] | None = None  # `pk_names` when the row carries every primary-key column


# Transforms that are plain str methods when the value already is text (`_as_text` returns it as is).
_STR_METHODS: dict[str, Callable[[str], str]] = {
    "trim": str.strip,
    "lowercase": str.lower,
    "uppercase": str.upper,
}


@dataclass(frozen=True, slots=True)
class _Rule:
    column: str
    root: str
    transforms: tuple[tuple[str, Callable[[Any], Any]], ...]
    required: bool
    key: str = ""  # the joined path: the identity namespace or consent purpose
    # The transforms as str methods when every one is (None: the general path), applied to text values.
    text_transforms: tuple[Callable[[str], str], ...] | None = None
    parents: tuple[str, ...] = ()  # the dicts on the way to the value (attributes.<parents>.<leaf>)
    leaf: str = ""


def _transformed(rule: _Rule, value: Any) -> Any:
    if rule.text_transforms is not None and type(value) is str:
        for method in rule.text_transforms:
            value = method(value)
        return value
    for name, transform in rule.transforms:
        try:
            value = transform(value)
        except ValueError:
            raise ColumnError(rule.column, f"transform_failed:{name}:{rule.column}") from None
    return value


def _node(attributes: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """The dict at `path` in `attributes`, made of dicts as needed (replacing a value on the way)."""
    node = attributes
    for part in path:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    return node


def _merged(*sections: Any) -> dict[str, Any]:
    """The row's columns from its `keys` and `values` when one is missing or not a dict."""
    raw: dict[str, Any] = {}
    for section in sections:
        if type(section) is dict or isinstance(section, Mapping):  # the ABC check only if not a dict
            raw.update(section)
    return raw


def _plain(text: Any) -> bool:
    """Text of printable ASCII without a quote or backslash: json.dumps writes it as is between quotes."""
    return (
        type(text) is str and text.isascii() and text.isprintable() and '"' not in text and "\\" not in text
    )


class RowTransformer:
    """Compiled once per data extension and page task; applied to every row without re-parsing."""

    def __init__(
        self, de: DataExtensionConfig, source: SourceRef, zone: tzinfo, run_id: str, started_at: str
    ):
        self.de = de
        self.zone = zone
        self.run_id = run_id
        self.started_at = started_at
        self.source_id = source.id
        self.types = de.field_types()
        self.pk = [name.lower() for name in de.primary_key]
        self.incremental = de.incremental_column.lower() if de.incremental_column else None
        paths: dict[
            tuple[str, ...], tuple[str, ...]
        ] = {}  # one tuple per path: `_event` compares by identity
        rules: list[_Rule] = []
        for rule in de.mapping:
            parts = rule.target.split(".")
            rules.append(
                _Rule(
                    column=rule.column.lower(),
                    root=parts[0],
                    transforms=tuple((name, TRANSFORMS[name]) for name in rule.transforms),
                    required=rule.required,
                    key=".".join(parts[1:]),
                    text_transforms=tuple(_STR_METHODS[name] for name in rule.transforms)
                    if all(name in _STR_METHODS for name in rule.transforms)
                    else None,
                    parents=paths.setdefault(tuple(parts[1:-1]), tuple(parts[1:-1])),
                    leaf=parts[-1],
                )
            )
        self.rules = tuple(rules)
        self.audiences = [a.model_dump() for a in de.audiences]
        self._id_prefix = _DIGEST_ENCODER.encode([source.id, de.key])[:-1] + ","
        self._origin = {"system": "sfmc", "sourceId": source.id, "dataExtension": de.key, "runId": run_id}
        self._columns: dict[Any, _Column] = {}  # every row repeats the same names: resolve them once
        self._shapes: dict[tuple[Any, ...], _Shape] = {}
        self._hours = _HourCache() if _HourCache.usable(zone) else None

    def _column(self, name: Any) -> _Column:
        column = self._columns.get(name)
        if column is None:
            text = str(name)
            kind = self.types.get(text.lower(), "Text")
            column = _Column(text, text.lower(), kind, kind in TEXT_TYPES, kind == "Date", kind == "Number")
            self._columns[name] = column
        return column

    def _shape(self, names: tuple[Any, ...]) -> _Shape:
        shape = self._shapes.get(names)
        if shape is None:
            columns = tuple(self._column(name) for name in names)
            by_lower = {column.lower: column.name for column in columns}  # the last one wins, as in a dict
            pk_names = tuple(by_lower.get(name) for name in self.pk)
            shape = _Shape(
                columns,
                all(column.name == column.lower for column in columns),
                pk_names,
                pk_found=tuple(name for name in pk_names if name is not None)
                if None not in pk_names
                else None,
            )
            self._shapes[names] = shape
        return shape

    def _convert(self, column: _Column, value: Any) -> Any:
        """`convert`, dates through the page's hour cache when the zone allows it."""
        if column.whole and type(value) is str and value.isdigit() and value.isascii():
            return int(value)  # convert's first case for a Number ("42"), without its dispatch
        hours = self._hours if column.date and type(value) is str else None
        if hours is None:
            return convert(column.name, value, column.kind, self.zone)
        converted = hours.get(value)
        if converted is None:
            converted = convert(column.name, value, column.kind, self.zone)
            if converted is not None:
                hours.put(value, converted)
        return converted

    def _missing_key(self, pk_values: list[Any], errors: list[str]) -> list[Any]:
        """The first primary-key column without a value as the row's error; the key digested with ""."""
        missing_pk = [
            lower for lower, v in zip(self.pk, pk_values, strict=True) if v is _ABSENT or v in (None, "")
        ]
        errors.append(f"missing_primary_key:{missing_pk[0]}")
        return ["" if v is _ABSENT else v for v in pk_values]

    def transform(self, item: Mapping[str, Any]) -> RowResult:
        """`{"keys": {...}, "values": {...}}` -> RowResult (never raises for the row's data)."""
        keys_part, values_part = item.get("keys"), item.get("values")
        raw: dict[str, Any] = (
            {**keys_part, **values_part}  # as SFMC sends a row
            if type(keys_part) is dict and type(values_part) is dict
            else _merged(keys_part, values_part)
        )
        shape = self._shape(tuple(raw))
        typed: dict[str, Any] = {}
        errors: list[str] = []
        for column, value in zip(shape.columns, raw.values(), strict=True):
            if column.text and type(value) is str:  # the common case, inline: most fields are text
                # Blank (what strip() empties) -> None, without building the stripped copy.
                typed[column.name] = value if value and not value.isspace() else None
                continue
            try:
                typed[column.name] = self._convert(column, value)
            except ColumnError as exc:
                typed[column.name] = None
                errors.append(f"invalid_value:{exc.column}")
        if shape.all_lower:
            typed_lower = typed  # SFMC's rowset API returns lower-case names: one dict serves both
        else:
            typed_lower = {column.lower: typed[column.name] for column in shape.columns}
        # (map over C callables rather than comprehensions: no Python frame per row on Python 3.11)
        keys = dict(zip(self.pk, map(typed_lower.get, self.pk), strict=True))
        if shape.pk_found is not None:
            pk_values = list(map(raw.__getitem__, shape.pk_found))
        else:
            pk_values = [raw[name] if name is not None else _ABSENT for name in shape.pk_names]
        if shape.pk_found is None or None in pk_values or "" in pk_values:  # as a rule none is missing
            pk_values = self._missing_key(pk_values, errors)
        if all(map(_plain, pk_values)):
            # == digest(pk_values) without an encoder call: nothing in the values needs escaping.
            pk_digest = _digest_of_text('["' + '","'.join(pk_values) + '"]')
        else:
            pk_digest = digest(pk_values)
        incremental = typed_lower.get(self.incremental) if self.incremental else None
        result = RowResult(
            typed, raw, pk_digest, keys, incremental if type(incremental) is str else None, None, errors
        )
        if errors:
            return result
        try:
            result.event = self._event(typed_lower, result)
        except ColumnError as exc:
            result.errors = [str(exc)]
        return result

    def _event(self, typed: Mapping[str, Any], result: RowResult) -> dict[str, Any]:
        identities: dict[str, str] = {}
        attributes: dict[str, Any] = {}
        consents: dict[str, str] = {}
        # The dict at the end of the last attribute path: rules in a row that share a path write into
        # it without walking the path again (a rule writing a leaf on the way has another path).
        path: tuple[str, ...] | None = None
        node = attributes
        for rule in self.rules:
            value = typed.get(rule.column)
            if value is None:
                if rule.required:
                    raise ColumnError(rule.column, f"missing_required:{rule.column}")
                continue
            if rule.transforms:
                value = _transformed(rule, value)
                if isinstance(value, str) and not value.strip():
                    continue
            # (Without transforms a text value is never blank here: typing made blank text None.)
            root = rule.root
            if root == "attributes":
                if rule.parents is not path:  # the previous attribute's path is this one's as a rule
                    path, node = rule.parents, _node(attributes, rule.parents)
                node[rule.leaf] = value
            elif root == "identities":
                identities[rule.key] = value if type(value) is str else _identity(rule, value)
            else:
                try:
                    consents[rule.key] = _consent(value)
                except ValueError:
                    raise ColumnError(rule.column, f"invalid_consent:{rule.column}") from None
        if not identities:
            raise ColumnError("", "no_identity")
        occurred_at = result.incremental or self.started_at
        version = result.incremental or digest([sorted(result.raw.items(), key=lambda kv: str(kv[0]))])
        # == digest([source id, key, pk digest, version]): both are ISO/hex text, nothing to escape.
        event_id = "sfmc-" + _digest_of_text(f'{self._id_prefix}"{result.pk_digest}","{version}"]')
        return {
            "schemaVersion": "1",
            "eventId": event_id,
            "occurredAt": occurred_at,
            "profile": {"identities": identities, "attributes": attributes, "consents": consents},
            "audiences": [
                {**audience, "status": "realized", "updatedAt": occurred_at} for audience in self.audiences
            ]
            if self.audiences
            else [],
            # Lineage for consumers and replays; the event contract ignores unknown fields. One dict
            # for every event of the page: it is only ever serialised, never changed.
            "origin": self._origin,
        }

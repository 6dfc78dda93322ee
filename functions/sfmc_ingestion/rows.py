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
from functools import lru_cache
from types import CodeType
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
            raise ValueError("not an SFMC date") from None  # the value may be personal: never quoted
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


# Every valid `mm:ss` (two ASCII digits each, below 60): one set lookup checks a clock's minutes and
# seconds (`isdecimal` also takes other scripts' digits, which the cache once copied into a date).
_MINUTES_SECONDS = frozenset(f"{minute:02d}:{second:02d}" for minute in range(60) for second in range(60))


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
        seconds two ASCII digits below 60), else None."""
        head, _, tail = text.partition(":")
        if len(tail) == 8 and tail[5] == " " and tail[:5] in _MINUTES_SECONDS:
            return head + tail[5:], tail[:5]
        return None

    def get(self, text: str) -> str | None:
        """`text` converted when its local hour was converted on this page, else None (one call a row:
        the lookup first; a key of the cache ends in ` AM`, so a hit with an 8-character tail has
        exactly the `mm:ss AM` form once its `mm:ss` is valid)."""
        head, _, tail = text.partition(":")
        prefix = self._prefixes.get(head + tail[5:])
        if prefix is not None and len(tail) == 8 and (clock := tail[:5]) in _MINUTES_SECONDS:
            return prefix + clock + "Z"
        return None

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


# Transforms that are plain str methods when the value already is text (`_as_text` returns it as is):
# the method's name, written into a generated row mapper as `.strip()` (names from this table only).
_STR_METHODS: dict[str, str] = {"trim": "strip", "lowercase": "lower", "uppercase": "upper"}


@dataclass(frozen=True, slots=True)
class _Rule:
    column: str
    root: str
    transforms: tuple[tuple[str, Callable[[Any], Any]], ...]
    required: bool
    key: str = ""  # the joined path: the identity namespace or consent purpose
    # The transforms as str method names when every one is (None: the general path), for text values.
    text_methods: tuple[str, ...] | None = None
    parents: tuple[str, ...] = ()  # the dicts on the way to the value (attributes.<parents>.<leaf>)
    leaf: str = ""


def _transformed(rule: _Rule, value: Any) -> Any:
    """The rule's transforms on a value (the generated mapper calls str methods itself on text)."""
    for name, transform in rule.transforms:
        try:
            value = transform(value)
        except ValueError:
            raise ColumnError(rule.column, f"transform_failed:{name}:{rule.column}") from None
    return value


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


def _row_version(raw: Mapping[Any, Any]) -> str:
    """A row's version when its data extension has no incremental column: the digest of its values."""
    return digest([sorted(raw.items(), key=lambda kv: str(kv[0]))])


def _consented(rule: _Rule, value: Any) -> str:
    try:
        return _consent(value)
    except ValueError:
        raise ColumnError(rule.column, f"invalid_consent:{rule.column}") from None


def _local(prefix: str, column: int | None, absent: str = "None") -> str:
    """A generated mapper's local name of a column's value (`t3`, `v3`), or `absent`."""
    return absent if column is None else f"{prefix}{column}"


def _literal(text: str) -> str:
    """A name from the configuration or the rowset as a Python string literal (its repr: quotes and
    escapes included), the only way such text enters a generated mapper's source."""
    if type(text) is not str:
        raise TypeError("a generated mapper's names are text")
    return repr(text)


@lru_cache(maxsize=64)
def _code(text: str) -> CodeType:
    """A mapper's text compiled, kept for the next page tasks of a warm container: compiling took
    ~0.85 ms, a third of a microsecond per row of a 2,500-row page; the namespace is per page."""
    return compile(text + "\n", "<sfmc row mapper>", "exec")


class _MapperSource:
    """The source of one row mapper: straight-line Python for one row shape of one data extension.

    Why generated (issue 18, goal 7): mapping a row by looping over its columns and rules paid the
    interpreter's dispatch on every column's type and every rule's root, transforms and path, for
    every row; here they are decided once per (data extension, row shape) and each row runs only the
    lines its columns and rules need, its values in local variables. As dataclasses do, the text is
    compiled once; nothing the user controls is executed: column names, keys and paths enter the
    text only through `_literal` (their repr), every other object (a column, a rule, a path, a bound
    method) through the namespace under a name made here (`c0`, `r1`, ...).
    """

    def __init__(self, helpers: dict[str, Any]) -> None:
        self.namespace: dict[str, Any] = dict(helpers)
        self.lines: list[str] = []
        self._names: dict[int, str] = {}

    def ref(self, obj: Any, prefix: str) -> str:
        """The namespace name of `obj` (one per object)."""
        name = self._names.get(id(obj))
        if name is None:
            name = self._names[id(obj)] = f"{prefix}{len(self._names)}"
            self.namespace[name] = obj
        return name

    def add(self, indent: int, *lines: str) -> None:
        self.lines.extend("    " * indent + line for line in lines)

    def compile(self) -> Callable[[dict[Any, Any]], RowResult]:
        exec(_code("\n".join(self.lines)), self.namespace)  # noqa: S102 - the text is made of literals and generated names only
        mapper: Callable[[dict[Any, Any]], RowResult] = self.namespace["map_row"]
        return mapper


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
        ] = {}  # one tuple per path: the mapper compares by identity
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
                    text_methods=tuple(_STR_METHODS[name] for name in rule.transforms)
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
        # One mapper per row shape (the names in their order): every row of a page, as a rule.
        self._mappers: dict[tuple[Any, ...], Callable[[dict[Any, Any]], RowResult]] = {}
        self._hours = _HourCache() if _HourCache.usable(zone) else None

    def _column(self, name: Any) -> _Column:
        column = self._columns.get(name)
        if column is None:
            text = str(name)
            kind = self.types.get(text.lower(), "Text")
            column = _Column(text, text.lower(), kind, kind in TEXT_TYPES, kind == "Date", kind == "Number")
            self._columns[name] = column
        return column

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

    def _typed(self, column: _Column, value: Any, errors: list[str]) -> Any:
        """A value the mapper's inline cases do not cover; None and the column named in `errors` when
        it is invalid."""
        try:
            return self._convert(column, value)
        except ColumnError as exc:
            errors.append(f"invalid_value:{exc.column}")
            return None

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
        names = tuple(raw)
        mapper = self._mappers.get(names)
        if mapper is None:
            mapper = self._mappers[names] = self._mapper(tuple(map(self._column, names)))
        return mapper(raw)

    def _mapper(self, columns: tuple[_Column, ...]) -> Callable[[dict[Any, Any]], RowResult]:
        """The row mapper of one row shape: `map_row(raw)` -> RowResult, as `transform` documents."""
        src = _MapperSource(
            {
                "RowResult": RowResult, "ColumnError": ColumnError, "ABSENT": _ABSENT, "typed_": self._typed,
                "missing_key": self._missing_key, "plain": _plain, "digest": digest, "row_version": _row_version,
                "digest_of_text": _digest_of_text, "transformed": _transformed, "identity": _identity,
                "consented": _consented, "STARTED": self.started_at, "ID_PREFIX": self._id_prefix,
                "ORIGIN": self._origin, "AUDIENCES": self.audiences,
                "hour": self._hours.get if self._hours is not None else None,
            }
        )  # fmt: skip
        src.add(0, "def map_row(raw):", "    errors = []")
        by_lower = self._typing_lines(src, columns)
        self._key_lines(src, by_lower)
        src.add(1, "if errors:", "    return RowResult(typed, raw, pk_digest, keys, inc, None, errors)")
        src.add(
            1, "try:", "    identities = {}", "    attributes = {}", "    consents = {}", "    path = None"
        )
        for rule in self.rules:
            self._rule_lines(src, rule, by_lower.get(rule.column))
        src.add(2, "if not identities:", '    raise ColumnError("", "no_identity")')
        src.add(1, "except ColumnError as exc:")
        src.add(2, "return RowResult(typed, raw, pk_digest, keys, inc, None, [str(exc)])")
        # == digest([source id, key, pk digest, version]): both are ISO/hex text, nothing to escape.
        src.add(1, "version = inc or row_version(raw)")
        src.add(
            1, """event_id = "sfmc-" + digest_of_text(ID_PREFIX + '"' + pk_digest + '","' + version + '"]')"""
        )
        src.add(1, "occurred_at = inc or STARTED")
        audiences = "[]"
        if self.audiences:
            audiences = (
                '[{**audience, "status": "realized", "updatedAt": occurred_at} for audience in AUDIENCES]'
            )
        # Lineage (`origin`) for consumers and replays; the event contract ignores unknown fields. One
        # dict for every event of the page: it is only ever serialised, never changed.
        src.add(1, 'event = {"schemaVersion": "1", "eventId": event_id, "occurredAt": occurred_at,')
        src.add(2, '"profile": {"identities": identities, "attributes": attributes, "consents": consents},')
        src.add(2, f'"audiences": {audiences}, "origin": ORIGIN}}')
        src.add(1, "return RowResult(typed, raw, pk_digest, keys, inc, event, errors)")
        return src.compile()

    def _typing_lines(self, src: _MapperSource, columns: tuple[_Column, ...]) -> dict[str, int]:
        """`t<i>`, each column typed (its type decided here: the common case inline, the rest through
        `_typed`), and the typed row; returns the column of each lower-case name (the last column of
        that name, as a dict by lower-case name would hold)."""
        if columns:
            src.add(1, ", ".join(f"v{i}" for i in range(len(columns))) + ", = raw.values()")
        for i, column in enumerate(columns):
            v, slow = f"v{i}", f"typed_({src.ref(column, 'c')}, v{i}, errors)"
            if column.text:  # blank text (what strip() empties) -> None, without a stripped copy
                value = f"({v} if {v} and not {v}.isspace() else None)"
                src.add(1, f"t{i} = {value} if type({v}) is str else {slow}")
            elif column.whole:  # "42" without Decimal
                src.add(
                    1, f"t{i} = int({v}) if type({v}) is str and {v}.isdigit() and {v}.isascii() else {slow}"
                )
            elif column.date and self._hours is not None:  # through the page's hour cache
                src.add(1, f"t{i} = hour({v}) if type({v}) is str else None", f"if t{i} is None:")
                src.add(2, f"t{i} = {slow}")
            else:
                src.add(1, f"t{i} = {slow}")
        # The typed row by name as SFMC returned it (a name twice: the last value, as in a dict).
        src.add(1, "typed = {" + ", ".join(f"{_literal(c.name)}: t{i}" for i, c in enumerate(columns)) + "}")
        return {column.lower: i for i, column in enumerate(columns)}

    def _key_lines(self, src: _MapperSource, by_lower: dict[str, int]) -> None:
        """`keys` (typed, by lower-case name), `pk_digest` (of the values as SFMC sent them) and `inc`."""
        keys = ", ".join(f"{_literal(name)}: {_local('t', by_lower.get(name))}" for name in self.pk)
        src.add(1, f"keys = {{{keys}}}")
        raw_values = [_local("v", by_lower.get(name), "ABSENT") for name in self.pk]
        src.add(1, f"pk = [{', '.join(raw_values)}]")
        if "ABSENT" in raw_values:
            src.add(1, "pk = missing_key(pk, errors)")
        else:
            src.add(1, 'if None in pk or "" in pk:', "    pk = missing_key(pk, errors)")
        names = [f"key{i}" for i in range(len(self.pk))]  # not p<n>: the namespace's path objects
        src.add(1, f"{', '.join(names)}, = pk")
        # == digest(pk) without an encoder call when nothing in the values needs escaping.
        src.add(1, f"if {' and '.join(f'plain({p})' for p in names)}:")
        src.add(2, "pk_digest = digest_of_text('[\"' + " + " + '\",\"' + ".join(names) + " + '\"]')")
        src.add(1, "else:", "    pk_digest = digest(pk)")
        incremental = by_lower.get(self.incremental) if self.incremental else None
        if incremental is None:
            src.add(1, "inc = None")
        else:
            src.add(1, f"inc = t{incremental} if type(t{incremental}) is str else None")

    @staticmethod
    def _rule_lines(src: _MapperSource, rule: _Rule, column: int | None) -> None:
        """One mapping rule's lines, in the mapper's `try`; `column`: the rule's typed column, None when
        the row shape has no such column (then the rule is a constant)."""
        r = src.ref(rule, "r")
        if column is None:
            if rule.required:
                src.add(2, f'raise ColumnError({r}.column, "missing_required:" + {r}.column)')
            return
        src.add(2, f"v = t{column}")
        depth = 2
        if rule.required:
            src.add(
                2, "if v is None:", f'    raise ColumnError({r}.column, "missing_required:" + {r}.column)'
            )
        else:
            src.add(2, "if v is not None:")
            depth += 1
        if rule.transforms:
            calls = "".join(f".{method}()" for method in rule.text_methods or ())
            text = f"v{calls} if type(v) is str else " if rule.text_methods is not None else ""
            src.add(depth, f"v = {text}transformed({r}, v)", "if not isinstance(v, str) or v.strip():")
            depth += 1  # (a value blank after its transforms is skipped)
        # (Without transforms a text value is never blank here: typing made blank text None.)
        if rule.root == "attributes":
            # Rules that share a path write into the dict it ended in without walking it again (one
            # writing a leaf on the way has another path); the walk makes dicts, replacing a value.
            p = src.ref(rule.parents, "p")
            src.add(depth, f"if path is not {p}:", f"    path = {p}", "    node = attributes")
            for part in rule.parents:
                src.add(depth + 1, f"child = node.get({_literal(part)})", "if not isinstance(child, dict):")
                src.add(depth + 2, f"child = node[{_literal(part)}] = {{}}")
                src.add(depth + 1, "node = child")
            src.add(depth, f"node[{_literal(rule.leaf)}] = v")
        elif rule.root == "identities":
            src.add(depth, f"identities[{_literal(rule.key)}] = v if type(v) is str else identity({r}, v)")
        else:
            src.add(depth, f"consents[{_literal(rule.key)}] = consented({r}, v)")

"""Reading a members file: stream it once, checksum the stored bytes, parse and key every line.

A member's **key** is the SHA-256 of its identities (or of the manifest's `identityNamespace` only),
normalised as the order guard normalises them (`activation_core.guards.normalise_identity`):
it is what "the same member" means across two snapshots, and the only identity-derived value kept
in file and object names or sort orders. Its **digest** is the SHA-256 of the whole canonical line: a
changed digest under the same key is a changed member.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from pydantic import ValidationError

from activation_core.guards import normalise_identity
from activation_core.models.snapshots import SnapshotAccountMember, SnapshotManifest, SnapshotProfileMember

MAX_LINE_BYTES = 200 * 1024  # an event must stay under EventBridge's 256 KB entry limit with its envelope
BAD_LINE_SAMPLES = 20  # line numbers and reasons kept in the run record (never the values)


@dataclass(frozen=True, slots=True)
class Member:
    key: str
    digest: str
    line: str  # canonical JSON of the member (sorted keys, no whitespace)
    number: int = 0  # its line number in the members file (duplicates are reported by it)


@dataclass(frozen=True, slots=True)
class BadLine:
    line_number: int
    reason: str


@dataclass(slots=True)
class ReadReport:
    """What a pass over the members file found; complete only once the iterator is exhausted."""

    lines: int = 0
    members: int = 0
    bad: int = 0
    samples: list[BadLine] = field(default_factory=list)
    sha256: str = ""

    def add_bad(self, line_number: int, reason: str) -> None:
        self.bad += 1
        if len(self.samples) < BAD_LINE_SAMPLES:
            self.samples.append(BadLine(line_number, reason))

    def as_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "members": self.members,
            "badLines": self.bad,
            "badLineSamples": [{"line": b.line_number, "reason": b.reason} for b in self.samples],
        }


class _HashingReader(io.RawIOBase):
    """Passes bytes through while hashing them: the checksum covers the object exactly as stored."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._raw.read(len(buffer))
        if not chunk:
            return 0
        self.hash.update(chunk)
        buffer[: len(chunk)] = chunk
        return len(chunk)


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def member_key(identities: dict[str, str], namespace: str | None) -> str | None:
    """Identities normalised as the order guard keys an entity (an address in any case, trimmed, is one
    person): two spellings of one member are one key, never an exit plus a join of the same person."""
    if namespace is not None:
        value = identities.get(namespace)
        if not value or not (normalised := normalise_identity(namespace, value)):
            return None
        material = f"{namespace}\x00{normalised}"
    else:
        material = canonical({name: normalise_identity(name, v) for name, v in identities.items()})
    return hashlib.sha256(material.encode()).hexdigest()


def _problem(exc: ValidationError) -> str:
    first = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "<line>"
    return f"invalid:{where}"


def _not_json(constant: str) -> Any:
    raise ValueError(constant)  # NaN, Infinity, -Infinity: Python's json takes them, JSON does not


def parse_line(raw: bytes, manifest: SnapshotManifest, number: int = 0) -> Member | str:
    """A keyed member (`number`: its line in the file), or the reason the line is bad (never its value)."""
    if len(raw) > MAX_LINE_BYTES:
        return "too_large"
    try:
        data = json.loads(raw, parse_constant=_not_json)
    except (UnicodeDecodeError, ValueError):  # JSONDecodeError is a ValueError
        return "not_json"
    if not isinstance(data, dict):
        return "not_an_object"
    model = SnapshotProfileMember if manifest.entity == "profile" else SnapshotAccountMember
    try:
        member = model.model_validate(data)
    except ValidationError as exc:
        return _problem(exc)
    document = member.model_dump(mode="json")
    key = member_key(member.identities, manifest.identity_namespace)
    if key is None:
        return f"missing_identity:{manifest.identity_namespace}"
    line = canonical(document)
    return Member(key, hashlib.sha256(line.encode()).hexdigest()[:32], line, number)


def read_members(
    stream: IO[bytes], manifest: SnapshotManifest, compressed: bool, report: ReadReport
) -> Iterator[Member]:
    """Every good member of the file, in file order; bad lines are counted in `report`.

    The checksum (`report.sha256`) and counts are final once the iterator is exhausted."""
    hashing = _HashingReader(stream)
    buffered: IO[bytes] = io.BufferedReader(hashing, buffer_size=1 << 20)
    text: IO[bytes] = buffered
    if compressed:
        text = gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[assignment]
    try:
        for raw in text:
            stripped = raw.strip()
            if not stripped:
                continue
            report.lines += 1
            parsed = parse_line(stripped, manifest, report.lines)
            if isinstance(parsed, str):
                report.add_bad(report.lines, parsed)
                continue
            report.members += 1
            yield parsed
    except (OSError, EOFError) as exc:  # a truncated or corrupt gzip stream
        report.add_bad(report.lines + 1, f"unreadable:{type(exc).__name__}")
    # Whatever the gzip reader left unread still belongs to the stored bytes.
    while hashing.read(1 << 20):
        pass
    report.sha256 = "sha256:" + hashing.hash.hexdigest()

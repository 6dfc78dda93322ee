"""Every request a fake vendor receives, checked against the vendor's own API description.

The fakes implement the vendors' documented semantics; this module holds our requests to the
documents themselves (`/work/shared/reference/openapi/`: Marketo's two Swagger 2.0 files, Outreach's
OpenAPI 3.0.3 file), as an independent acceptance suite does: the operation (method + path template),
path and query parameters (required, unknown, type, enum), the content type, and the JSON body
against the operation's request schema (required fields, types, enums, maxItems, maxLength...).

Bodies are validated by libraries: `jsonschema`'s Draft 4 validator for Swagger 2.0 schemas (Swagger
2.0 schemas are a Draft 4 subset) and `openapi-schema-validator`'s OAS 3.0 validator (Draft 4 plus
`nullable`) for OpenAPI 3. The operation and parameter matching around them is written here, ~100
lines: openapi-core (the library that does request matching) reads OpenAPI 3 only, so Marketo's Swagger
2.0 files would need a second way or a conversion of 300 KB of spec; one small matcher serves both
versions. Each document is read and compiled once per process (`vendor_spec`), each body validator
when its operation is first called.

A fake answers a refused request as its vendor would (`FakeServer.spec_refusal`) and records it:
in the fake's `violations` and in this module's process-wide list, which the tests' autouse fixture
(tests/conftest.py) turns into a failing test.
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator
from openapi_schema_validator import OAS30Validator

ROOT = Path(__file__).resolve().parents[2]
# The vendors' documents, next to the project (`shared/` beside the clone, as on CI); overridable.
DEFAULT_DIR = ROOT.parent / "shared" / "reference" / "openapi"
DIR_VARIABLE = "VENDOR_OPENAPI_DIR"
_MAX_ERRORS = 5


@dataclass(frozen=True)
class Violation:
    """One way a request departs from the document. `kind`: operation | method | parameter |
    content_type | json | body; `pointer` is the JSON pointer of a body error (JSON:API `source`)."""

    vendor: str
    operation: str
    kind: str
    detail: str
    pointer: str = ""
    location: str = ""  # path | query | formData | body (parameters)

    def __str__(self) -> str:
        return f"{self.vendor} {self.operation}: {self.detail}"


# Every violation any fake in this process recorded, in order (the tests' fixture reads it).
_RECORDED: list[Violation] = []
_RECORDED_LOCK = threading.Lock()


def record(violations: Iterable[Violation]) -> None:
    with _RECORDED_LOCK:
        _RECORDED.extend(violations)


def recorded_since(index: int) -> tuple[list[Violation], int]:
    """The violations recorded since `index`, and the index to ask from next time."""
    with _RECORDED_LOCK:
        return list(_RECORDED[index:]), len(_RECORDED)


@dataclass
class _Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    names: list[str]  # path parameter names, in template order
    spec: dict[str, Any]
    parameters: dict[tuple[str, str], dict[str, Any]]  # (in, name) -> parameter
    document: dict[str, Any]
    swagger: bool
    _validators: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.spec.get("operationId") or f"{self.method} {self.template}")


def _compile(template: str, base_path: str) -> tuple[re.Pattern[str], list[str]]:
    names = re.findall(r"\{([^}]+)\}", template)
    regex = re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(base_path.rstrip("/") + template))
    return re.compile(f"^{regex}$"), names


class SpecValidator:
    """The operations of one vendor's documents (Swagger 2.0 or OpenAPI 3.0), for request checks."""

    def __init__(self, vendor: str, documents: Iterable[dict[str, Any]]) -> None:
        self.vendor = vendor
        self._operations: list[_Operation] = []
        for document in documents:
            swagger = "swagger" in document
            base = document.get("basePath", "/") if swagger else _server_path(document)
            for template, item in document.get("paths", {}).items():
                pattern, names = _compile(template, base)
                shared = item.get("parameters", [])
                for method, spec in item.items():
                    if method == "parameters" or not isinstance(spec, dict):
                        continue
                    parameters = {(p["in"], p["name"]): p for p in [*shared, *spec.get("parameters", [])]}
                    self._operations.append(
                        _Operation(
                            method.upper(), template, pattern, names, spec, parameters, document, swagger
                        )
                    )
        # Literal segments win over templates (`/leads/describe2.json` before `/leads/{id}.json`).
        self._operations.sort(key=lambda op: len(op.names))

    def check(
        self, method: str, path: str, query: Mapping[str, list[str]], content_type: str, body: bytes
    ) -> list[Violation]:
        matched = [(op, m) for op in self._operations if (m := op.pattern.match(path))]
        operation = next(((op, m) for op, m in matched if op.method == method), None)
        if operation is None:
            kind, detail = (
                ("method", f"{method} is not an operation of {matched[0][0].template}")
                if matched
                else ("operation", f"no operation {method} {path} in the document")
            )
            return [Violation(self.vendor, f"{method} {path}", kind, detail)]
        op, match = operation
        problems = self._parameters(op, dict(zip(op.names, match.groups(), strict=True)), query)
        problems += self._body(op, content_type, body)
        return problems[:_MAX_ERRORS]

    # -- parameters -------------------------------------------------------------------------------

    def _parameters(
        self, op: _Operation, path_values: dict[str, str], query: Mapping[str, list[str]]
    ) -> list[Violation]:
        problems: list[Violation] = []

        def bad(location: str, detail: str) -> None:
            problems.append(Violation(self.vendor, op.name, "parameter", detail, location=location))

        declared_query = {n: p for (where, n), p in op.parameters.items() if where == "query"}
        for key in query:
            base = key.split("[", 1)[0]  # deepObject: filter[emails] is the parameter `filter`
            if key not in declared_query and base not in declared_query:
                bad("query", f"unknown query parameter '{key}'")
        for (where, name), parameter in op.parameters.items():
            if where == "path":
                values = [path_values[name]] if name in path_values else []
            elif where == "query":
                values = query.get(name, [])
            else:
                continue  # headers (the Authorization scheme is the fake's own check), formData, body
            if not values:
                if parameter.get("required"):
                    bad(where, f"missing required {where} parameter '{name}'")
                continue
            schema = parameter if op.swagger else parameter.get("schema", {})
            for value in _split(schema, values):
                problem = _scalar_problem(
                    schema.get("items", {}) if schema.get("type") == "array" else schema, value
                )
                if problem:
                    bad(where, f"{where} parameter '{name}': {problem}")
        return problems

    # -- body -------------------------------------------------------------------------------------

    def _body(self, op: _Operation, content_type: str, body: bytes) -> list[Violation]:  # noqa: PLR0911 - one return per kind of refusal
        media = content_type.split(";", 1)[0].strip().lower()
        schema, required, accepted = self._declared_body(op)
        if not body:
            if required:
                return [
                    Violation(self.vendor, op.name, "json", "the request body is required", location="body")
                ]
            return []
        if not accepted:
            return [
                Violation(
                    self.vendor, op.name, "body", "the operation takes no request body", location="body"
                )
            ]
        if media not in accepted:
            return [
                Violation(
                    self.vendor, op.name, "content_type",
                    f"Content-Type '{media[:60]}' is not one of {sorted(accepted)}",
                )
            ]  # fmt: skip
        if schema is None:
            return []
        try:
            value = json.loads(body)
        except ValueError:
            return [Violation(self.vendor, op.name, "json", "the body is not JSON", location="body")]
        validator = op._validators.get(media)
        if validator is None:
            components = (
                {"definitions": op.document.get("definitions", {})}
                if op.swagger
                else {"components": op.document.get("components", {})}
            )
            cls = Draft4Validator if op.swagger else OAS30Validator
            # References inlined once: resolving `$ref` per array item made a 300-lead Sync Leads body
            # cost ~25-70 ms a check, inlined ~11 ms (recursive references stay references).
            validator = op._validators[media] = cls({**_inline(schema, op.document), **components})
        return [
            Violation(
                self.vendor, op.name, "body",
                f"body {_pointer(error.absolute_path) or '/'}: {error.message[:160]}",
                pointer=_pointer(error.absolute_path), location="body",
            )
            for error in sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path)))
        ]  # fmt: skip

    @staticmethod
    def _declared_body(op: _Operation) -> tuple[dict[str, Any] | None, bool, set[str]]:
        """(the JSON body's schema, whether a body is required, the media types it may come in)."""
        if op.swagger:
            param = next((p for (where, _), p in op.parameters.items() if where == "body"), None)
            if param is None:
                return None, False, set()
            consumes = op.spec.get("consumes") or op.document.get("consumes") or ["application/json"]
            return param.get("schema"), bool(param.get("required")), {c.lower() for c in consumes}
        request_body = op.spec.get("requestBody")
        if not request_body:
            return None, False, set()
        content: dict[str, Any] = request_body.get("content", {})
        json_schema = next((c.get("schema") for t, c in content.items() if "json" in t), None)
        return json_schema, bool(request_body.get("required")), {t.lower() for t in content}


def _inline(node: Any, document: dict[str, Any], trail: tuple[str, ...] = ()) -> Any:
    """`node` with each local `$ref` replaced by its target (a `$ref`'s siblings are ignored, as
    Draft 4 and OpenAPI 3.0 ignore them); a reference within its own target is left as it is."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            if ref in trail:
                return node
            target: Any = document
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            return _inline(target, document, (*trail, ref))
        return {key: _inline(value, document, trail) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(value, document, trail) for value in node]
    return node


def _server_path(document: dict[str, Any]) -> str:
    servers = document.get("servers") or [{"url": "/"}]
    return re.sub(r"^[a-z]+://[^/]+", "", str(servers[0].get("url", "/"))) or "/"


def _pointer(path: Iterable[Any]) -> str:
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in path]
    return "/" + "/".join(parts) if parts else ""


def _split(schema: Mapping[str, Any], values: list[str]) -> list[str]:
    """Array parameters: `multi` (repeated) keeps the values, `csv` (Swagger's default) splits them."""
    if schema.get("type") != "array" or schema.get("collectionFormat", "csv") == "multi":
        return values
    return [part for value in values for part in value.split(",")]


def _scalar_problem(schema: Mapping[str, Any], value: str) -> str:
    kind = schema.get("type", "string")
    if kind == "integer" and not re.fullmatch(r"-?[0-9]+", value):
        return f"'{value[:40]}' is not an integer"
    if kind == "number" and not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?", value):
        return f"'{value[:40]}' is not a number"
    if kind == "boolean" and value not in ("true", "false"):
        return f"'{value[:40]}' is not a boolean"
    enum = schema.get("enum")
    if enum and value not in [str(e) for e in enum]:
        return f"'{value[:40]}' is not one of {enum}"
    return ""


def vendor_spec(vendor: str, *files: str) -> SpecValidator | None:
    """The vendor's documents as a request checker, read once per process; None when absent here."""
    folder = Path(os.environ.get(DIR_VARIABLE, "") or DEFAULT_DIR).resolve()
    return _load(vendor, tuple(folder / name for name in files))


@functools.cache
def _load(vendor: str, files: tuple[Path, ...]) -> SpecValidator | None:
    if not all(f.is_file() for f in files):
        return None
    return SpecValidator(vendor, (json.loads(f.read_text()) for f in files))

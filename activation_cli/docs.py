"""Generate docs/configuration.md from the pydantic models and the template's parameters.

    python -m activation_cli.docs           # write docs/configuration.md
    python -m activation_cli.docs --check   # exit 1 when the file drifted from the models

The reference is rendered from each model's JSON Schema (by alias, as operators write it), so a field
added to a model appears here after one command, and a test fails until it does.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from activation_cli import discovery

# A repository tool (`python -m activation_cli.docs`, and its drift test): it writes into the clone.
ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "configuration.md"
TEMPLATE = ROOT / "template.yaml"

HEADER = """# Configuration reference

Generated from the models by `python -m activation_cli.docs` (a test fails when it drifts): do not
edit by hand. Validate a document with `activation config validate FILE`; the JSON Schemas of the
same models are in `shared/schemas/`.
"""


def _cell(text: str) -> str:
    # Markdown tables: a pipe ends a cell, and <name> would be read as an HTML tag.
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def _type(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        return str(prop["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in prop:
        options = [_type(o) for o in prop["anyOf"]]
        return " or ".join(dict.fromkeys(options))
    kind = prop.get("type", "any")
    if kind == "array":
        items = prop.get("items") or (prop.get("prefixItems") or [{}])[0]
        return f"array of {_type(items)}"
    if kind == "object" and isinstance(prop.get("additionalProperties"), dict):
        return f"object of {_type(prop['additionalProperties'])}"
    return str(kind)


def _constraints(prop: dict[str, Any]) -> list[str]:
    notes: list[str] = []
    for option in [prop, *prop.get("anyOf", [])]:
        if "enum" in option:
            notes.append("one of " + ", ".join(f"`{v}`" for v in option["enum"]))
        if "const" in option:
            notes.append(f"always `{option['const']}`")
        if "pattern" in option:
            notes.append(f"pattern `{option['pattern']}`")
        for key, label in (
            ("minLength", "min length"), ("maxLength", "max length"), ("minimum", "min"),
            ("maximum", "max"), ("exclusiveMinimum", "above"), ("exclusiveMaximum", "below"),
            ("minItems", "min items"), ("maxItems", "max items"),
        ):  # fmt: skip
            if key in option:
                notes.append(f"{label} {option[key]}")
    return notes


def _table(schema: dict[str, Any], secret: frozenset[str] = frozenset()) -> list[str]:
    properties: dict[str, Any] = schema.get("properties", {})
    if not properties:
        return ["(no fields)"]
    required = set(schema.get("required", []))
    lines = ["| field | type | required | default | meaning |", "| --- | --- | --- | --- | --- |"]
    for name, prop in properties.items():
        default = f"`{json.dumps(prop['default'])}`" if "default" in prop else ""
        hidden = "secret (from the environment or a prompt, never the command line)" if name in secret else ""
        meaning = "; ".join(filter(None, [prop.get("description", ""), *_constraints(prop), hidden]))
        lines.append(
            f"| `{name}` | {_cell(_type(prop))} | {'yes' if name in required else ''} | {_cell(default)} "
            f"| {_cell(meaning)} |"
        )
    return lines


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if "$ref" in value:
            yield str(value["$ref"]).rsplit("/", 1)[-1]
        for item in value.values():
            yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def model_section(title: str, model: type[BaseModel], level: str = "###") -> list[str]:
    """A model's fields, then each nested model or enum it uses (in order of first use)."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    definitions: dict[str, Any] = schema.get("$defs", {})
    lines = [f"{level} {title}", ""]
    if schema.get("description"):
        lines += [_cell(schema["description"]), ""]
    secret = frozenset(alias for alias, f in discovery.model_fields(model).items() if f.secret)
    lines += [*_table(schema, secret), ""]
    for name in dict.fromkeys(_refs([schema.get("properties", {}), *definitions.values()])):
        definition = definitions.get(name, {})
        if "properties" in definition:
            lines += [f"{level}# {name}", ""]
            if definition.get("description"):
                lines += [_cell(definition["description"]), ""]
            lines += [*_table(definition), ""]
        elif "enum" in definition:
            values = ", ".join(f"`{v}`" for v in definition["enum"])
            lines += [f"{level}# {name}", "", f"One of {values}.", ""]
    return lines


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """template.yaml as data; CloudFormation's short-form tags (!Ref, !Sub, ...) read as plain values."""
    import yaml

    class Loader(yaml.SafeLoader):  # type: ignore[misc]
        pass

    def any_tag(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return loader.construct_scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node)
        return loader.construct_mapping(node)

    Loader.add_multi_constructor("!", any_tag)
    template: dict[str, Any] = yaml.load(path.read_text(), Loader=Loader)  # noqa: S506 - SafeLoader subclass
    return template


def _template_parameters() -> list[str]:
    template = load_template()
    lines = [
        "## Template parameters",
        "",
        "Set at deploy time (`sam deploy --parameter-overrides Name=Value`, or `samconfig.toml`).",
        "",
        "| parameter | type | default | allowed | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, spec in template.get("Parameters", {}).items():
        allowed = ", ".join(f"`{v}`" for v in spec.get("AllowedValues", []))
        bounds = [f"{k} {spec[k]}" for k in ("MinValue", "MaxValue") if k in spec]
        default = f"`{json.dumps(spec['Default'])}`" if "Default" in spec else ""
        lines.append(
            f"| `{name}` | {spec.get('Type', '')} | {_cell(default)} | {_cell(', '.join(filter(None, [allowed, *bounds])))} "
            f"| {_cell(str(spec.get('Description', '')))} |"
        )
    return [*lines, ""]


def render() -> str:
    from activation_core.models.config import DestinationsConfig

    lines = [HEADER, *_template_parameters()]
    lines += [
        "## The destinations document",
        "",
        "One JSON document in Parameter Store (stack output `DestinationsConfigParameterName`), written by",
        "`activation config push FILE --stack NAME`. Each instance's `settings`, audience `extras` and",
        "`mapping` targets are then checked by its destination (sections below).",
        "",
        *model_section("Document", DestinationsConfig),
    ]
    for destination_type in discovery.destination_types():
        lines += [f"## Destination `{destination_type}`", ""]
        for key, model in discovery.json_schemas(destination_type).items():
            lines += model_section(f"`{key}`", model)
    for package in discovery.source_packages():
        lines += [f"## Source `{package}`", ""]
        for key, model in discovery.json_schemas(package).items():
            lines += model_section(f"`{key}`", model)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = render()
    if "--check" in args:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT.relative_to(ROOT)} drifted from the models: run python -m activation_cli.docs")
            return 1
        return 0
    Path(OUTPUT).write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

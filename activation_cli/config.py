"""`activation config validate|push|show|example`: the destinations document, checked before it ships.

The document is checked exactly as the functions check it (the layer's models, then each
destination's own `validate_instance`), so what passes here does not fail later in Lambda. Every
error names the instance and the field.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from activation_cli import backfill as backfills
from activation_cli import development, discovery
from activation_cli.console import err, fail, out, print_json
from activation_cli.stack import STACK_ENV, Stack, aws_errors, client, load_stack

app = typer.Typer(
    no_args_is_help=True, help="Validate the destinations config and push it to Parameter Store."
)

CONFIG_OUTPUT = "DestinationsConfigParameterName"
# Parameter Store's standard tier holds 4 KB; Intelligent-Tiering moves a bigger document to the
# advanced tier (8 KB) by itself instead of failing the push.
PARAMETER_TIER = "Intelligent-Tiering"
CONFIG_CACHE_SECONDS = 60


@dataclass(frozen=True)
class Problem:
    instance: str
    field: str
    message: str


def read_document(path: Path) -> Any:
    """A JSON (or, with PyYAML installed, YAML) file, as data."""
    try:
        text = path.read_text()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            fail("YAML needs PyYAML (pip install pyyaml), or write the config as JSON")
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            fail(f"{path} is not valid YAML: {exc}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{path} is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")


def _problem(error: Any) -> Problem:
    return Problem(str(error.instance), str(error.field), str(error.message))


def check(document: Any) -> tuple[Any, list[Problem]]:
    """(the parsed DestinationsConfig or None, every problem found: one per instance at most)."""
    from activation_core.config_store import parse_destinations
    from activation_core.errors import ConfigError
    from activation_core.usage_policy import check_instance

    try:
        config = parse_destinations(document if isinstance(document, dict) else json.dumps(document))
    except ConfigError as exc:
        return None, [_problem(exc)]
    problems: list[Problem] = []
    known = discovery.destination_types()
    for instance in config.destinations:
        validator = discovery.instance_validator(instance.type)
        if validator is None:
            problems.append(
                Problem(instance.id, "type", f"unknown destination type '{instance.type}'; known: {known}")
            )
            continue
        try:
            validator(instance)
            _check_peers(instance, config)
            check_instance(config.usage_policies, instance)
        except ConfigError as exc:
            problems.append(_problem(exc))
    return config, problems


def _check_peers(instance: Any, config: Any) -> None:
    """Rules across instances of one type (Bombora: an audience name once per connection)."""
    module = discovery.service_module(instance.type)
    check_names = getattr(module, "check_audience_names", None)
    if callable(check_names):
        check_names(instance, config.of_type(instance.type))


def _summary_table(config: Any, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("instance", "type", "enabled", "audiences", "mapping rows", "secret"):
        table.add_column(column)
    for instance in config.destinations:
        table.add_row(
            instance.id,
            instance.type,
            "yes" if instance.enabled else "no",
            ", ".join(a.id for a in instance.audiences) or "-",
            str(len(instance.mapping)),
            instance.secret,
        )
    return table


def _report_problems(
    problems: list[Problem], as_json: bool, title: str = "invalid destinations config"
) -> None:
    if as_json:
        print_json({"valid": False, "errors": [asdict(p) for p in problems]})
        raise typer.Exit(1)
    table = Table(title=title, title_justify="left", title_style="bold red")
    for column in ("instance", "field", "problem"):
        table.add_column(column, overflow="fold")
    for problem in problems:
        table.add_row(problem.instance, problem.field, problem.message)
    err.print(table)
    raise typer.Exit(1)


def secret_name(secret: str) -> str:
    """The name part of a secret reference (a name, or an ARN with its random suffix)."""
    if secret.startswith("arn:") and ":secret:" in secret:
        return secret.split(":secret:", 1)[1]
    return secret


def stack_problems(config: Any, stack: Stack) -> list[Problem]:
    """What this stack cannot serve: an unknown type, a secret its function may not read."""
    problems: list[Problem] = []
    types = stack.destination_types()
    for instance in config.destinations:
        if instance.type not in types:
            problems.append(
                Problem(instance.id, "type", f"stack {stack.name} has no '{instance.type}' function")
            )
            continue
        prefix = stack.secret_prefix(instance.type)
        if prefix and not secret_name(instance.secret).startswith(prefix):
            problems.append(
                Problem(
                    instance.id, "secret", f"must be named under '{prefix}' (the function reads only those)"
                )
            )
    return problems


def missing_secrets(config: Any) -> list[str]:
    names: list[str] = []
    secrets = client("secretsmanager")
    for instance in config.destinations:
        try:
            secrets.describe_secret(SecretId=instance.secret)
        except secrets.exceptions.ResourceNotFoundException:
            names.append(instance.secret)
    return names


def _changes(current: Any, new: Any) -> dict[str, list[str]]:
    old = {i.id: i.model_dump_json() for i in current.destinations} if current is not None else {}
    fresh = {i.id: i.model_dump_json() for i in new.destinations}
    return {
        "added": sorted(set(fresh) - set(old)),
        "changed": sorted(k for k in set(fresh) & set(old) if fresh[k] != old[k]),
        "removed": sorted(set(old) - set(fresh)),
    }


def newly_activated(current: Any, new: Any) -> list[dict[str, str]]:
    """(instance, audience) pairs the new config activates and the current one does not: each needs a
    backfill (its audience's next snapshot sends it every member; docs/snapshots.md)."""
    before = (
        {(i.id, a.id) for i in current.destinations for a in i.audiences} if current is not None else set()
    )
    return [
        {"instance": i.id, "audience": a.id}
        for i in new.destinations
        if i.enabled
        for a in i.audiences
        if (i.id, a.id) not in before
    ]


def read_pushed(stack: Stack) -> Any | None:
    """The document in the stack's parameter, parsed (None when it does not parse)."""
    with aws_errors():
        raw = client("ssm").get_parameter(Name=stack.output(CONFIG_OUTPUT))["Parameter"]["Value"]
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return None


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="The destinations document (JSON, or YAML)")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable result")] = False,
) -> None:
    """Check FILE against the models and every destination's own rules; exit 1 on any error."""
    config, problems = check(read_document(file))
    if problems:
        _report_problems(problems, as_json)
    if as_json:
        print_json({"valid": True, "destinations": [i.id for i in config.destinations]})
        return
    out.print(_summary_table(config, f"{file}: valid"))


@app.command()
def push(
    file: Annotated[Path, typer.Argument(help="The destinations document (JSON, or YAML)")],
    stack_name: Annotated[str, typer.Option("--stack", envvar=STACK_ENV, help="The deployed stack")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check everything, write nothing")] = False,
    backfill: Annotated[
        bool,
        typer.Option(
            "--backfill",
            help="Also start the backfill of each newly activated audience from its applied snapshot "
            "(once the functions have read the new config)",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable result")] = False,
) -> None:
    """Validate FILE, check it fits the stack, and write it to the stack's config parameter. Each
    audience it newly activates on an instance is named with what its backfill costs at the vendor."""
    document = read_document(file)
    config, problems = check(document)
    if problems:
        _report_problems(problems, as_json)
    stack = load_stack(stack_name)
    problems = stack_problems(config, stack)
    if problems:
        _report_problems(problems, as_json, f"stack {stack.name} cannot serve this config")
    parameter = stack.output(CONFIG_OUTPUT)
    with aws_errors():
        missing = missing_secrets(config)
        current_doc = read_pushed(stack)
    current, _ = check(current_doc) if current_doc is not None else (None, [])
    changes = _changes(current, config)
    with aws_errors():
        needed = backfills.estimates(stack, config, newly_activated(current, config))
    if not dry_run:
        with aws_errors():
            client("ssm").put_parameter(
                Name=parameter,
                Value=json.dumps(document, separators=(",", ":")),
                Type="String",
                Overwrite=True,
                Tier=PARAMETER_TIER,
            )
    started = _start_backfills(stack, needed, quiet=as_json) if backfill and not dry_run else []
    if as_json:
        print_json(
            {
                "parameter": parameter,
                "written": not dry_run,
                "missingSecrets": missing,
                "backfillNeeded": [e.as_dict() for e in needed],
                "backfills": started,
                **changes,
            }
        )
        return
    out.print(_summary_table(config, f"{'would write' if dry_run else 'wrote'} {parameter}"))
    for kind, ids in changes.items():
        if ids:
            out.print(f"{kind}: {', '.join(ids)}")
    for name in missing:
        err.print(
            f"[yellow]warning:[/] secret {name} does not exist yet: `activation connect ...` creates it"
        )
    if not backfill or dry_run:
        for estimate in needed:
            out.print(estimate.describe())
    if not dry_run:
        out.print(f"Functions read the new config within {CONFIG_CACHE_SECONDS} s (their cache).")


def _start_backfills(stack: Stack, needed: list[Any], *, quiet: bool) -> list[dict[str, Any]]:
    from activation_cli.snapshot import start_backfill

    audiences = dict.fromkeys(e.audience for e in needed)
    with aws_errors():
        return [start_backfill(stack, audience, quiet=quiet) for audience in audiences]


@app.command()
def show(
    stack_name: Annotated[str, typer.Option("--stack", envvar=STACK_ENV, help="The deployed stack")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the document itself")] = False,
) -> None:
    """The config the stack's functions read now (and whether it is valid)."""
    stack = load_stack(stack_name)
    document = read_pushed(stack)
    if document is None:
        fail(f"{stack.output(CONFIG_OUTPUT)} does not hold JSON: push a valid document")
    if as_json:
        print_json(document)
        return
    config, problems = check(document)
    if problems:
        _report_problems(problems, as_json=False)
    out.print(_summary_table(config, stack.output(CONFIG_OUTPUT)))


@app.command()
def example() -> None:
    """Print the example document (one instance per destination) to start a config from."""
    development.require("config example", moto=False, files=("shared/config",))
    from local.examples import example_config

    print_json(example_config())

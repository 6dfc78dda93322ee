"""`activation connect <kind>`: write a connection's secret (Secrets Manager JSON), checked by the
destination's own connection model; `connect outreach url|exchange|store`: the one-time OAuth step.

Secret values never come from the command line (shell history, process lists): a field the model
marks secret (`repr=False`) is read from `$<KIND>_<FIELD>` (e.g. RAINFOCUS_CLIENT_SECRET) or a hidden
prompt. The cached access token is dropped on every write (it belongs to the old credentials), and
with --stack the write happens under the functions' token lease, so it cannot interleave with a
token refresh. The kinds are discovered from the models (`<kind>-connection-secret` in JSON_SCHEMAS).
"""

from __future__ import annotations

import json
import os
import re
import secrets as random_tokens
import sys
import time
from collections.abc import Callable
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table

from activation_cli import discovery
from activation_cli.console import err, fail, out, print_json
from activation_cli.stack import STACK_ENV, aws_errors, client, load_stack

app = typer.Typer(
    no_args_is_help=True, help="Set up connection secrets (and Outreach's one-time OAuth login)."
)

CACHED_TOKEN = "cachedToken"  # noqa: S105 - the field name the token provider uses
LEASE_SECONDS = 30.0
LEASE_WAIT_SECONDS = 20.0


def env_name(kind: str, alias: str) -> str:
    """`rainfocus`, `clientSecret` -> `RAINFOCUS_CLIENT_SECRET`."""
    return f"{kind}_{re.sub(r'(?<!^)(?=[A-Z])', '_', alias)}".upper()


def read_secret(secret_id: str) -> dict[str, Any] | None:
    """The secret's JSON object, or None when it does not exist."""
    secrets = client("secretsmanager")
    try:
        raw = secrets.get_secret_value(SecretId=secret_id)["SecretString"]
    except secrets.exceptions.ResourceNotFoundException:
        return None
    try:
        document = json.loads(raw)
    except json.JSONDecodeError:
        fail(f"secret {secret_id} does not hold JSON; use --replace to overwrite it")
    if not isinstance(document, dict):
        fail(f"secret {secret_id} is not a JSON object; use --replace to overwrite it")
    return document


def write_secret(secret_id: str, document: dict[str, Any], exists: bool) -> None:
    secrets = client("secretsmanager")
    text = json.dumps(document)
    if exists:
        secrets.put_secret_value(SecretId=secret_id, SecretString=text)
    else:
        secrets.create_secret(Name=secret_id, SecretString=text, Description="audience activation connection")


class TokenLease:
    """The functions' lease on a connection's token (`token#<secret>` in the state table), if known."""

    def __init__(
        self, table: str | None, secret_id: str, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._lock: Any = None
        self._lease: Any = None
        self._key = f"token#{secret_id}"
        self._sleep = sleep
        if table:
            from activation_core.locks import LeaseLock

            self._lock = LeaseLock(table, dynamodb=client("dynamodb"))

    def __enter__(self) -> TokenLease:
        if self._lock is None:
            return self
        waited = 0.0
        while (lease := self._lock.try_acquire(self._key, LEASE_SECONDS)) is None:
            if waited >= LEASE_WAIT_SECONDS:
                fail("a token refresh holds the connection's lease; try again in a minute")
            self._sleep(0.5)
            waited += 0.5
        self._lease = lease
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is not None and self._lease is not None:
            self._lock.release(self._lease)


def _stack_context(stack_name: str | None, kind: str, secret_id: str) -> str | None:
    """With a stack: check the secret's name fits the function's prefix; returns the state table."""
    if not stack_name:
        return None
    stack = load_stack(stack_name)
    prefix = stack.secret_prefix(kind)
    name = secret_id.split(":secret:", 1)[-1]
    if prefix and not name.startswith(prefix):
        fail(f"the {kind} functions read only secrets named under '{prefix}'; '{secret_id}' is not")
    return stack.outputs.get("StateTableName")


def _parse_assignments(
    assignments: list[str], fields: dict[str, discovery.ModelField], kind: str
) -> dict[str, str]:
    values: dict[str, str] = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep or key not in fields:
            fail(f"--set takes FIELD=VALUE with FIELD one of {', '.join(fields)}; got '{key}'")
        if fields[key].secret:
            fail(
                f"{key} is a secret: set ${env_name(kind, key)} or answer the prompt, never on the command line"
            )
        values[key] = value
    return values


def _validation_problem(exc: ValidationError) -> str:
    # Field names and messages only: the values are credentials.
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
        for e in exc.errors(include_input=False, include_url=False)
    )


def set_connection(
    kind: discovery.ConnectionKind,
    secret_id: str,
    assignments: list[str],
    *,
    stack_name: str | None,
    replace: bool,
    as_json: bool,
) -> None:
    fields = discovery.model_fields(kind.model)
    updates = _parse_assignments(assignments, fields, kind.name)
    sources = dict.fromkeys(updates, "--set")
    table = _stack_context(stack_name, kind.name, secret_id)
    for alias in fields:
        env_value = os.environ.get(env_name(kind.name, alias))
        if env_value and alias not in updates:
            updates[alias], sources[alias] = env_value, f"${env_name(kind.name, alias)}"
    with aws_errors():
        existing = read_secret(secret_id)
        base = {} if replace or existing is None else existing
        # Prompts come before the lease: a person typing must not hold up the functions' refreshes.
        for alias, field in fields.items():
            if field.required and not updates.get(alias) and not base.get(alias):
                label = f"{alias} ({field.description})" if field.description else alias
                updates[alias], sources[alias] = (
                    typer.prompt(label, hide_input=field.secret, err=True),
                    "prompt",
                )
        with TokenLease(table, secret_id):
            existing = read_secret(secret_id)  # again, under the lease: a refresh may have rotated it
            base = {} if replace or existing is None else existing
            document = {k: v for k, v in base.items() if k != CACHED_TOKEN}
            document.update(updates)
            try:
                kind.model.model_validate(document)
            except ValidationError as exc:
                fail(f"not a valid {kind.name} connection: {_validation_problem(exc)}")
            write_secret(secret_id, document, exists=existing is not None)
    shown = {
        alias: ("<set>" if alias not in fields or fields[alias].secret else str(value))
        for alias, value in document.items()
    }
    if as_json:
        print_json({"secret": secret_id, "created": existing is None, "fields": shown, "sources": sources})
        return
    view = Table(title=f"{'created' if existing is None else 'updated'} {secret_id}", title_justify="left")
    for column in ("field", "value", "from"):
        view.add_column(column)
    for alias, value in shown.items():
        view.add_row(alias, value, sources.get(alias, "kept"))
    out.print(view)
    out.print("The cached token was dropped: functions mint a new one when theirs expires or is refused.")


def _register_kind(kind: discovery.ConnectionKind) -> None:
    fields = discovery.model_fields(kind.model)
    field_help = ", ".join(
        f"{a}{'*' if f.required else ''}{' (secret)' if f.secret else ''}" for a, f in fields.items()
    )

    def command(
        secret: Annotated[str, typer.Option("--secret", help="Secrets Manager name (as in the config)")],
        assignments: Annotated[
            list[str] | None,
            typer.Option("--set", metavar="FIELD=VALUE", help="A non-secret field (repeatable)"),
        ] = None,
        stack_name: Annotated[
            str | None,
            typer.Option("--stack", envvar=STACK_ENV, help="Check the name and write under the token lease"),
        ] = None,
        replace: Annotated[bool, typer.Option("--replace", help="Start from an empty secret")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable result")] = False,
    ) -> None:
        set_connection(
            kind, secret, assignments or [], stack_name=stack_name, replace=replace, as_json=as_json
        )

    secret_envs = " or ".join(f"${env_name(kind.name, a)}" for a, f in fields.items() if f.secret)
    command.__doc__ = (
        f"Create or update a {kind.name} connection secret. Fields: {field_help} (* required). "
        f"Secret fields come from {secret_envs or 'the environment'}, else a hidden prompt."
    )
    app.command(kind.name)(command)


@app.command("show")
def show(
    secret: Annotated[str, typer.Option("--secret", help="Secrets Manager name")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable result")] = False,
) -> None:
    """Which fields a connection secret holds (values of secret fields hidden) and its token's expiry."""
    with aws_errors():
        document = read_secret(secret)
    if document is None:
        fail(f"no secret {secret}")
    secret_fields = {
        alias
        for kind in discovery.connection_kinds().values()
        for alias, f in discovery.model_fields(kind.model).items()
        if f.secret
    }
    shown: dict[str, str] = {}
    for key, value in document.items():
        if key == CACHED_TOKEN and isinstance(value, dict):
            expires = value.get("expiresAt")
            shown[key] = (
                f"expires {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(float(expires)))}"
                if isinstance(expires, int | float)
                else "<set>"
            )
        elif key in secret_fields or not isinstance(value, str | int | float | bool):
            shown[key] = "<set>"
        else:
            shown[key] = str(value)
    if as_json:
        print_json({"secret": secret, "fields": shown})
        return
    for key, value in shown.items():
        out.print(f"{key}: {value}", markup=False)


# ------------------------------------------------------------------------- outreach (OAuth code grant)

outreach = typer.Typer(
    no_args_is_help=True, help="Outreach's one-time login (OAuth authorization code, OUT-01)."
)


@outreach.command("url")
def outreach_url(
    client_id: Annotated[str, typer.Option("--client-id", help="The Outreach app's client id")],
    redirect_uri: Annotated[str, typer.Option("--redirect-uri", help="The app's redirect URI")],
    scope: Annotated[str | None, typer.Option("--scope", help="OAuth scopes")] = None,
    base_url: Annotated[str, typer.Option("--base-url")] = "https://api.outreach.io",
) -> None:
    """Print the browser URL of the one-time login; Outreach redirects back with ?code=..."""
    from outreach.client import DEFAULT_SCOPE, authorize_url

    state = random_tokens.token_urlsafe(16)
    typer.echo(authorize_url(base_url, client_id, redirect_uri, scope or DEFAULT_SCOPE, state))
    err.print(f"[dim]state={state}: check that the redirect carries it back[/]")


def _outreach_fields(client_id: str | None, redirect_uri: str | None, base_url: str | None) -> dict[str, str]:
    from outreach.authorize import CLIENT_SECRET_ENV

    fields = {"clientId": client_id or "", "redirectUri": redirect_uri or "", "baseUrl": base_url or ""}
    fields["clientSecret"] = os.environ.get(CLIENT_SECRET_ENV, "")
    return {k: v for k, v in fields.items() if v}


@outreach.command("exchange")
def outreach_exchange(
    *,
    secret: Annotated[str, typer.Option("--secret", help="The connection's secret name (as in the config)")],
    code: Annotated[str, typer.Option("--code", help="The `code` of the login's redirect (valid minutes)")],
    client_id: Annotated[str | None, typer.Option("--client-id")] = None,
    redirect_uri: Annotated[str | None, typer.Option("--redirect-uri")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url")] = None,
    stack_name: Annotated[
        str | None,
        typer.Option("--stack", envvar=STACK_ENV, help="Check the name and write under the token lease"),
    ] = None,
    allow_loopback: Annotated[bool, typer.Option("--allow-loopback", help="Local fakes only")] = False,
) -> None:
    """Exchange the login's code; store the refresh token (the client secret comes from
    $OUTREACH_CLIENT_SECRET or the existing secret)."""
    from activation_core.errors import ActivationError
    from activation_core.locks import LeaseLock
    from outreach.authorize import exchange

    table = _stack_context(stack_name, "outreach", secret)
    lock = LeaseLock(table, dynamodb=client("dynamodb")) if table else None
    try:
        with aws_errors():
            grant = exchange(
                secret, code, _outreach_fields(client_id, redirect_uri, base_url),
                secrets=client("secretsmanager"), lock=lock, allow_loopback=allow_loopback,
            )  # fmt: skip
    except ActivationError as exc:
        fail(f"Outreach refused the exchange: {exc.reason}: {exc.detail}")
    except SystemExit as exc:  # authorize.py reports a missing field or a held lease this way
        fail(str(exc.code))
    out.print(f"stored a refresh token in {secret}; the access token is valid for {grant.expires_in:.0f} s")


@outreach.command("store")
def outreach_store(
    secret: Annotated[str, typer.Option("--secret", help="The connection's secret name (as in the config)")],
    client_id: Annotated[str | None, typer.Option("--client-id")] = None,
    redirect_uri: Annotated[str | None, typer.Option("--redirect-uri")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url")] = None,
    stack_name: Annotated[
        str | None,
        typer.Option("--stack", envvar=STACK_ENV, help="Check the name and write under the token lease"),
    ] = None,
) -> None:
    """Store a refresh token obtained elsewhere, read from $OUTREACH_REFRESH_TOKEN or stdin."""
    from activation_core.locks import LeaseLock
    from outreach.authorize import REFRESH_TOKEN_ENV, store_grant
    from outreach.authorize import read_secret as read_outreach

    refresh_token = os.environ.get(REFRESH_TOKEN_ENV) or sys.stdin.readline().strip()
    if not refresh_token:
        fail(f"no refresh token: set ${REFRESH_TOKEN_ENV} or pipe it on stdin")
    table = _stack_context(stack_name, "outreach", secret)
    lock = LeaseLock(table, dynamodb=client("dynamodb")) if table else None
    secrets = client("secretsmanager")
    try:
        with aws_errors():
            document = {
                **read_outreach(secrets, secret),
                **_outreach_fields(client_id, redirect_uri, base_url),
            }
            store_grant(secret, document, refresh_token, secrets=secrets, lock=lock)
    except SystemExit as exc:
        fail(str(exc.code))
    out.print(f"stored a refresh token in {secret}; the functions mint an access token on first use")


app.add_typer(outreach, name="outreach")
for _kind in discovery.connection_kinds().values():
    if _kind.name != "outreach":
        _register_kind(_kind)

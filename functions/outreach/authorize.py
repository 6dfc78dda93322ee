"""The one-time authorization of an Outreach connection (OUT-01), run by a person, not by Lambda.

Outreach uses the OAuth 2 authorization code grant: a user logs in once, in a browser, and Outreach
redirects to the app's redirect URI with `?code=...`. This command exchanges that code (or takes a
refresh token obtained elsewhere) and stores the refresh token in the connection's secret, from
where the functions refresh and rotate it. Nothing secret is taken on the command line: the client
secret and a refresh token are read from the environment (or the existing secret, or stdin).

    PYTHONPATH=functions:layers/activation_core python -m outreach.authorize url \\
        --client-id ID --redirect-uri https://example.com/oauth/outreach
    # log in with that URL in a browser, copy the `code` from the redirect, then within minutes:
    OUTREACH_CLIENT_SECRET=... PYTHONPATH=functions:layers/activation_core python -m outreach.authorize \\
        exchange --secret activation-prod/outreach/sales --client-id ID \\
        --redirect-uri https://example.com/oauth/outreach --code CODE --state-table <StateTableName>
    # or, with a refresh token you already hold:
    OUTREACH_REFRESH_TOKEN=... python -m outreach.authorize store --secret activation-prod/outreach/sales

`--state-table` (stack output StateTableName) makes the write wait for the functions' token lease, so
it cannot interleave with a refresh in flight.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets as random_tokens
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError
from pydantic import ValidationError

from activation_core import aws
from activation_core.credentials import CACHED_TOKEN_FIELD
from activation_core.locks import Lease, LeaseLock
from activation_core.oauth import TokenGrant
from outreach.client import DEFAULT_SCOPE, authorize_url, exchange_code
from outreach.models import OutreachConnection

CLIENT_SECRET_ENV = "OUTREACH_CLIENT_SECRET"  # noqa: S105 - an environment variable's name
REFRESH_TOKEN_ENV = "OUTREACH_REFRESH_TOKEN"  # noqa: S105 - an environment variable's name
_LEASE_SECONDS = 30.0
_LEASE_WAIT_SECONDS = 20.0


def read_secret(secrets: Any, secret_id: str) -> dict[str, Any]:
    """The connection secret's JSON, or {} when it does not exist yet."""
    try:
        raw = secrets.get_secret_value(SecretId=secret_id)["SecretString"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return {}
        raise
    document = json.loads(raw)
    if not isinstance(document, dict):
        raise SystemExit(f"secret {secret_id} is not a JSON object")
    return document


def _write_secret(secrets: Any, secret_id: str, document: Mapping[str, Any], exists: bool) -> None:
    text = json.dumps(document)
    if exists:
        secrets.put_secret_value(SecretId=secret_id, SecretString=text)
    else:
        secrets.create_secret(Name=secret_id, SecretString=text)


def _take_lease(lock: LeaseLock | None, secret_id: str, sleep: Callable[[float], None]) -> Lease | None:
    """The functions' token lease (same key as the TokenProvider's): no refresh runs while we write."""
    if lock is None:
        return None
    waited = 0.0
    while True:
        lease = lock.try_acquire(f"token#{secret_id}", _LEASE_SECONDS)
        if lease is not None:
            return lease
        if waited >= _LEASE_WAIT_SECONDS:
            raise SystemExit("a token refresh holds the lease; try again in a minute")
        sleep(0.5)
        waited += 0.5


def store_grant(
    secret_id: str,
    fields: Mapping[str, Any],
    refresh_token: str,
    grant: TokenGrant | None = None,
    *,
    secrets: Any,
    lock: LeaseLock | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Write the connection fields and refresh token (plus the access token of `grant`, if any)."""
    lease = _take_lease(lock, secret_id, sleep)
    try:
        existing = read_secret(secrets, secret_id)
        document = {**existing, **{k: v for k, v in fields.items() if v}, "refreshToken": refresh_token}
        # An access token of an earlier login may belong to another user: never keep it.
        document.pop(CACHED_TOKEN_FIELD, None)
        if grant is not None:
            now = clock()
            document[CACHED_TOKEN_FIELD] = {
                "accessToken": grant.access_token,
                "expiresAt": now + grant.expires_in,
                "mintedAt": now,
            }
        _check_connection(document)  # refuse to store a connection the functions cannot use
        _write_secret(secrets, secret_id, document, exists=bool(existing))
        return document
    finally:
        if lock is not None and lease is not None:
            lock.release(lease)


def exchange(
    secret_id: str,
    code: str,
    fields: Mapping[str, Any] | None = None,
    *,
    secrets: Any,
    lock: LeaseLock | None = None,
    allow_loopback: bool = False,
    clock: Callable[[], float] = time.time,
) -> TokenGrant:
    """Exchange a login's authorization code; store the refresh token and access token it returns."""
    document = {**read_secret(secrets, secret_id), **{k: v for k, v in (fields or {}).items() if v}}
    connection = _check_connection(document)
    grant = exchange_code(connection, code, allow_loopback=allow_loopback)
    if not grant.refresh_token:
        raise SystemExit("the token endpoint returned no refresh_token: check the app's scopes")
    store_grant(secret_id, document, grant.refresh_token, grant, secrets=secrets, lock=lock, clock=clock)
    return grant


def _check_connection(document: Mapping[str, Any]) -> OutreachConnection:
    try:
        return OutreachConnection.model_validate(document)
    except ValidationError as exc:
        # Field names only: the values are credentials.
        missing = sorted({str(e["loc"][0]) for e in exc.errors(include_input=False)})
        raise SystemExit(
            f"the connection needs {', '.join(missing)} (options or the existing secret)"
        ) from None


def _fields(args: argparse.Namespace) -> dict[str, str]:
    return {
        "baseUrl": args.base_url or "",
        "clientId": args.client_id or "",
        "clientSecret": os.environ.get(CLIENT_SECRET_ENV, ""),
        "redirectUri": args.redirect_uri or "",
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m outreach.authorize", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    url = commands.add_parser("url", help="print the browser URL of the one-time login")
    url.add_argument("--client-id", required=True)
    url.add_argument("--redirect-uri", required=True)
    url.add_argument("--scope", default=DEFAULT_SCOPE)
    url.add_argument("--base-url", default="https://api.outreach.io")
    for name, text in (
        ("exchange", "exchange the login's authorization code and store the refresh token"),
        ("store", f"store a refresh token read from ${REFRESH_TOKEN_ENV} or stdin"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument(
            "--secret", required=True, help="the connection's secret name (as in the config)"
        )
        command.add_argument("--client-id")
        command.add_argument("--redirect-uri")
        command.add_argument("--base-url")
        command.add_argument("--state-table", help="stack output StateTableName: write under the token lease")
        command.add_argument("--allow-loopback", action="store_true", help="local fakes only")
        if name == "exchange":
            command.add_argument("--code", required=True)
    return parser


def main(argv: Sequence[str] | None = None, *, secrets: Any | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "url":
        print(
            authorize_url(
                args.base_url, args.client_id, args.redirect_uri, args.scope, random_tokens.token_urlsafe(16)
            )
        )
        return 0
    client = secrets if secrets is not None else aws.client("secretsmanager")
    lock = LeaseLock(args.state_table) if args.state_table else None
    if args.command == "exchange":
        grant = exchange(
            args.secret,
            args.code,
            _fields(args),
            secrets=client,
            lock=lock,
            allow_loopback=args.allow_loopback,
        )
        print(f"stored a refresh token in {args.secret}; access token valid for {grant.expires_in:.0f} s")
        return 0
    refresh_token = os.environ.get(REFRESH_TOKEN_ENV) or sys.stdin.readline().strip()
    if not refresh_token:
        print(f"no refresh token: set ${REFRESH_TOKEN_ENV} or pipe it on stdin", file=sys.stderr)
        return 2
    document = {**read_secret(client, args.secret), **{k: v for k, v in _fields(args).items() if v}}
    store_grant(args.secret, document, refresh_token, secrets=client, lock=lock)
    print(f"stored a refresh token in {args.secret}; the functions mint an access token on first use")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`activation sfmc discover`: the account's data extensions and fields -> an ingestion config to edit.

Reads the connection secret (made by `activation connect sfmc`), asks SFMC for one token and its SOAP
endpoint, retrieves every data extension and field, and writes a config skeleton with every data
extension disabled (SFMC-03: nobody types keys, primary keys and field types by hand). System data
views, native objects and synchronized data extensions are listed as excluded, never offered.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from activation_cli.connect import read_secret
from activation_cli.console import fail, out, print_json
from activation_cli.stack import aws_errors

app = typer.Typer(no_args_is_help=True, help="Salesforce Marketing Cloud source: discover data extensions.")


@app.command()
def discover(
    *,
    secret: Annotated[str, typer.Option("--secret", help="The SFMC connection's secret name")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the config skeleton")] = Path(
        "sfmc-ingestion.discovered.json"
    ),
    source_id: Annotated[
        str, typer.Option("--source-id", help="The source's id in the skeleton")
    ] = "sfmc-main",
    allow_loopback: Annotated[bool, typer.Option("--allow-loopback", help="Local fakes only")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary")] = False,
) -> None:
    """List the account's data extensions and their fields; write an ingestion config skeleton to edit."""
    from activation_core.errors import ActivationError
    from sfmc_ingestion import client as sfmc
    from sfmc_ingestion.config import parse_ingestion_config
    from sfmc_ingestion.discovery import discover as run_discovery
    from sfmc_ingestion.discovery import skeleton
    from sfmc_ingestion.models import SfmcConnection

    with aws_errors():
        document = read_secret(secret)
    if document is None:
        fail(f"no secret {secret}: create it with `activation connect sfmc --secret {secret}`")
    try:
        connection = SfmcConnection.model_validate(document)
        grant = sfmc.fetch_token(connection.model_dump(by_alias=True), allow_loopback=allow_loopback)
        soap = grant.connection_updates.get("soapInstanceUrl") or connection.soap_instance_url
        if not soap:
            fail(
                "the token endpoint returned no soap_instance_url: is the installed package Server-to-Server?"
            )

        def retrieve(object_type: str, properties: Any) -> list[dict[str, str]]:
            return sfmc.retrieve(soap, grant.access_token, object_type, properties)

        found = run_discovery(retrieve)
    except ActivationError as exc:
        fail(f"SFMC refused the discovery: {exc.reason}: {exc.detail}")
    except ValueError as exc:  # the secret's fields (pydantic), never their values
        fail(f"secret {secret} is not an SFMC connection: {type(exc).__name__}")
    config = skeleton(found, source_id=source_id, secret=secret)
    offered = config["sources"][0]["dataExtensions"]
    if not offered:
        fail("no data extension with usable fields in this account (see the excluded ones with --json)")
    parse_ingestion_config(config)  # the skeleton is valid as written: every data extension disabled
    output.write_text(json.dumps(config, indent=2) + "\n")
    summary: dict[str, Any] = {
        "output": str(output),
        "dataExtensions": [
            {"key": e["key"], "fields": len(e["fields"]), "primaryKey": e["primaryKey"],
             "incrementalColumn": e["incrementalColumn"]}
            for e in offered
        ],
        "excluded": [{"key": de.key, "reason": de.excluded} for de in found if de.excluded],
    }  # fmt: skip
    if as_json:
        print_json(summary)
        return
    for entry in summary["dataExtensions"]:
        out.print(
            f"{entry['key']:<32} {entry['fields']:>3} fields  primary key {','.join(entry['primaryKey'])}"
            f"  incremental {entry['incrementalColumn'] or '- (full load)'}"
        )
    for excluded in summary["excluded"]:
        out.print(f"{excluded['key']:<32} excluded: {excluded['reason']}")
    out.print(
        f"wrote {output}: {len(offered)} data extension(s), all disabled. Enable the ones to ingest, check"
        " the mapping and audiences, then `activation ingest validate` and `activation ingest push`."
    )

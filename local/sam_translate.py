"""SAM -> CloudFormation, offline, the way `sam package` + the Serverless transform would do it.

moto has no Serverless transform and the translator rejects local `CodeUri`s, so local folders are
zipped, handed to `upload` (which returns an s3:// URI) and the template is translated here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

log = logging.getLogger(__name__)

Upload = Callable[[str, Path], str]

# Function properties that only make sense with Lambda aliases/async config, which moto cannot deploy.
UNSUPPORTED_FUNCTION_PROPS = (
    "AutoPublishAlias",
    "AutoPublishCodeSha256",
    "DeploymentPreference",
    "ProvisionedConcurrencyConfig",
    "EventInvokeConfig",
)
LAYER_SKIP = {"Makefile", "requirements.txt"}
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: same folder -> same zip -> same code hash


def translate(
    template_path: Path, *, region: str, parameters: dict[str, str], upload: Upload
) -> dict[str, Any]:
    """Return the CloudFormation template for a SAM template, with local artifacts uploaded."""
    template_path = Path(template_path).resolve()
    sam: dict[str, Any] = yaml_parse(template_path.read_text())
    _rewrite_local_artifacts(sam, template_path.parent, upload)
    translator = Translator(
        managed_policy_map={},
        sam_parser=Parser(),
        boto_session=boto3.session.Session(region_name=region),  # only region_name is read
    )
    return translator.translate(  # type: ignore[no-any-return]
        sam, parameter_values=dict(parameters), get_managed_policy_map=dict
    )


def _rewrite_local_artifacts(sam: dict[str, Any], base: Path, upload: Upload) -> None:
    uploaded: dict[tuple[Path, bool, bool], str] = {}  # one zip per folder even when functions share CodeUri

    def to_s3(logical_id: str, uri: Any, *, layer: bool, package: bool = False) -> Any:
        if not isinstance(uri, str) or uri.startswith("s3://"):
            return uri
        folder = (base / uri).resolve()
        if (folder, layer, package) not in uploaded:
            zipped = zip_folder(folder, layer=layer, package=package)
            uploaded[folder, layer, package] = upload(logical_id, zipped)
        return uploaded[folder, layer, package]

    globals_fn = sam.get("Globals", {}).get("Function", {})
    _strip_unsupported("Globals.Function", globals_fn)
    if "CodeUri" in globals_fn:
        globals_fn["CodeUri"] = to_s3("GlobalsFunction", globals_fn["CodeUri"], layer=False)
    for logical_id, res in sam.get("Resources", {}).items():
        props = res.setdefault("Properties", {})
        kind = res.get("Type")
        if kind == "AWS::Serverless::Function":
            _strip_unsupported(logical_id, props)
            # functions/Makefile (`BuildMethod: makefile`) ships the CodeUri folder under its own name.
            package = res.get("Metadata", {}).get("BuildMethod") == "makefile"
            if "CodeUri" in props:
                props["CodeUri"] = to_s3(logical_id, props["CodeUri"], layer=False, package=package)
        elif kind == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = to_s3(logical_id, props.get("ContentUri"), layer=True)
        elif kind == "AWS::Serverless::StateMachine" and isinstance(props.get("DefinitionUri"), str):
            asl = base / props.pop("DefinitionUri")
            text = asl.read_text()
            props["Definition"] = json.loads(text) if asl.suffix == ".json" else yaml_parse(text)


def _strip_unsupported(where: str, props: dict[str, Any]) -> None:
    for key in UNSUPPORTED_FUNCTION_PROPS:
        if props.pop(key, None) is not None:
            log.warning("local stack: dropped %s.%s (moto cannot deploy it)", where, key)


def zip_folder(folder: Path, *, layer: bool, package: bool = False, out_dir: Path | None = None) -> Path:
    """Zip a code folder deterministically, as its build lays it out: a layer's content under `python/`,
    a function package's Python files under its own name (functions/Makefile), anything else at the root."""
    if not folder.is_dir():
        raise FileNotFoundError(f"artifact folder not found: {folder}")
    prefix = "python/" if layer and not (folder / "python").is_dir() else f"{folder.name}/" if package else ""
    files = sorted(_code_files(folder, skip=LAYER_SKIP if layer else set()))
    if package:  # its Python files only, as functions/Makefile copies them
        files = [f for f in files if f.suffix == ".py"]
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.relative_to(folder).as_posix().encode() + b"\0" + f.read_bytes())
    out_dir = out_dir or Path(tempfile.gettempdir()) / "local-stack-zips"
    out_dir.mkdir(parents=True, exist_ok=True)
    digest.update(prefix.encode())
    out = out_dir / f"{folder.name}-{digest.hexdigest()[:16]}.zip"
    if not out.exists():
        # A scratch name of this process's own: several processes (pytest workers, two checkouts) may
        # zip the same folder into this shared directory at once; the rename makes one zip whole.
        handle, scratch = tempfile.mkstemp(prefix=f"{out.stem}-", suffix=".tmp", dir=out_dir)
        tmp = Path(scratch)
        try:
            with os.fdopen(handle, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
                for f in files:
                    info = zipfile.ZipInfo(prefix + f.relative_to(folder).as_posix(), _ZIP_DATE)
                    info.external_attr = 0o644 << 16
                    zf.writestr(info, f.read_bytes(), zipfile.ZIP_DEFLATED)
            tmp.replace(out)
        finally:
            tmp.unlink(missing_ok=True)
    return out


def _code_files(folder: Path, skip: set[str]) -> Iterator[Path]:
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if path.is_file() and "__pycache__" not in rel.parts and path.suffix != ".pyc":
            if len(rel.parts) == 1 and rel.name in skip:
                continue
            yield path

"""The development commands' one way to reach the repository's `local/` package (the local stack, the
vendor fakes, the example config and sample events) and the dev extras (moto).

An operator's install (`pip install .`) runs every other command without them; `activation local up`,
`activation preview` and `activation config example` call `require()` before importing `local`, so
that a missing piece is a clear error rather than an ImportError or an empty example.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from activation_cli.console import fail

_WHERE_FROM = {"local": "the repository's local/ package", "moto": "the dev extras (moto)"}


def require(command: str, *, moto: bool = True, files: Sequence[str] = ()) -> Path:
    """The repository root `local` runs from, with `files` (relative paths) in it; else fail naming
    what is missing."""
    modules = ("local", "moto") if moto else ("local",)
    missing = [_WHERE_FROM[name] for name in modules if importlib.util.find_spec(name) is None]
    if not missing:
        import local

        root = Path(local.__file__).resolve().parent.parent
        absent = [name for name in files if not (root / name).exists()]
        if not absent:
            return root
        missing = [f"the repository around local/ ({', '.join(absent)} missing under {root})"]
    fail(
        f"`activation {command}` is a development command: it needs {' and '.join(missing)}. "
        "Run it from a clone of the repository after `make install` (pip install -e '.[dev]')."
    )

"""Make moto 5.2.5's EventBridge -> SQS fan-out affordable for flows that publish hundreds of events.

For every event and every matching SQS target, moto's `EventTemplateParser.parse` compiles the
target's JSONPath expressions from scratch with jsonpath-ng, which builds a PLY parser each time:
about 18 ms per event per target (55 ms per `Profile Updated` event with the three profile rules;
measured with cProfile on this machine). Compiled expressions are immutable, so caching them by
their text changes nothing but the time: 20 ms per event afterwards.

Additive and idempotent; must run in the process hosting the moto server; `restore()` undoes it.
"""

from __future__ import annotations

import functools
from typing import Any

import jsonpath_ng.ext

_UPSTREAM: dict[str, Any] = {}


def apply() -> None:
    if "jsonpath_ng.ext.parse" in _UPSTREAM:
        return
    upstream = getattr(jsonpath_ng.ext, "parse")  # noqa: B009 - not re-exported for type checkers
    _UPSTREAM["jsonpath_ng.ext.parse"] = upstream
    # moto imports `parse` from jsonpath_ng.ext inside the function, so the module attribute is enough.
    setattr(jsonpath_ng.ext, "parse", functools.lru_cache(maxsize=512)(upstream))  # noqa: B010


def restore() -> None:
    upstream = _UPSTREAM.pop("jsonpath_ng.ext.parse", None)
    if upstream is not None:
        setattr(jsonpath_ng.ext, "parse", upstream)  # noqa: B010


def applied() -> bool:
    return "jsonpath_ng.ext.parse" in _UPSTREAM

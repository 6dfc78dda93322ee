"""Make moto 5.2.5 affordable for flows that publish and queue thousands of events. Each speed-up
changes nothing but the time (measured with cProfile on this machine):

- EventBridge -> SQS fan-out: for every event and every matching SQS target, moto's
  `EventTemplateParser.parse` compiles the target's JSONPath expressions from scratch with
  jsonpath-ng, which builds a PLY parser each time: about 18 ms per event per target (55 ms per
  `Profile Updated` event with the three profile rules). Compiled expressions are immutable, so
  caching them by their text leaves 20 ms per event.
- SQS clock: `Message.visible` / `delayed` read the time through `moto.core.utils.unix_time`, which
  builds two naive datetimes and runs an import per call (~13 us); moto checks both for every queued
  message on every receive and every attribute count, and recomputes all queue attributes for every
  message it returns (the retention check). A receive of 10 from a queue holding 2,000 messages took
  4 s. `time.time()` is the same clock; the retention check reads the one attribute it needs.
- SQS delete: `Message.had_receipt_handle` builds a new list of every handle the message ever had,
  for every queued message, twice per deleted message; comparing in place gives the same answer.

Additive and idempotent; must run in the process hosting the moto server; `restore()` undoes it.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import jsonpath_ng.ext
from moto.sqs import models as sqs_models

_UPSTREAM: dict[str, Any] = {}


def _unix_time(dt: Any = None) -> float:
    return time.time() if dt is None else float(_UPSTREAM["sqs.unix_time"](dt))


def _unix_time_millis(dt: Any = None) -> float:
    return _unix_time(dt) * 1000.0


def _is_message_valid_based_on_retention_period(
    backend: sqs_models.SQSBackend, queue_name: str, message: sqs_models.Message
) -> bool:
    retention_period = int(getattr(backend.get_queue(queue_name), "message_retention_period"))  # noqa: B009
    return retention_period + message.sent_timestamp / 1000 > time.time()  # type: ignore[operator]


def _had_receipt_handle(message: sqs_models.Message, receipt_handle: str) -> bool:
    return receipt_handle == message.receipt_handle or receipt_handle in message._old_receipt_handles


def apply() -> None:
    if applied():
        return
    upstream = getattr(jsonpath_ng.ext, "parse")  # noqa: B009 - not re-exported for type checkers
    _UPSTREAM["jsonpath_ng.ext.parse"] = upstream
    # moto imports `parse` from jsonpath_ng.ext inside the function, so the module attribute is enough.
    setattr(jsonpath_ng.ext, "parse", functools.lru_cache(maxsize=512)(upstream))  # noqa: B010

    # moto.sqs.models calls the names it imported from moto.core.utils: replace them there.
    for name, fast in (("unix_time", _unix_time), ("unix_time_millis", _unix_time_millis)):
        _UPSTREAM[f"sqs.{name}"] = getattr(sqs_models, name)
        setattr(sqs_models, name, fast)
    _UPSTREAM["sqs.retention"] = sqs_models.SQSBackend.is_message_valid_based_on_retention_period
    _UPSTREAM["sqs.had_receipt_handle"] = sqs_models.Message.had_receipt_handle
    setattr(sqs_models.Message, "had_receipt_handle", _had_receipt_handle)  # noqa: B010
    setattr(  # noqa: B010 - a method of moto's class
        sqs_models.SQSBackend,
        "is_message_valid_based_on_retention_period",
        _is_message_valid_based_on_retention_period,
    )


def restore() -> None:
    if not applied():
        return
    setattr(jsonpath_ng.ext, "parse", _UPSTREAM.pop("jsonpath_ng.ext.parse"))  # noqa: B010
    setattr(sqs_models.Message, "had_receipt_handle", _UPSTREAM.pop("sqs.had_receipt_handle"))  # noqa: B010
    for name in ("unix_time", "unix_time_millis"):
        setattr(sqs_models, name, _UPSTREAM.pop(f"sqs.{name}"))
    setattr(  # noqa: B010
        sqs_models.SQSBackend, "is_message_valid_based_on_retention_period", _UPSTREAM.pop("sqs.retention")
    )


def applied() -> bool:
    return "jsonpath_ng.ext.parse" in _UPSTREAM

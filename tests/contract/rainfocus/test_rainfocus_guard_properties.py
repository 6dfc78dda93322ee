"""Property tests of the real RainFocus pipeline with its order-and-idempotency guard (issue 14, items 3
and 9): whatever the order, batching, case and spacing of one person's e-mail, and whatever bogus
far-future events arrive among them, the vendor ends with the newest real change, nothing dated in the
future is sent, and every record has an outcome."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activation_core.config_store import parse_destinations
from activation_core.guards import OrderGuard
from activation_core.outcomes import Kind
from activation_core.pipeline import Guards, Pipeline
from activation_core.settings import FunctionSettings
from local.fakes.rainfocus import FakeRainfocus
from rainfocus.service import RainfocusDestination
from tests.contract.conftest import STATE_TABLE
from tests.contract.rainfocus.test_rainfocus_contract import profile
from tests.support import example_config, sqs_record

BASE = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
PEOPLE = itertools.count()


@st.composite
def email_variant(draw: Any, local: str) -> str:
    """The same address as people type it: any letter's case, spaces around it."""
    text = "".join(c.upper() if draw(st.booleans()) else c for c in f"{local}@example.com")
    return draw(st.sampled_from(["", " ", "  "])) + text + draw(st.sampled_from(["", " ", "\t"]))


@st.composite
def histories(draw: Any) -> tuple[list[tuple[str, int, bool]], list[int]]:
    """(email as sent, seconds after BASE, far in the future?) per event, and the batch sizes."""
    local = f"person{next(PEOPLE)}"
    count = draw(st.integers(1, 6))
    events = [
        (draw(email_variant(local)), draw(st.integers(0, 50)), draw(st.booleans()) and draw(st.booleans()))
        for _ in range(count)
    ]
    order = draw(st.permutations(events))
    sizes = []
    left = count
    while left:
        size = draw(st.integers(1, left))
        sizes.append(size)
        left -= size
    return list(order), sizes


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(histories())
def test_com_01_the_vendor_ends_with_the_newest_real_change_whatever_the_order_case_and_bogus_dates(
    connection: Any, fake: FakeRainfocus, function_settings: FunctionSettings, history: Any
) -> None:
    events, sizes = history
    config = parse_destinations(example_config())
    run = Pipeline(
        RainfocusDestination(),
        function_settings,
        lambda: config,
        Guards(OrderGuard(STATE_TABLE, "rainfocus")),
    )
    now = datetime.now(UTC)
    records = []
    for i, (email, offset, future) in enumerate(events):
        at = now + timedelta(days=3650) if future else BASE + timedelta(seconds=offset)
        event = profile(email, at.isoformat().replace("+00:00", "Z"), city=f"city-{offset}-{future}")
        event["detail"]["eventId"] = f"{email.strip().lower()}-{i}"
        records.append(sqs_record(event, f"m-{i}"))
    results: dict[str, Any] = {}
    start = 0
    for size in sizes:
        results.update(run.process(records[start : start + size]))
        start += size
    assert sorted(results) == sorted(r["messageId"] for r in records)  # every record has an outcome
    real = [(offset, f"city-{offset}-False") for _, offset, future in events if not future]
    for i, (_, _, future) in enumerate(events):
        if future:
            outcome = results[f"m-{i}"].outcome
            assert (outcome.kind, outcome.reason) == (Kind.REJECTED, "invalid_field:occurredAt")
    address = events[0][0].strip().lower()
    sent_cities = {
        r.json().get("city") for r in fake.requests_to("attendee/store") if address in r.body.decode().lower()
    }
    assert not any(city.endswith("True") for city in sent_cities if city)  # nothing from the future left
    if real:
        newest = max(offset for offset, _ in real)
        assert fake.attendees[("expo2026", address)]["city"] in {c for o, c in real if o == newest}
    else:
        assert ("expo2026", address) not in fake.attendees

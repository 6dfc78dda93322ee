"""Bad input never crashes a batch nor fails the other records of it: each is rejected with a reason."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activation_core.outcomes import Kind
from activation_core.pipeline import Pipeline
from tests.support import load_event, sqs_record
from tests.unit.layer.recording import SETTINGS, RecordingDestination, config

GOOD = load_event("profile-membership-realized")
CONFIG = config("one")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
odd_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=200) | st.just("x" * 300_000)


@st.composite
def mutated_event(draw: Any) -> str:
    """The good event with one field replaced, removed, or the body not JSON at all."""
    choice = draw(st.integers(0, 5))
    event = json.loads(json.dumps(GOOD))
    detail = event["detail"]
    if choice == 0:
        return str(draw(odd_text))
    if choice == 1:
        event.pop("detail")
    elif choice == 2:
        detail[draw(st.sampled_from(sorted(detail)))] = draw(json_values)
    elif choice == 3:
        detail.pop(draw(st.sampled_from(sorted(detail))))
    elif choice == 4:
        detail["profile"][draw(st.sampled_from(["identities", "attributes", "consents"]))] = draw(json_values)
    else:
        detail["audiences"] = draw(json_values)
    return json.dumps(event)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(st.data())
def test_malformed_events_are_rejected_with_a_reason_and_the_good_record_still_goes(
    data: st.DataObject,
) -> None:
    bodies = data.draw(st.lists(mutated_event(), min_size=1, max_size=4))
    records = [sqs_record(body, f"bad-{i}") for i, body in enumerate(bodies)] + [sqs_record(GOOD, "good")]
    results = Pipeline(RecordingDestination(), SETTINGS, lambda: CONFIG).process(records)
    assert sorted(results) == sorted(r["messageId"] for r in records)
    assert results["good"].outcome.kind is Kind.DELIVERED
    for i in range(len(bodies)):
        outcome = results[f"bad-{i}"].outcome
        # A mutation may still leave a valid event; anything else is rejected with a reason, never a crash.
        assert outcome.kind in (Kind.REJECTED, Kind.DELIVERED, Kind.SKIPPED)
        if outcome.kind is Kind.REJECTED:
            assert outcome.reason in {
                "malformed_event",
                "unsupported_event_type",
            } or outcome.reason.startswith("invalid_field:")
            assert "ada.lovelace@example.com" not in outcome.detail.lower()

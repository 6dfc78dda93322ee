"""The vendor-neutral pipeline with a recording connector: every record gets exactly one outcome."""

import copy
from typing import Any

import pytest

from activation_core.config_store import parse_instances
from activation_core.errors import ConfigError, PermanentError, RetryableError
from activation_core.models.config import DestinationsConfig
from activation_core.outcomes import Kind, Outcome
from activation_core.pipeline import Pipeline
from tests.support import load_event, sqs_record
from tests.unit.layer.recording import SETTINGS, RecordingConnector, RecordingDestination, config


def run(
    destination: RecordingDestination, records: list[dict[str, Any]], cfg: DestinationsConfig
) -> dict[str, Any]:
    return Pipeline(destination, SETTINGS, lambda: cfg).process(records)


def test_com_03_activated_audience_is_mapped_and_delivered() -> None:
    destination = RecordingDestination()
    results = run(destination, [sqs_record(load_event("profile-membership-realized"))], config("one"))
    assert results["m-1"].outcome.kind is Kind.DELIVERED
    (item,) = destination.connectors["one"].seen
    assert item.mapped.identities == {"email": "Ada.Lovelace@Example.com"}
    assert item.mapped.fields == {"firstname": "Ada"}
    assert [a.audience.id for a in item.activations] == ["aud-expo-invitees"]


def test_com_03_audience_not_activated_never_reaches_the_connector() -> None:
    destination = RecordingDestination()
    results = run(destination, [sqs_record(load_event("profile-other-audience"))], config("one"))
    assert results["m-1"].outcome == Outcome.skipped("audience_not_activated")
    assert destination.connectors["one"].seen == []


def test_com_06_consent_n_never_leaves_the_platform() -> None:
    destination = RecordingDestination()
    results = run(destination, [sqs_record(load_event("profile-consent-withdrawn"))], config("one"))
    assert results["m-1"].outcome.kind is Kind.SKIPPED
    assert results["m-1"].outcome.reason == "consent"
    assert destination.connectors["one"].seen == []


def test_malformed_events_are_rejected_with_a_reason_and_without_their_values() -> None:
    bad = load_event("profile-malformed-no-profile")
    records = [
        sqs_record(bad, "m-1"),
        sqs_record("not json at all", "m-2"),
        sqs_record({"detail-type": "Something Else", "id": "x", "source": "s", "detail": {}}, "m-3"),
        sqs_record(load_event("profile-membership-realized"), "m-4"),
    ]
    destination = RecordingDestination()
    results = run(destination, records, config("one"))
    assert results["m-1"].outcome.reason == "malformed_event"
    assert "profile" in results["m-1"].outcome.detail
    assert results["m-2"].outcome.reason == "malformed_event"
    assert results["m-3"].outcome.reason == "unsupported_event_type"
    assert results["m-4"].outcome.kind is Kind.DELIVERED  # the good record is not failed by the bad ones


def test_missing_required_identity_is_rejected_naming_the_field() -> None:
    event = load_event("profile-membership-realized")
    del event["detail"]["profile"]["identities"]["email"]
    results = run(RecordingDestination(), [sqs_record(event)], config("one"))
    assert results["m-1"].outcome.kind is Kind.REJECTED
    assert results["m-1"].outcome.reason == "invalid_field:email"


def test_com_02_one_record_fans_out_to_every_instance_and_takes_the_most_urgent_outcome() -> None:
    destination = RecordingDestination()
    destination.connectors["two"] = RecordingConnector("two", outcome=Outcome.retry("http_503"))
    results = run(destination, [sqs_record(load_event("profile-membership-realized"))], config("one", "two"))
    result = results["m-1"]
    assert result.outcome.kind is Kind.RETRY
    assert {(o.instance_id, o.outcome.kind) for o in result.per_instance} == {
        ("one", Kind.DELIVERED), ("two", Kind.RETRY),
    }  # fmt: skip
    assert result.per_instance[0].audience_ids == ("aud-expo-invitees",)


def test_connector_errors_become_outcomes_for_each_item_and_bugs_retry() -> None:
    destination = RecordingDestination()
    destination.connectors["one"] = RecordingConnector("one", outcome=RetryableError("timeout"))
    destination.connectors["two"] = RecordingConnector("two", outcome=ZeroDivisionError())
    records = [sqs_record(load_event("profile-membership-realized"), f"m-{i}") for i in range(3)]
    results = run(destination, records, config("one", "two"))
    assert {r.outcome.kind for r in results.values()} == {Kind.RETRY}
    assert all(
        "internal_error" in r.outcome.reason and "timeout" in r.outcome.reason for r in results.values()
    )


def test_an_invalid_config_retries_every_record_instead_of_losing_it() -> None:
    destination = RecordingDestination(fail_connect=True)
    records = [sqs_record(load_event("profile-membership-realized"), f"m-{i}") for i in range(3)]
    results = run(destination, records, config("one"))
    assert [r.outcome.reason for r in results.values()] == ["invalid_config:one"] * 3


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (RetryableError("secret_unavailable", "AccessDeniedException"), "connection_unavailable:two"),
        (RetryableError("secret_unavailable", "ResourceNotFoundException"), "connection_unavailable:two"),
        (PermanentError("invalid_secret", "secret s is not a JSON object"), "connection_unavailable:two"),
        (ConfigError("two", "settings.eventCode", "Field required"), "invalid_config:two"),
        (KeyError("clientSecret"), "connection_unavailable:two"),
    ],
)
def test_com_02_an_instance_that_cannot_connect_holds_back_only_its_own_records(
    error: Exception, reason: str
) -> None:
    class OneBroken(RecordingDestination):
        def connect(self, instance: Any, settings: Any) -> RecordingConnector:
            if instance.id == "two":
                raise error
            return super().connect(instance, settings)

    destination = OneBroken()
    results = run(destination, [sqs_record(load_event("profile-membership-realized"))], config("one", "two"))
    result = results["m-1"]
    assert {(o.instance_id, o.outcome.kind, o.outcome.reason) for o in result.per_instance} == {
        ("one", Kind.DELIVERED, "delivered"), ("two", Kind.RETRY, reason),
    }  # fmt: skip
    assert result.outcome.reason == reason
    assert "two" in result.outcome.detail
    assert len(destination.connectors["one"].seen) == 1


def test_com_02_an_invalid_instance_in_the_document_spoils_neither_the_document_nor_other_records() -> None:
    document = config("one", "two").model_dump(by_alias=True, mode="json")
    document["destinations"][1]["mapping"][0]["transforms"] = ["no-such-transform"]
    document["destinations"][1]["audiences"] = [{"id": "aud-other", "name": "Other"}]
    loaded = parse_instances(document)
    assert [i.id for i in loaded.config.destinations] == ["one"]
    (invalid,) = loaded.invalid
    assert (invalid.id, invalid.error.field) == ("two", "mapping.0.transforms")
    event = load_event("profile-membership-realized")
    in_both = copy.deepcopy(event)
    in_both["detail"]["audiences"].append({"id": "aud-other", "name": "Other", "status": "realized"})
    destination = RecordingDestination()
    results = Pipeline(destination, SETTINGS, lambda: loaded).process(
        [sqs_record(event, "m-1"), sqs_record(in_both, "m-2")]
    )
    assert results["m-1"].outcome.kind is Kind.DELIVERED
    assert results["m-2"].outcome.reason == "invalid_config:two"
    assert len(destination.connectors["one"].seen) == 2


def test_connectors_are_built_once_per_instance_version() -> None:
    destination = RecordingDestination()
    cfg = config("one")
    pipeline = Pipeline(destination, SETTINGS, lambda: cfg)
    for _ in range(3):
        pipeline.process([sqs_record(load_event("profile-membership-realized"))])
    assert destination.connects == 1


@pytest.mark.parametrize("count", [1, 7, 25])
def test_every_record_gets_exactly_one_outcome(count: int) -> None:
    names = ["profile-membership-realized", "profile-consent-withdrawn", "profile-malformed-no-profile",
             "profile-other-audience", "profile-invalid-country"]  # fmt: skip
    records = [sqs_record(load_event(names[i % len(names)]), f"m-{i}") for i in range(count)]
    results = run(RecordingDestination(), records, config("one"))
    assert sorted(results) == sorted(r["messageId"] for r in records)


def test_com_03_a_targeted_event_reaches_only_the_named_instance() -> None:
    """A snapshot's backfill names the instances that activate the audience: the others never see it."""
    event = load_event("profile-membership-realized")
    event["detail"].update(targetInstances=["two"], changeOrigin="snapshot", snapshotId="s-1")
    destination = RecordingDestination()
    results = run(destination, [sqs_record(event)], config("one", "two"))
    assert results["m-1"].outcome.kind is Kind.DELIVERED
    assert [o.instance_id for o in results["m-1"].per_instance] == ["two"]
    assert destination.connectors.get("one") is None or destination.connectors["one"].seen == []
    assert len(destination.connectors["two"].seen) == 1


def test_an_event_targeted_at_no_configured_instance_is_skipped_not_lost() -> None:
    event = load_event("profile-membership-realized")
    event["detail"]["targetInstances"] = ["gone"]
    results = run(RecordingDestination(), [sqs_record(event)], config("one"))
    assert results["m-1"].outcome == Outcome.skipped(
        "no_destination", "no enabled destination instance of this type"
    )


def test_com_09_whatever_a_connector_raises_for_one_record_only_that_record_fails() -> None:
    class ChokesOnGrace(RecordingConnector):
        def deliver(self, items: Any) -> Any:
            self.seen.extend(items)
            if any(i.mapped.identities["email"].startswith("grace") for i in items):
                raise ValueError("Out of range float values are not JSON compliant")
            return {item.key: Outcome.delivered() for item in items}

    destination = RecordingDestination()
    destination.connectors["one"] = ChokesOnGrace("one")
    records = []
    for i in range(9):
        event = load_event("profile-membership-realized")
        event["detail"]["eventId"] = f"evt-{i}"
        event["detail"]["profile"]["identities"]["email"] = "grace@x.org" if i == 4 else f"p{i}@x.org"
        records.append(sqs_record(event, f"m-{i}"))
    results = run(destination, records, config("one"))
    assert results["m-4"].outcome == Outcome.retry("internal_error", "one: ValueError")
    assert [m for m, r in results.items() if r.outcome.kind is Kind.DELIVERED] == [
        f"m-{i}" for i in range(9) if i != 4
    ]
    # Halving: a handful of calls, not one per record.
    assert len(destination.connectors["one"].seen) <= 9 * 5


def test_a_transient_error_for_the_whole_call_is_not_split() -> None:
    destination = RecordingDestination()
    destination.connectors["one"] = RecordingConnector("one", outcome=RetryableError("http_503", "busy"))
    records = [sqs_record(load_event("profile-membership-realized"), f"m-{i}") for i in range(4)]
    for i, record in enumerate(records):
        record["body"] = record["body"].replace("evt-0001", f"evt-{i}").replace("Ada.", f"A{i}.")
    results = run(destination, records, config("one"))
    assert {r.outcome.reason for r in results.values()} == {"http_503"}
    assert len(destination.connectors["one"].seen) == 4

import pytest

from activation_core.errors import AuthError, PermanentError, RetryableError, ThrottledError
from activation_core.outcomes import BatchSummary, Kind, Outcome, combine


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (RetryableError("http_503"), Kind.RETRY),
        (ThrottledError("http_429", retry_after=30), Kind.RETRY),
        (PermanentError("http_400"), Kind.REJECTED),
        (AuthError("http_401"), Kind.RETRY),
    ],
)
def test_error_taxonomy_maps_onto_outcomes(error: Exception, kind: Kind) -> None:
    outcome = Outcome.from_error(error)  # type: ignore[arg-type]
    assert outcome.kind is kind
    assert outcome.reason == error.reason  # type: ignore[attr-defined]


def test_throttle_keeps_its_retry_after() -> None:
    assert Outcome.from_error(ThrottledError("http_429", retry_after=42.0)).retry_after == 42.0


def test_combine_takes_the_most_urgent_outcome_across_instances() -> None:
    assert combine([Outcome.delivered(), Outcome.retry("http_503")]).kind is Kind.RETRY
    assert combine([Outcome.delivered(), Outcome.rejected("invalid_field:zip")]).kind is Kind.REJECTED
    assert combine([Outcome.skipped("consent"), Outcome.delivered()]).kind is Kind.DELIVERED
    assert combine([]).reason == "no_destination"


def test_combine_keeps_every_reason_of_the_winning_kind() -> None:
    outcome = combine([Outcome.rejected("a", "one"), Outcome.rejected("b", "two"), Outcome.delivered()])
    assert outcome.reason == "a,b"
    assert outcome.detail == "one; two"


def test_summary_balances() -> None:
    summary = BatchSummary()
    for outcome in [
        Outcome.delivered(),
        Outcome.skipped("consent"),
        Outcome.rejected("x"),
        Outcome.retry("y"),
    ]:
        summary.add(outcome)
    assert summary.balanced
    assert summary.as_dict()["reasons"] == {
        "delivered:delivered": 1, "skipped:consent": 1, "rejected:x": 1, "retry:y": 1,
    }  # fmt: skip


def test_details_are_bounded() -> None:
    assert len(Outcome.rejected("x", "d" * 5000).detail) == 500

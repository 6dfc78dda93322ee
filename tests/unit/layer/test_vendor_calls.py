"""The fewest vendor calls for n records and the time a vendor's rate limits imply."""

from __future__ import annotations

from activation_core.vendor_calls import CallPlan, RateLimit


def test_calls_are_one_of_each_type_per_batch_and_time_follows_the_tightest_limit() -> None:
    plan = CallPlan(
        300, ("sync", "list_add"), (RateLimit(100, 20, "per 20 s"), RateLimit(50_000, 86_400, "daily"))
    )
    assert plan.calls(10_000) == 68 and plan.calls_by_type(10_000) == {"sync": 34, "list_add": 34}
    assert plan.seconds(10_000) == 68 / 100 * 20  # the daily quota holds 68 calls: the 20-s limit paces them
    assert plan.binding_limit(10_000_000).name == "daily"  # type: ignore[union-attr]
    assert plan.seconds(10_000_000) == 66_668 / 50_000 * 86_400  # beyond the quota, days
    assert CallPlan(1, ("patch",), (RateLimit(10_000, 3_600, "per hour"),)).seconds(10_000) == 3_600
    assert CallPlan(1, ("store",)).seconds(10) is None  # no published limit


def test_a_call_type_that_needs_several_requests_a_group_counts_each() -> None:
    plan = CallPlan(300, ("lookup", "list_add"), per_group={"lookup": 2})
    assert plan.calls_by_type(10_000) == {"lookup": 68, "list_add": 34} and plan.calls(10_000) == 102

"""The one naming rule: a destination type to its logical ids, outputs and secret prefix."""

from __future__ import annotations

import pytest

from activation_core import naming


@pytest.mark.parametrize(
    ("destination_type", "prefix"),
    [("rainfocus", "Rainfocus"), ("marketo", "Marketo"), ("outreach", "Outreach"), ("bombora", "Bombora")],
)
def test_the_four_types_keep_their_template_names(destination_type: str, prefix: str) -> None:
    assert naming.logical_prefix(destination_type) == prefix
    assert naming.logical_id(destination_type, "Queue") == f"{prefix}Queue"


def test_a_multi_word_type_becomes_pascal_case_and_back() -> None:
    assert naming.logical_id("google_ads", "Queue") == "GoogleAdsQueue"
    assert naming.output_name("google_ads", "DeadLetterQueueUrl") == "GoogleAdsDeadLetterQueueUrl"
    assert naming.secret_prefix("activation-local", "google_ads") == "activation-local/google_ads/"
    assert naming.type_of_prefix("GoogleAds") == "google_ads"
    assert naming.type_of_prefix("Rainfocus") == "rainfocus"


@pytest.mark.parametrize("destination_type", ["google_ads", "ads2", "a_b_c", "rainfocus"])
def test_the_rule_is_a_bijection_on_types(destination_type: str) -> None:
    assert naming.type_of_prefix(naming.logical_prefix(destination_type)) == destination_type


@pytest.mark.parametrize("bad", ["Google_ads", "google-ads", "google__ads", "_ads", "ads_", "2ads", ""])
def test_a_type_that_is_not_a_package_name_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="snake_case"):
        naming.logical_prefix(bad)


@pytest.mark.parametrize("name", ["Google_ads", "googleAds", "", "Sfmc-Plan"])
def test_a_name_the_rule_never_makes_has_no_type(name: str) -> None:
    assert naming.type_of_prefix(name) is None

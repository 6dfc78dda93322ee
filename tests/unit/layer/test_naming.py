"""The one naming rule: a destination type to its logical ids, outputs and secret prefix."""

from __future__ import annotations

from pathlib import Path

import pytest

from activation_core import manifest, naming

MANIFEST = manifest.load(Path(__file__).resolve().parents[3] / "functions")


@pytest.mark.parametrize("destination_type", MANIFEST.types)
def test_every_manifest_type_names_its_resources_by_its_capitalised_type(destination_type: str) -> None:
    """`rainfocus` -> `RainfocusQueue`: the names the template has always had (its drift test checks
    the template has them: tests/unit/template/test_manifest.py)."""
    prefix = naming.logical_prefix(destination_type)
    assert prefix == destination_type.replace("_", " ").title().replace(" ", "")
    assert naming.logical_id(destination_type, "Queue") == f"{prefix}Queue"
    assert naming.type_of_prefix(prefix) == destination_type


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

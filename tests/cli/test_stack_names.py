"""The CLI finds a stack's destinations and their resources by the one naming rule, multi-word too."""

from __future__ import annotations

from activation_cli.stack import Stack

OUTPUTS = {
    "RainfocusQueueUrl": "http://q/rainfocus",
    "RainfocusDeadLetterQueueUrl": "http://q/rainfocus-dlq",
    "GoogleAdsQueueUrl": "http://q/google-ads",
    "GoogleAdsDeadLetterQueueUrl": "http://q/google-ads-dlq",
    "GoogleAdsSecretPrefix": "prod/google_ads/",
    "SfmcIngestionStateMachineArn": "arn:aws:states:::stateMachine:x",
}


def test_a_multi_word_destination_is_found_and_addressed_by_its_type() -> None:
    stack = Stack("prod", OUTPUTS)
    assert stack.destination_types() == ["google_ads", "rainfocus"]
    assert stack.queue_url("google_ads") == "http://q/google-ads"
    assert stack.dead_letter_queue_url("google_ads") == "http://q/google-ads-dlq"
    assert stack.secret_prefix("google_ads") == "prod/google_ads/"
    assert stack.known_type("google_ads") == "google_ads"

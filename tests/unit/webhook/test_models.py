"""Webhook settings, secret and signature: what an operator can configure and what a receiver checks."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from activation_core.errors import ConfigError
from activation_core.models.config import DestinationInstance
from tests.support import example_config, instance_of
from webhook.client import sign
from webhook.models import WebhookConnection
from webhook.service import validate_instance


def instance(**settings: object) -> DestinationInstance:
    document = instance_of(example_config(), "webhook")
    document["settings"].update(settings)
    return DestinationInstance.model_validate(document)


def test_the_example_instance_is_valid() -> None:
    settings = validate_instance(instance())
    assert (settings.batch_size, settings.signature_header) == (50, "X-Webhook-Signature")


@pytest.mark.parametrize(
    ("field", "value"), [("batchSize", 0), ("batchSize", 501), ("signatureHeader", "X Sig")]
)
def test_a_setting_out_of_range_is_refused_naming_its_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as refused:
        validate_instance(instance(**{field: value}))
    assert refused.value.field == f"settings.{field}"


def test_the_signature_is_the_hmac_sha256_of_the_exact_body() -> None:
    body = b'{"records":[{"id":"m-1"}]}'
    expected = hmac.new(b"s" * 16, body, hashlib.sha256).hexdigest()
    assert sign("s" * 16, body) == f"sha256={expected}"
    assert sign("s" * 16, body + b" ") != sign("s" * 16, body)


def test_the_secret_values_never_show_in_a_repr() -> None:
    connection = WebhookConnection.model_validate(
        {"url": "https://hooks.example.com/t/abc", "signingSecret": "whsec-0123456789abcdef"}
    )
    assert "whsec" not in repr(connection) and "abc" not in repr(connection)


def test_a_short_signing_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="signingSecret"):
        WebhookConnection.model_validate({"url": "https://hooks.example.com/", "signingSecret": "short"})

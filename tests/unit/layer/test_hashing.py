import hashlib

import pytest

from activation_core.hashing import email_lc_sha256, is_sha256_hex, sha256_hex


def test_rnf_02_email_is_trimmed_and_lowercased_before_hashing() -> None:
    expected = hashlib.sha256(b"ada.lovelace@example.com").hexdigest()
    assert email_lc_sha256("  Ada.Lovelace@Example.COM \n") == expected


def test_rnf_02_fixed_vector_for_a_known_address() -> None:
    # sha256("test@example.com"), computed independently.
    assert email_lc_sha256("TEST@example.com") == (
        "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"
    )


def test_rnf_02_a_64_hex_value_passes_through_unchanged() -> None:
    digest = "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"
    assert email_lc_sha256(digest) == digest
    assert email_lc_sha256(digest.upper()) == digest
    assert sha256_hex(digest) == digest


@pytest.mark.parametrize(
    ("value", "expected"),
    [("a" * 64, True), ("A" * 64, False), ("a" * 63, False), ("g" * 64, False), ("", False)],
)
def test_is_sha256_hex(value: str, expected: bool) -> None:
    assert is_sha256_hex(value) is expected


def test_sha256_hex_of_other_identities_is_not_lowercased() -> None:
    assert sha256_hex("CRM-0001") == hashlib.sha256(b"CRM-0001").hexdigest()

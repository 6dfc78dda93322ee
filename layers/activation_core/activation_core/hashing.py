"""Identity normalisation and SHA-256 hashing (`email_lc_sha256` and friends).

Hashing happens while a record is mapped, before any log line can see the value.
"""

from __future__ import annotations

import hashlib
import re

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def is_sha256_hex(value: str) -> bool:
    """True for a 64-character lower-case hex digest (already hashed upstream)."""
    return bool(_SHA256_HEX.match(value))


def normalize_email(value: str) -> str:
    return value.strip().lower()


def sha256_hex(value: str) -> str:
    """SHA-256 hex of `value`; a value that already is a SHA-256 hex digest passes through unchanged."""
    candidate = value.strip()
    if is_sha256_hex(candidate.lower()):
        return candidate.lower()
    return hashlib.sha256(candidate.encode("utf-8")).hexdigest()


def email_lc_sha256(email: str) -> str:
    """SHA-256 hex of the trimmed, lower-cased email; a 64-hex value passes through unchanged."""
    return sha256_hex(normalize_email(email))

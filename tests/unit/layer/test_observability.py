import io
import json

from activation_core.observability import EMAIL_MASK, SECRET_MASK, logger, redact, register_secret


def test_com_06_plain_emails_are_masked_in_any_text() -> None:
    assert redact("sent to Ada.Lovelace+x@Example.co.uk ok") == f"sent to {EMAIL_MASK} ok"


def test_com_06_registered_secrets_are_masked_longest_first() -> None:
    register_secret("tok-abcdef", "tok-abcdef-longer", "short")  # "short" is below the minimum length
    assert redact("a tok-abcdef-longer b tok-abcdef c short") == f"a {SECRET_MASK} b {SECRET_MASK} c short"


def test_com_06_log_lines_never_carry_emails_or_secrets() -> None:
    register_secret("s3cr3t-client-value")
    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        logger.info(
            "pushing grace.hopper@example.org",
            extra={"body": {"email": "grace.hopper@example.org", "auth": "Bearer s3cr3t-client-value"}},
        )
    finally:
        logger.registered_handler.setStream(previous)  # type: ignore[attr-defined]
    line = stream.getvalue().strip().splitlines()[-1]
    assert "grace.hopper@example.org" not in line
    assert "s3cr3t-client-value" not in line
    record = json.loads(line)  # still valid JSON after masking
    assert record["message"] == f"pushing {EMAIL_MASK}"

import io
import json
from collections.abc import Callable
from urllib.parse import quote

import pytest
from pydantic import BaseModel, ValidationError

from activation_core.errors import ConfigError
from activation_core.observability import EMAIL_MASK, SECRET_MASK, logger, redact, register_secret


def test_com_06_plain_emails_are_masked_in_any_text() -> None:
    assert redact("sent to Ada.Lovelace+x@Example.co.uk ok") == f"sent to {EMAIL_MASK} ok"


def test_com_06_registered_secrets_are_masked_longest_first() -> None:
    register_secret("tok-abcdef", "tok-abcdef-longer", "shrt")  # a short secret: masked as a whole token
    assert redact("a tok-abcdef-longer b tok-abcdef c shrt shrtcut") == (
        f"a {SECRET_MASK} b {SECRET_MASK} c {SECRET_MASK} shrtcut"
    )


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


def _logged(emit: Callable[[], None]) -> str:
    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        emit()
    finally:
        logger.registered_handler.setStream(previous)  # type: ignore[attr-defined]
    return stream.getvalue()


EMAIL_VARIANTS = [
    "ada.lovelace@example.org",
    "ada.lovelace%40example.org",  # URL-encoded (a query string)
    "ada%2Blists%40example.org",  # URL-encoded local part and @
    "ada.lovelace\\u0040example.org",  # JSON \\u-escaped @ inside a logged response body
    "ada&#64;example.org",  # HTML entity
    "jürgen.müller@bücher.example",  # internationalised local part and domain
    "ada@xn--bcher-kva.example",  # punycode domain
    "user@例え.テスト",  # IDN TLD
    '"ada lovelace"@example.org',  # quoted local part
    '\\"ada lovelace\\"@example.org',  # quoted local part, JSON-escaped inside a string
]


@pytest.mark.parametrize("email", EMAIL_VARIANTS)
def test_com_06_email_variants_never_reach_a_log_line(email: str) -> None:
    line = _logged(lambda: logger.info("vendor answered", extra={"body": f'{{"email": "{email}", "n": 1}}'}))
    record = json.loads(line)
    assert EMAIL_MASK in record["body"]
    for part in ("lovelace", "ada%2Blists", "jürgen", "bcher-kva", "例え"):
        assert part not in line


SECRET_VARIANTS: list[object] = [
    'quo"ted-secret-1',  # JSON escapes the quote: matching the final line missed it
    "back\\slash-secret",  # JSON doubles the backslash
    "9z!x",  # short
    918273645,  # numeric (a client secret parsed as a number)
    2.718281828,
]


@pytest.mark.parametrize("secret", SECRET_VARIANTS, ids=repr)
def test_com_06_secret_variants_never_reach_a_log_line(secret: object) -> None:
    register_secret(secret)
    text = str(secret)
    line = _logged(
        lambda: logger.warning(
            f"token endpoint said {text}",
            extra={"value": secret, "url": f"https://x.example/?s={quote(text)}"},
        )
    )
    assert text not in line and json.dumps(text)[1:-1] not in line and quote(text, safe="") not in line
    record = json.loads(line)
    assert record["value"] == SECRET_MASK


def test_com_06_an_exception_from_a_library_is_logged_by_type_not_by_message() -> None:
    """A pydantic error quotes its input (`input_value=12345678`): the log names field and error type."""

    class Connection(BaseModel):
        clientSecret: str

    secret, email = 87654321, "ada.lovelace@example.org"  # traceback frames show source lines: no literal

    def fail() -> None:
        try:
            Connection.model_validate({"clientSecret": secret})
        except ValidationError:
            try:
                raise RuntimeError(f"while reading {email} with {secret}")
            except RuntimeError:
                logger.exception("connection failed")

    line = _logged(fail)
    record = json.loads(line)
    assert str(secret) not in line and "ada.lovelace" not in line
    assert "clientSecret: string_type" in record["exception"]
    assert "builtins.RuntimeError (message withheld" in record["exception"]
    assert record["exception_name"] == "RuntimeError"


def test_com_06_our_own_errors_keep_their_message() -> None:
    def fail() -> None:
        try:
            raise ConfigError("expo", "settings.eventCode", "must not be empty")
        except ConfigError:
            logger.exception("invalid config")

    record = json.loads(_logged(fail))
    assert "destination 'expo', field 'settings.eventCode': must not be empty" in record["exception"]


_TRACED_CALL = """
import json, httpx
from aws_xray_sdk.core import xray_recorder
from aws_xray_sdk.core.emitters.udp_emitter import UDPEmitter
from activation_core.observability import TRACED_MODULES
from aws_xray_sdk.core import patch

class Kept(UDPEmitter):
    entities = []
    def send_entity(self, entity):
        self.entities.append(entity.serialize())

emitter = Kept()
xray_recorder.configure(emitter=emitter, sampling=False, context_missing="LOG_ERROR")
patch(TRACED_MODULES)
xray_recorder.begin_segment("test")
client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
client.get("https://vendor.example/identity/oauth/token?client_secret=s3cr3t-value&filterValues=ada%40x.com")
xray_recorder.end_segment()
print(json.dumps(emitter.entities))
"""


def test_com_06_an_x_ray_trace_of_a_vendor_call_holds_its_url_without_the_query() -> None:
    """The X-Ray SDK's httpx patch (as the functions' Tracer applies it) records the URL without its
    query, where a token call's secret and a lookup's e-mails travel. Its own process: the recorder and
    the patch are global."""
    import subprocess
    import sys

    traced = subprocess.run([sys.executable, "-c", _TRACED_CALL], capture_output=True, text=True, check=True)
    assert "vendor.example/identity/oauth/token" in traced.stdout  # the call was traced
    assert "s3cr3t-value" not in traced.stdout and "ada" not in traced.stdout

"""RainFocus settings, connection secret and attendee payload (RNF-01, RNF-04).

RainFocus publishes no API specification: paths, header names and the token endpoint are
assumptions (see README, "Vendor facts that are assumptions") and therefore settings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from activation_core.errors import InvalidRecordError
from activation_core.hashing import email_lc_sha256, is_sha256_hex

ATTENDEE_FIELDS = (
    "address1", "address2", "city", "companyname", "countryid", "email",
    "firstname", "lastname", "jobtitle", "phone", "state", "zip",
)  # fmt: skip
ACCEPTED_ORIGINS = frozenset({"segmentation", "upload"})  # RNF-06
HOST_PATTERN = r"([a-z0-9-]+\.)*rainfocus\.com"
# The API base per RainFocus environment (RNF-01: the connection names an environment, e.g. dev, prod).
# RainFocus publishes no host table: the one API host seen answering is api.rainfocus.com (apis.md 5.1,
# [3P]), taken as `prod`. Other environments' hosts are [UNKNOWN]: an operator names them in
# `settings.environmentBaseUrls` (or, for one connection, `baseUrl` in the secret).
ENVIRONMENT_BASE_URLS: Mapping[str, str] = MappingProxyType({"prod": "https://api.rainfocus.com"})

# ISO 3166-1 alpha-2 codes (officially assigned). Data, not logic: a country library would add
# megabytes of translations to the layer for one list.
ISO_3166_ALPHA2 = frozenset(
    """AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV
    BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES
    ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE
    IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY
    MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU
    NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM
    SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE
    VG VI VN VU WF WS YE YT ZA ZM ZW""".split()  # noqa: SIM905 - a compact table
)
# FIPS 5-2 alpha codes: the 50 states, DC, and the outlying areas.
FIPS_STATE_ALPHA = frozenset(
    """AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC
    ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY AS FM GU MH MP PW PR UM VI""".split()  # noqa: SIM905 - a compact table
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9 ().\-]{3,32}$")
_ZIP = re.compile(r"^[A-Za-z0-9 \-]{2,16}$")
_TEXT_LIMIT = 255


class RainfocusSettings(BaseModel):
    """`settings` of a RainFocus destination instance."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    event_code: str = Field(
        alias="eventCode", min_length=1, max_length=128, description="RainFocus event code"
    )
    environment: str = Field(
        default="prod",
        pattern=r"^[a-z0-9-]{1,32}$",
        description="RainFocus environment, e.g. dev, prod: chooses the API base (environmentBaseUrls, "
        f"else the built-in table {dict(ENVIRONMENT_BASE_URLS)})",
    )
    environment_base_urls: dict[str, str] = Field(
        default_factory=dict,
        alias="environmentBaseUrls",
        description="API base per environment, overriding the built-in table (https, a rainfocus.com host)",
    )
    apply_transformation: bool = Field(
        default=False,
        alias="applyTransformation",
        description="Hash plain emails (email_lc_sha256) before sending",
    )
    token_path: str = Field(default="/oauth/token", alias="tokenPath", pattern=r"^/[A-Za-z0-9/_.{}-]*$")
    store_path: str = Field(
        default="/api/{orgId}/v3/attendee/store", alias="storePath", pattern=r"^/[A-Za-z0-9/_.{}-]*$"
    )
    api_profile_header: str = Field(
        default="apiProfile", alias="apiProfileHeader", pattern=r"^[A-Za-z0-9-]+$"
    )
    max_concurrency: int = Field(default=8, alias="maxConcurrency", ge=1, le=32)


class RainfocusConnection(BaseModel):
    """The connection secret (Secrets Manager, JSON)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    base_url: str | None = Field(
        default=None,
        alias="baseUrl",
        description="Optional override of the API base the environment chooses (https, a rainfocus.com host)",
    )
    client_id: str = Field(alias="clientId", min_length=1)
    client_secret: str = Field(alias="clientSecret", min_length=1, repr=False)
    org_id: str = Field(alias="orgId", min_length=1, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    api_profile: str = Field(default="", alias="apiProfile", repr=False)


def api_base_url(settings: RainfocusSettings, connection: RainfocusConnection) -> str | None:
    """The API base: the secret's override, else the environment's (settings' table, then built-in)."""
    return (
        connection.base_url
        or settings.environment_base_urls.get(settings.environment)
        or ENVIRONMENT_BASE_URLS.get(settings.environment)
    )


def _text(field: str, value: Any, limit: int = _TEXT_LIMIT) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise InvalidRecordError(field, f"'{field}' must be text")
    text = str(value).strip()
    if len(text) > limit:
        raise InvalidRecordError(field, f"'{field}' is longer than {limit} characters")
    return text


def build_attendee(fields: dict[str, Any], email: str, event_code: str) -> dict[str, str]:
    """Validate the mapped attendee fields (RNF-04); an invalid value is rejected naming its field."""
    attendee: dict[str, str] = {"event": event_code, "email": email}
    for field, value in fields.items():
        if field == "email":
            continue
        text = _text(field, value)
        if not text:
            continue
        if field == "countryid":
            text = text.upper()
            if text not in ISO_3166_ALPHA2:
                raise InvalidRecordError(field, "'countryid' must be an ISO 3166-1 alpha-2 code")
        elif field == "phone" and not _PHONE.match(text):
            raise InvalidRecordError(field, "'phone' must hold digits, spaces and + ( ) . - only")
        elif field == "zip" and not _ZIP.match(text):
            raise InvalidRecordError(field, "'zip' must be 2-16 letters, digits, spaces or dashes")
        attendee[field] = text
    state = attendee.get("state")
    if state is not None:
        state = state.upper()
        # FIPS alpha codes name US states and areas; elsewhere the province code is passed as given.
        if attendee.get("countryid", "US") == "US" and state not in FIPS_STATE_ALPHA:
            raise InvalidRecordError("state", "'state' must be a FIPS state alpha code")
        attendee["state"] = state
    return attendee


def attendee_email(value: Any, apply_transformation: bool) -> str:
    """The identity sent as `email` (RNF-02): hashed when 'apply transformation' is on."""
    text = _text("email", value, limit=320)
    if is_sha256_hex(text.lower()):
        return text.lower()
    if not _EMAIL.match(text):
        raise InvalidRecordError("email", "'email' is neither an email address nor a SHA-256 hex digest")
    return email_lc_sha256(text) if apply_transformation else text.lower()


# Published in shared/schemas/ (make schemas).
JSON_SCHEMAS: dict[str, type[BaseModel]] = {
    "rainfocus-settings": RainfocusSettings,
    "rainfocus-connection-secret": RainfocusConnection,
}

"""Bombora settings, connection secret, mapping targets and domain normalisation (BOM-01..04).

Bombora's Account List API is known from a third-party mirror of its vendor spec (apis.md section 4);
paths and timings that are assumptions are settings, so they can be corrected without code.
"""

from __future__ import annotations

import re
from typing import Any

import idna
from pydantic import BaseModel, ConfigDict, Field

from activation_core.errors import InvalidRecordError

HOST_PATTERN = r"([a-z0-9-]+\.)*bombora\.com"
PRIMARY_ID = "primaryId"  # BOM-03: must be mapped, never exported
DOMAIN_TARGET = "companyWebsiteDomain"  # BOM-04: what Bombora builds the account list from
TARGETS = (PRIMARY_ID, DOMAIN_TARGET)
ACCEPTED_ORIGIN = "segmentation"  # BOM-01: custom uploads are refused
ACCOUNT_AUDIENCE = "account"
AUDIENCE_EXTRAS = frozenset({"audienceType"})
# A hashed domain is not a domain: Bombora could never match it to a company.
FORBIDDEN_DOMAIN_TRANSFORMS = frozenset({"sha256", "email_lc_sha256"})
MANUAL_LIST = "Manual"  # the only list type accounts can be added to

_SCHEME = re.compile(r"^[a-z][a-z0-9+.\-]*://")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TLD = re.compile(r"^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$")
_MAX_INPUT = 2048
_MAX_DOMAIN = 253


class BomboraSettings(BaseModel):
    """`settings` of a Bombora destination instance."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    batch_size: int = Field(
        default=1000,
        alias="batchSize",
        ge=1,
        le=10_000,
        description="Accounts per add or delete call (the API documents no maximum)",
    )
    token_path: str = Field(default="/oauth/token", alias="tokenPath", pattern=r"^/[A-Za-z0-9/_.-]*$")
    account_list_path: str = Field(
        default="/account-list/v1", alias="accountListPath", pattern=r"^(/[A-Za-z0-9_.-]+)*$"
    )
    list_description: str = Field(
        default="Account audience {audienceName} ({audienceId}), kept in sync by audience activation",
        alias="listDescription",
        max_length=500,
        description="Description of the lists this destination creates; {audienceName}, {audienceId}",
    )
    pending_retry_seconds: float = Field(
        default=2.0,
        alias="pendingRetrySeconds",
        ge=0.0,
        le=10.0,
        description="In-process wait after a 409 (list update pending) before trying again",
    )
    create_verify_seconds: float = Field(
        default=3.5,
        alias="createVerifySeconds",
        ge=0.0,
        le=20.0,
        description="How long to look for a list whose create call got no clear answer before retrying",
    )
    max_concurrency: int = Field(
        default=4, alias="maxConcurrency", ge=1, le=16, description="Audiences written in parallel"
    )
    adopt_existing_lists: bool = Field(
        default=False,
        alias="adoptExistingLists",
        description="Use a Bombora list of the audience's name that this stack did not create (BOM-05: "
        "by default that is an error naming the list)",
    )

    def describe(self, audience_id: str, audience_name: str) -> str:
        return self.list_description.replace("{audienceName}", audience_name).replace(
            "{audienceId}", audience_id
        )


class BomboraConnection(BaseModel):
    """The connection secret (Secrets Manager, JSON): BOM-02, client id and client secret."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    base_url: str = Field(default="https://api.bombora.com", alias="baseUrl")
    client_id: str = Field(alias="clientId", min_length=1)
    client_secret: str = Field(alias="clientSecret", min_length=1, repr=False)


def list_key(name: str) -> str:
    """The identity of an audience name for BOM-05: case and spacing differences do not make two lists."""
    return " ".join(name.split()).casefold()


def _invalid(detail: str) -> InvalidRecordError:
    return InvalidRecordError(DOMAIN_TARGET, f"'{DOMAIN_TARGET}' {detail}")


def normalise_domain(value: Any) -> str:
    """A company website (URL, host or domain) as the bare ASCII domain Bombora keys accounts on.

    Lower case; scheme, user info, port, path, query, a trailing dot and a leading `www.` removed;
    internationalised names in their IDNA (punycode) form. Anything that is not then a registrable-looking
    host name (two labels or more, LDH labels, alphabetic top-level label) is rejected (BOM-04).
    """
    if value is None:
        raise _invalid("has no value")
    if not isinstance(value, str):
        raise _invalid("must be text")
    text = value.strip().lower()
    if not text:
        raise _invalid("is empty")
    if len(text) > _MAX_INPUT:
        raise _invalid(f"is longer than {_MAX_INPUT} characters")
    text = _SCHEME.sub("", text, count=1).removeprefix("//")
    authority = re.split(r"[/?#\\]", text, maxsplit=1)[0]
    host = authority.rpartition("@")[2]
    if host.startswith("["):
        raise _invalid("is an IP address, not a domain")
    host, _, port = host.partition(":")
    if port and not port.isdigit():
        raise _invalid("has an invalid port")
    try:
        # UTS 46 first: it maps full-width letters and ideographic dots, so the checks below see ASCII.
        ascii_host = idna.encode(host.rstrip("."), uts46=True).decode("ascii").rstrip(".")
    except (idna.IDNAError, UnicodeError, ValueError):
        raise _invalid("is not a valid domain name") from None
    while ascii_host.startswith("www.") and ascii_host.count(".") >= 2:
        ascii_host = ascii_host[4:]
    labels = ascii_host.split(".")
    if len(ascii_host) > _MAX_DOMAIN or len(labels) < 2 or not all(_LABEL.match(part) for part in labels):
        raise _invalid("is not a valid domain name")
    if not _TLD.match(labels[-1]):
        # An all-numeric last label is an IPv4 address; Bombora keys companies on names.
        raise _invalid("is not a valid domain name (top-level label)")
    return ascii_host


# Published in shared/schemas/ (make schemas).
JSON_SCHEMAS: dict[str, type[BaseModel]] = {
    "bombora-settings": BomboraSettings,
    "bombora-connection-secret": BomboraConnection,
}

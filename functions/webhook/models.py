"""Webhook settings and connection secret.

The endpoint is the operator's own: its URL (which may carry a token of its own) and the signing
secret live in the connection secret; the settings say how records are batched and signed.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

SIGNATURE_PREFIX = "sha256="


class WebhookSettings(BaseModel):
    """`settings` of a webhook destination instance."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    batch_size: int = Field(
        default=100, alias="batchSize", ge=1, le=500, description="Most records in one POST"
    )
    signature_header: str = Field(
        default="X-Webhook-Signature",
        alias="signatureHeader",
        pattern=r"^[A-Za-z0-9-]{1,64}$",
        description="Header carrying `sha256=<hex HMAC-SHA256 of the body with the signing secret>`",
    )


class WebhookConnection(BaseModel):
    """The connection secret (Secrets Manager, JSON)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    url: str = Field(
        min_length=1, repr=False, description="The endpoint (https); may hold a token of its own"
    )
    signing_secret: str = Field(alias="signingSecret", min_length=16, repr=False)


# Published in shared/schemas/ (make schemas).
JSON_SCHEMAS: dict[str, type[BaseModel]] = {
    "webhook-settings": WebhookSettings,
    "webhook-connection-secret": WebhookConnection,
}

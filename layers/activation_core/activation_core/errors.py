"""One error taxonomy that every destination maps its vendor's errors onto.

`reason` is a short, stable, machine-readable code (it ends up in DLQ message attributes and metrics);
`detail` is human-readable. Neither may ever contain a secret, a token or a plain email.
"""

from __future__ import annotations


class ActivationError(Exception):
    """Base class: never raised directly."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class RetryableError(ActivationError):
    """Transient: the record goes back to the queue (5xx, timeouts, connection errors)."""

    def __init__(self, reason: str, detail: str = "", retry_after: float | None = None) -> None:
        super().__init__(reason, detail)
        self.retry_after = retry_after


class ThrottledError(RetryableError):
    """The vendor asked us to slow down (429 or a vendor throttle code); `retry_after` in seconds."""


class StillRunningError(RetryableError):
    """A call cut off mid-flight (a read timeout, a dropped connection) that may still be running at the
    vendor: what guarded it (a lease) is kept until it runs out, so that no one repeats it meanwhile."""


class PermanentError(ActivationError):
    """The vendor will never accept this as sent: rejected to the DLQ at once, never retried."""


class AuthError(ActivationError):
    """Credentials or token refused: refresh the token once, then treat as retryable."""


class ConfigError(ActivationError):
    """A configuration is invalid; names the instance (a destination, or another `subject`) and the field.

    `instance`, `field` and `message` are data: callers compose their own wording from them rather
    than parse `detail` (which reads "destination 'X', field 'Y': message").
    """

    def __init__(self, instance: str, field: str, message: str, *, subject: str = "destination") -> None:
        super().__init__("invalid_config", f"{subject} '{instance}', field '{field}': {message}")
        self.instance = instance
        self.field = field
        self.message = message


class InvalidRecordError(PermanentError):
    """The record itself cannot be sent (missing or invalid field): rejected with the field named."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"invalid_field:{field}", detail)
        self.field = field


class MissingValueError(InvalidRecordError):
    """A required mapping target has no value: rejected like any invalid field, unless the destination
    declares the gap an ordinary one to skip (`Destination.skip_when_missing`)."""


class UsagePolicyRefusal(PermanentError):
    """A labelled value would leave for a marketing action its label forbids: refused, never sent."""

    def __init__(self, target: str, detail: str) -> None:
        super().__init__(f"usage_policy:{target}", detail)
        self.target = target

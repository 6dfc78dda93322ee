"""The one naming rule from a destination type to its names in the stack.

A type is a snake_case Python package name (`crm`, `google_ads`); the template names its
resources and outputs after the PascalCase prefix (`CrmQueue`, `GoogleAdsDeadLetterQueueUrl`)
and its connection secrets under `<stack>/<type>/`. The CLI, the local stack, the tests and the
template drift test all build names here, so a multi-word type never yields `Google_adsQueue`.
"""

from __future__ import annotations

import re

TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z][a-z0-9]*)*$")
_PREFIX_PATTERN = re.compile(r"^(?:[A-Z][a-z0-9]*)+$")
_PREFIX_PART = re.compile(r"[A-Z][a-z0-9]*")


def check_type(destination_type: str) -> str:
    """The type itself, or ValueError when it is not a snake_case package name."""
    if not TYPE_PATTERN.fullmatch(destination_type):
        raise ValueError(f"destination type '{destination_type}' must be snake_case (a package name)")
    return destination_type


def logical_prefix(destination_type: str) -> str:
    """`crm` -> `Crm`, `google_ads` -> `GoogleAds`: logical ids and output names start so."""
    return "".join(part[:1].upper() + part[1:] for part in check_type(destination_type).split("_"))


def type_of_prefix(prefix: str) -> str | None:
    """The inverse of `logical_prefix` (`GoogleAds` -> `google_ads`); None for a name it never makes."""
    if not _PREFIX_PATTERN.fullmatch(prefix):
        return None
    return "_".join(part.lower() for part in _PREFIX_PART.findall(prefix))


def logical_id(destination_type: str, resource: str) -> str:
    """`("google_ads", "Function")` -> `GoogleAdsFunction` (also `Queue`, `DeadLetterQueue`, `Rule`...)."""
    return f"{logical_prefix(destination_type)}{resource}"


def output_name(destination_type: str, output: str) -> str:
    """`("google_ads", "QueueUrl")` -> `GoogleAdsQueueUrl`: the stack output the CLI and harness read."""
    return logical_id(destination_type, output)


def secret_prefix(stack_name: str, destination_type: str) -> str:
    """`<stack>/<type>/`: the only secret names a destination's function may read."""
    return f"{stack_name}/{check_type(destination_type)}/"


# The state-table partitions a destination type writes for its instances. Each starts `<kind>#<type>`
# so that the type's role may be limited to its own with `dynamodb:LeadingKeys` (`order#<type>#*` ...,
# local/template_blocks.py); a key that carried only the instance would let every destination write it
# (docs/decisions.md, "Guard and ledger keys per destination type").
def order_key(destination_type: str, instance_id: str, entity: str) -> str:
    """The order guard's item of one entity on one instance (activation_core.guards)."""
    return f"order#{destination_type}#{instance_id}#{entity}"


def waiting_key(destination_type: str, instance_id: str, entity: str) -> str:
    """The waiting changes of one entity on one instance (activation_core.waiting)."""
    return f"waiting#{destination_type}#{instance_id}#{entity}"


def ledger_key(destination_type: str) -> str:
    """The outcome ledger of a type: sort keys `<type>`, `<type>#<instance>`, `<type>#<instance>#<audience>`."""
    return f"outcomes#{destination_type}"


def snapshot_ledger_key(destination_type: str) -> str:
    """The type's outcomes of snapshot changes: sort keys `<audience>#<snapshot>#<instance>`."""
    return f"snapshot-outcomes#{destination_type}"

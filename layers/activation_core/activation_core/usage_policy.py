"""Usage policies before egress: a labelled attribute never leaves for a marketing action its label
forbids (what AEP's data usage labels and marketing actions do).

The config labels source paths (`usagePolicies`) and each instance declares its marketing actions.
`check_instance` refuses an instance that maps a labelled attribute to a forbidden use (the function
and `activation config validate` both call it); `withheld_targets` is what the compiled mapping uses to
refuse such a value again at send time, whatever the config check did.
"""

from __future__ import annotations

from dataclasses import dataclass

from activation_core.errors import ConfigError
from activation_core.models.config import DestinationInstance, UsagePolicies


@dataclass(frozen=True, slots=True)
class Refusal:
    """A mapping row whose source carries a label that forbids one of the instance's actions."""

    target: str
    source: str
    labelled_path: str
    label: str
    action: str

    @property
    def field(self) -> str:
        return f"mapping.{self.target}"

    def detail(self) -> str:
        return (
            f"source '{self.source}' is labelled '{self.label}' (at '{self.labelled_path}'), "
            f"which forbids marketing action '{self.action}' of this destination"
        )


def _covers(labelled_path: str, source: str) -> bool:
    """A label on a path covers the path, everything under it, and any row that sends an object holding it."""
    return (
        source == labelled_path
        or source.startswith(labelled_path + ".")
        or labelled_path.startswith(source + ".")
    )


def refusals(policies: UsagePolicies, instance: DestinationInstance) -> tuple[Refusal, ...]:
    """One refusal per mapping row that would send a labelled value to a forbidden use."""
    actions = set(instance.marketing_actions)
    if not actions or not policies.attributes:
        return ()
    found: list[Refusal] = []
    for row in instance.mapping:
        refusal = next(
            (
                Refusal(row.target, row.source, path, label, action)
                for path, labels in sorted(policies.attributes.items())
                if _covers(path, row.source)
                for label in labels
                for action in policies.labels[label].forbids
                if action in actions
            ),
            None,
        )
        if refusal is not None:
            found.append(refusal)
    return tuple(found)


def check_instance(policies: UsagePolicies, instance: DestinationInstance) -> None:
    """Raise a ConfigError naming the field, label and action of the first forbidden mapping row."""
    for refusal in refusals(policies, instance):
        raise ConfigError(instance.id, refusal.field, refusal.detail())


def withheld_targets(policies: UsagePolicies, instance: DestinationInstance) -> dict[str, str]:
    """Target -> why its value may not leave for this instance (for the compiled mapping)."""
    return {r.target: r.detail() for r in refusals(policies, instance)}

"""Static lists named after audiences: what users of other tools expect when no list id is given.

An audience activated without `listId` (audience sync types) gets the static list of its name: found
with the Asset API (`staticList/byName.json`, an exact match across the instance) or, when absent,
created in `settings.listFolder` of the workspace (`staticLists.json`). Creating is not idempotent
(a list name must be unique), so it happens once for every invocation: the layer's `ListRegistry`
lets one invocation at a time find or create under a lease, then keeps the id in the state table with
a conditional put (`pk=marketo#lists#<munchkinId>`, `sk=<audience name>`); the others wait for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from activation_core.errors import ActivationError, ConfigError
from activation_core.list_registry import ListRegistry
from activation_core.locks import LeaseLock
from activation_core.models.config import ActivatedAudience
from marketo.client import Folder, MarketoClient
from marketo.models import MarketoSettings

LIST_DESCRIPTION = "Audience {name} ({id}), kept in sync by audience activation"


def registry_for(
    table_name: str,
    munchkin_id: str,
    *,
    dynamodb: Any | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> ListRegistry:
    """The list ids of one Marketo instance, shared by every dataflow on it (list names are unique there)."""
    return ListRegistry(
        table_name,
        f"marketo#lists#{munchkin_id}",
        lease_prefix=f"marketo-list#{munchkin_id}",
        reason_prefix="marketo_list",
        lock=LeaseLock(table_name, dynamodb=dynamodb),
        dynamodb=dynamodb,
        sleep=sleep,
        clock=clock,
    )


class AudienceLists:
    """The static list id of each activated audience: configured (`listId`), else found or created."""

    def __init__(
        self,
        client: MarketoClient,
        *,
        settings: MarketoSettings,
        instance_id: str,
        audiences: Mapping[str, ActivatedAudience],
        configured: Mapping[str, int],
        registry: ListRegistry,
    ) -> None:
        self._client = client
        self._settings = settings
        self._instance_id = instance_id
        self._audiences = audiences
        self._configured = configured
        self._registry = registry
        self._folder: Folder | None = None

    def list_id(self, audience_id: str) -> int:
        configured = self._configured.get(audience_id)
        if configured is not None:
            return configured
        name = self._audiences[audience_id].name.strip()
        recorded = self._registry.resolve(
            name, partial(self._find_or_create, self._audiences[audience_id]), self._instance_id
        )
        if recorded is None:  # _find_or_create always answers an id; kept for the type
            raise ConfigError(self._instance_id, "audiences", f"no static list for audience '{name}'")
        return int(recorded.list_id)

    def is_named(self, audience_id: str) -> bool:
        return audience_id not in self._configured

    def forget(self, audience_id: str, list_id: int) -> None:
        """The kept list is gone at Marketo (1013): the next attempt finds or creates it again."""
        self._registry.forget(self._audiences[audience_id].name.strip(), str(list_id))

    def _find_or_create(self, audience: ActivatedAudience) -> str:
        """Runs under the registry's lease: the list of the audience's name, else a new one in the folder."""
        name = audience.name.strip()
        found = self._client.static_list_named(name)
        if found is not None:
            return str(found)
        folder = self.folder()
        description = LIST_DESCRIPTION.format(name=name, id=audience.id)
        try:
            return str(self._client.create_static_list(name, folder.id, description))
        except ActivationError:
            # No clear answer, or the name was taken meanwhile (names are unique): look before
            # anyone creates another one.
            again = self._client.static_list_named(name)
            if again is not None:
                return str(again)
            raise

    def folder(self) -> Folder:
        """`settings.listFolder` in `settings.workspace` (the Asset API tells a folder's workspace)."""
        if self._folder is not None:
            return self._folder
        wanted, workspace = self._settings.list_folder, self._settings.workspace
        if wanted is None:
            raise ConfigError(self._instance_id, "settings.listFolder", "required to create lists by name")
        folders = [f for f in self._client.folders_named(wanted, workspace) if f.workspace == workspace]
        if not folders:
            raise ConfigError(
                self._instance_id,
                "settings.listFolder",
                f"no marketing folder named '{wanted}' in workspace '{workspace}'",
            )
        self._folder = min(folders, key=lambda f: f.id)
        return self._folder

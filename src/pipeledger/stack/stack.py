"""A stack: the orchestrator, artifact store and metadata store a pipeline runs on."""

from __future__ import annotations

import contextlib
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeledger.artifacts.store import ArtifactStore
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.redact import redact_json
from pipeledger.stack.home import ensure_home, pipeledger_home
from pipeledger.stack.recipe import StoreRecipes

if TYPE_CHECKING:
    # Only a type: the stack's orchestrator is built by its flavor, loaded by import path, so
    # the read side (which opens stacks) never imports execution code.
    from pipeledger.orchestrators.base import Orchestrator

DEFAULT_STACK = "default"


class Stack:
    """The three components a run uses. The metadata store is opened on first use.

    Args:
        name: the stack's name.
        orchestrator: executes steps.
        artifact_store: holds artifacts and logs.
        metadata_store: an open store, or a zero-argument callable opening it.
        snapshot: the non-secret description recorded with each run.
        recipes: how to open the same stores in worker processes (parallel orchestrators).
    """

    def __init__(
        self,
        name: str,
        *,
        orchestrator: Orchestrator,
        artifact_store: ArtifactStore,
        metadata_store: MetadataStore | Any,
        snapshot: dict[str, Any] | None = None,
        recipes: StoreRecipes | None = None,
    ) -> None:
        self.name = name
        self.orchestrator = orchestrator
        self.artifact_store = artifact_store
        self._metadata_store = metadata_store
        self._snapshot = snapshot
        #: How worker processes open the same stores (None: the stores were given as objects).
        self.recipes = recipes

    @cached_property
    def metadata_store(self) -> MetadataStore:
        """The stack's metadata store, opened (and its schema checked) on first access."""
        store = self._metadata_store
        return store if isinstance(store, MetadataStore) else store()

    def snapshot(self) -> dict[str, Any]:
        """Component names, flavors and non-secret configuration, as recorded with runs
        (credentials cut from every URL: :func:`pipeledger.redact.redact_json`)."""
        if self._snapshot is not None:
            return dict(redact_json(self._snapshot))
        return redact_json(
            {
                "name": self.name,
                "orchestrator": {"name": self.orchestrator.name, **self.orchestrator.describe()},
                "artifact_store": {
                    "name": self.artifact_store.name,
                    "root": self.artifact_store.uri_of(self.artifact_store.root),
                },
                "metadata_store": self.metadata_store.describe(),
            }
        )

    def close(self) -> None:
        """Close the metadata store if it was opened."""
        if "metadata_store" in self.__dict__:
            self.metadata_store.close()

    def __repr__(self) -> str:
        return f"<Stack {self.name}>"


def build_stack(name: str | None = None, home: Path | None = None) -> Stack:
    """Build the registered stack ``name`` (default: the active one) from the configuration.

    The orchestrator and artifact store are built now; the metadata store is
    opened on first use. The home directory is created, or made, private to the user
    (:func:`~pipeledger.stack.home.ensure_home`).

    Raises:
        ComponentNotFoundError: no such stack.
        ConfigError: a component's configuration is invalid or a secret is missing.
    """
    from pipeledger.stack.flavor import ComponentType
    from pipeledger.stack.manager import StackManager

    home = home or pipeledger_home()
    with contextlib.suppress(OSError):  # e.g. a read-only home: its store reports it in one line
        ensure_home(home)
    manager = StackManager(home)
    config = manager.store.load()
    name = name or manager.active_stack_name()
    entry = manager.get_stack_entry(name, config)
    snapshot: dict[str, Any] = {"name": name}
    for type_ in ComponentType:
        snapshot[type_.value] = manager.component_snapshot(type_, entry.component(type_), config)
    return Stack(
        name,
        orchestrator=manager.build_component(ComponentType.ORCHESTRATOR, entry.orchestrator, config),
        artifact_store=manager.build_component(ComponentType.ARTIFACT_STORE, entry.artifact_store, config),
        metadata_store=lambda: manager.build_component(ComponentType.METADATA_STORE, entry.metadata_store, config),
        snapshot=snapshot,
        recipes=StoreRecipes(
            metadata_store=manager.component_recipe(ComponentType.METADATA_STORE, entry.metadata_store, config),
            artifact_store=manager.component_recipe(ComponentType.ARTIFACT_STORE, entry.artifact_store, config),
        ),
    )

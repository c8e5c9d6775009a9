"""Recipes for opening a stack's stores in another process or on another machine.

A parallel or distributed orchestrator runs steps in worker processes, which record
straight into the stack's metadata store and artifact store. Open stores (database
connections) cannot be sent there; a :class:`ComponentRecipe` can: the flavor's import
path and the component's configuration with its secrets as *references*
(``${env:NAME}``, ``${file:/path}``), resolved only where the component is built. So no
secret travels to a worker: each worker must be able to resolve the references itself.
"""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeledger.stack.flavor import ComponentType, Flavor


@dataclass(frozen=True)
class ComponentRecipe:
    """How to build one stack component elsewhere: its type, name, flavor and configuration."""

    type: ComponentType
    name: str
    flavor: str
    flavor_source: str
    values: dict[str, Any] = field(hash=False)
    home: str

    @property
    def key(self) -> str:
        """A text naming exactly this component and configuration (for caches)."""
        return json.dumps([self.type.value, self.name, self.flavor_source, self.values, self.home], sort_keys=True)

    def flavor_class(self) -> builtins.type[Flavor]:
        """The flavor's class (imported from :attr:`flavor_source`)."""
        from pipeledger.stack.flavor_registry import load_flavor_class

        return load_flavor_class(self.flavor_source)

    def build(self) -> Any:
        """Build the component here, resolving its secret references in this process.

        Raises:
            ConfigError: the flavor cannot be imported, the configuration is invalid or a
                secret reference cannot be resolved here.
        """
        from pipeledger.stack.manager import resolve_config

        flavor = self.flavor_class()()
        home = Path(self.home)
        return flavor.create(self.name, resolve_config(flavor, self.name, dict(self.values), home), home)


@dataclass(frozen=True)
class StoreRecipes:
    """The recipes of a stack's metadata store and artifact store."""

    metadata_store: ComponentRecipe
    artifact_store: ComponentRecipe

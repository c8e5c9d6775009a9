"""Stacks and their components: flavors, configuration, registration.

``Stack`` is imported on first use (PEP 562): a process that only opens a metadata store
through its flavor (``pipeledger.stack.flavor``) does not load the artifact stores and their
fsspec (~5 MiB).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeledger.stack.flavor import (
    ArtifactStoreFlavor,
    ComponentType,
    Flavor,
    FlavorConfig,
    MetadataStoreFlavor,
    OrchestratorFlavor,
)
from pipeledger.stack.home import pipeledger_home

if TYPE_CHECKING:
    from pipeledger.stack.stack import Stack

__all__ = [
    "ArtifactStoreFlavor",
    "ComponentType",
    "Flavor",
    "FlavorConfig",
    "MetadataStoreFlavor",
    "OrchestratorFlavor",
    "Stack",
    "pipeledger_home",
]


def __getattr__(name: str) -> Any:
    if name == "Stack":
        from pipeledger.stack.stack import Stack

        return Stack
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Stacks and their components: flavors, configuration, registration."""

from pipeledger.stack.flavor import (
    ArtifactStoreFlavor,
    ComponentType,
    Flavor,
    FlavorConfig,
    MetadataStoreFlavor,
    OrchestratorFlavor,
)
from pipeledger.stack.home import pipeledger_home
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

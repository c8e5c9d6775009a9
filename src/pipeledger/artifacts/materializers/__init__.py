"""Materializers turn step outputs into files and back."""

from pipeledger.artifacts.materializers.base import Materializer
from pipeledger.artifacts.materializers.registry import (
    MaterializerRegistry,
    default_registry,
    register_materializer,
)

__all__ = ["Materializer", "MaterializerRegistry", "default_registry", "register_materializer"]

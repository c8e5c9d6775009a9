"""Artifact stores and materializers: where step outputs live and how they are (de)serialized."""

from typing import TYPE_CHECKING, Any

from pipeledger.artifacts.materializers import Materializer, register_materializer

if TYPE_CHECKING:
    from pipeledger.artifacts.store import ArtifactStore

__all__ = ["ArtifactStore", "Materializer", "register_materializer"]


def __getattr__(name: str) -> Any:
    """``ArtifactStore`` is imported on first access: it imports fsspec, which the materializers
    (needed to compute a cache key) do not."""
    if name == "ArtifactStore":
        from pipeledger.artifacts.store import ArtifactStore

        return ArtifactStore
    raise AttributeError(f"module 'pipeledger.artifacts' has no attribute {name!r}")

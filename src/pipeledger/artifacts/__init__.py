"""Artifact stores and materializers: where step outputs live and how they are (de)serialized."""

from pipeledger.artifacts.materializers import Materializer, register_materializer
from pipeledger.artifacts.store import ArtifactStore

__all__ = ["ArtifactStore", "Materializer", "register_materializer"]

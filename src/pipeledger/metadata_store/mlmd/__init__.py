"""The metadata store on Google's ML Metadata (MLMD) gRPC service, as Kubeflow deploys it.

Used by the ``kubeflow`` flavor. Needs the optional ``ml-metadata`` package
(``pip install 'pipeledger[kubeflow]'``); importing :mod:`pipeledger` never does.
How pipeledger's records map onto MLMD's contexts, executions, artifacts and
events is described in :mod:`pipeledger.metadata_store.mlmd.types`.
"""

from __future__ import annotations

from pipeledger.metadata_store.mlmd.store import MlmdMetadataStore

__all__ = ["MlmdMetadataStore"]

"""Importing run history recorded by other systems into a pipeledger metadata store.

* :func:`import_mlmd`: an ML Metadata database written by TFX, Kubeflow Pipelines,
  ZenML <= 0.13 or pipeledger's own ``kubeflow`` flavor (``pipeledger import mlmd`` on
  the command line; needs ``pip install 'pipeledger[kubeflow]'``).
"""

from __future__ import annotations

from pipeledger.importers.mlmd import ImportSummary, import_mlmd
from pipeledger.importers.mlmd_source import MlmdImportError, MysqlSource, SqliteSource

__all__ = ["ImportSummary", "MlmdImportError", "MysqlSource", "SqliteSource", "import_mlmd"]

"""pipeledger: ML pipelines whose every run is recorded in a metadata store.

The public API::

    from pipeledger import step, pipeline, Client, log_metadata, rerun
"""

from pipeledger.artifacts.materializers import Materializer, register_materializer
from pipeledger.client import ArtifactView, Client, PipelineView, RunView, StepView
from pipeledger.context import StepContext, get_step_context, log_metadata
from pipeledger.exceptions import (
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ConfigError,
    DefinitionError,
    MaterializerError,
    MetadataStoreError,
    NotFoundError,
    PipeledgerError,
    PipeledgerWarning,
    QueryError,
    RunExistsError,
    RunFailedError,
    SchemaVersionError,
    StoreUnavailableError,
    UnsupportedOperationError,
)
from pipeledger.models import Status
from pipeledger.pipelines import Pipeline, pipeline
from pipeledger.reproduce import rerun
from pipeledger.steps import Step, step

__version__ = "0.1.0"  # the one place the version is defined (pyproject.toml reads it)

__all__ = [
    "ArtifactIntegrityError",
    "ArtifactNotFoundError",
    "ArtifactView",
    "Client",
    "ConfigError",
    "DefinitionError",
    "Materializer",
    "MaterializerError",
    "MetadataStoreError",
    "NotFoundError",
    "PipeledgerError",
    "PipeledgerWarning",
    "Pipeline",
    "PipelineView",
    "QueryError",
    "RunExistsError",
    "RunFailedError",
    "RunView",
    "SchemaVersionError",
    "Status",
    "Step",
    "StepContext",
    "StepView",
    "StoreUnavailableError",
    "UnsupportedOperationError",
    "__version__",
    "get_step_context",
    "log_metadata",
    "pipeline",
    "register_materializer",
    "rerun",
    "step",
]

"""pipeledger: ML pipelines whose every run is recorded in a metadata store.

The public API::

    from pipeledger import step, pipeline, Client, log_metadata, rerun
"""

import typing

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

if typing.TYPE_CHECKING:  # imported on first use, see __getattr__
    from pipeledger.artifacts.materializers import Materializer, register_materializer
    from pipeledger.client import ArtifactView, Client, PipelineView, RunView, StepView
    from pipeledger.context import StepContext, get_step_context, log_metadata
    from pipeledger.pipelines.pipeline import Pipeline, pipeline
    from pipeledger.reproduce import rerun
    from pipeledger.steps import Step, step

#: The public names that import something heavy (the artifact store and fsspec, pydantic, the
#: stack, cloudpickle), by the module that defines them: imported on first access, so
#: ``import pipeledger`` (a CLI's start, a worker's) costs only the exceptions and models.
_LAZY = {
    "Materializer": "pipeledger.artifacts.materializers",
    "register_materializer": "pipeledger.artifacts.materializers",
    "ArtifactView": "pipeledger.client",
    "Client": "pipeledger.client",
    "PipelineView": "pipeledger.client",
    "RunView": "pipeledger.client",
    "StepView": "pipeledger.client",
    "StepContext": "pipeledger.context",
    "get_step_context": "pipeledger.context",
    "log_metadata": "pipeledger.context",
    "Pipeline": "pipeledger.pipelines",
    "pipeline": "pipeledger.pipelines",
    "rerun": "pipeledger.reproduce",
    "Step": "pipeledger.steps",
    "step": "pipeledger.steps",
}


def __getattr__(name: str) -> typing.Any:
    """Import a public name of :data:`_LAZY` on first access (PEP 562) and keep it here."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pipeledger' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


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

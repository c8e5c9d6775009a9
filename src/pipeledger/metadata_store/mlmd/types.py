"""How pipeledger's records map onto ML Metadata's model, and the MLMD types that hold them.

=========================  ==============================================================
pipeledger                 ML Metadata
=========================  ==============================================================
pipeline                   context of type ``pipeledger.Pipeline``, named as the pipeline
run                        context of type ``pipeledger.PipelineRun``, named as the run,
                           child of its pipeline's context
step run                   execution of type ``pipeledger.Step`` named ``<run id>/<step>``
                           (so a run cannot record a step twice), attributed to its run's
                           and pipeline's contexts; ``last_known_state`` follows the status
artifact                   artifact of type ``pipeledger.Artifact`` with its URI
input / output edge        ``INPUT`` / ``OUTPUT`` event whose path is ``[name, 0]`` (TFX's
                           ``[key, index]`` form; a step consuming one artifact under two
                           names gets one event ``[a, 0, b, 0]``); older databases hold
                           ``[name]`` paths, read the same
key/value metadata         ``custom_properties`` of the context, execution or artifact
ids                        ``external_id`` (pipeledger's 32-hex ids); MLMD's integer ids
                           stay internal
run number                 context of type ``pipeledger.RunNumber`` named
                           ``<pipeline id>/<n>``, created with the run's context
=========================  ==============================================================

**What Kubeflow Pipelines and TFX readers find** ("the KFP view"): each
pipeline also has a context of KFP v2's type ``system.Pipeline`` (named as the
pipeline, shared with Kubeflow's own runs of a pipeline of that name), and each run a
context of type ``system.PipelineRun`` named as the run, child of it, created in the
same call as the run's own context. Step executions are attributed to both, so
``GetContextByTypeAndName("system.PipelineRun", run)`` then
``GetExecutionsByContext`` finds a run's steps as KFP's client finds its own. Their
``last_known_state`` is the one KFP and TFX read: ``COMPLETE``, ``CACHED``, ``RUNNING``,
``FAILED`` for failed *and* crashed steps (``CANCELED`` means "not triggered" to KFP,
a success), ``CANCELED`` for skipped steps; the ``status`` property keeps pipeledger's
own status (``crashed``). The ``system.*`` types are registered schemaless, as KFP
registers them (KFP re-registers them without ``can_omit_fields``: a declared property
would make its own calls fail), so the KFP view carries only a ``pipeledger_run_id``
custom property linking back; pipeledger's fields stay on the ``pipeledger.*`` nodes,
whose declared properties MLMD filter queries need. Runs recorded before the KFP view
existed have no ``system.*`` contexts and are read exactly as before: pipeledger reads
only its ``pipeledger.*`` types.

pipeledger's own fields are declared ``properties`` of these types, so
Kubeflow's UI and MLMD filter queries see them. Types are registered with
``can_add_fields``: a newer pipeledger adds properties to existing types, and
never removes any.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from ml_metadata.proto import metadata_store_pb2 as mlmd
from ml_metadata.proto import metadata_store_service_pb2 as service

from pipeledger.models import Status

PIPELINE_TYPE = "pipeledger.Pipeline"
RUN_TYPE = "pipeledger.PipelineRun"
STEP_TYPE = "pipeledger.Step"
ARTIFACT_TYPE = "pipeledger.Artifact"
#: One context per (pipeline, run number), created in the same call as the run's context: MLMD's
#: unique (type, name) makes run numbers unique per pipeline, as a unique index does in SQL.
RUN_NUMBER_TYPE = "pipeledger.RunNumber"
#: Kubeflow Pipelines v2's context types (``backend/src/v2/metadata/client.go``), schemaless.
KFP_PIPELINE_TYPE = "system.Pipeline"
KFP_RUN_TYPE = "system.PipelineRun"
#: KFP v2's execution type of a run's root DAG, which holds the run's state.
KFP_DAG_TYPE = "system.DAGExecution"
#: The custom property of a ``system.PipelineRun`` context naming the pipeledger run it mirrors.
KFP_RUN_LINK = "pipeledger_run_id"

S, INT, B = mlmd.STRING, mlmd.INT, mlmd.BOOLEAN

PIPELINE_PROPERTIES = {"docstring": S, "created_at": INT}
RUN_PROPERTIES = {
    "pipeline": S,
    "pipeline_id": S,
    "number": INT,
    "status": S,
    "start_time": INT,
    "end_time": INT,
    "heartbeat_at": INT,
    "parameters": S,
    "config": S,
    "environment": S,
    "stack": S,
    "git_sha": S,
    "git_dirty": B,
    "code_hash": S,
    "error": S,
    "tags": S,
}
STEP_PROPERTIES = {
    "run_id": S,
    "step": S,
    # A digest of the step's name: filter queries compare it, never the free-text name (MLMD's
    # filter language and its SQL backends disagree on escapes such as backslashes).
    "step_key": S,
    "status": S,
    "start_time": INT,
    "end_time": INT,
    "entrypoint": S,
    "docstring": S,
    "parameters": S,
    "config": S,
    "source_hash": S,
    "cache_key": S,
    "cache_components": S,
    # "valid" on a completed step run with a cache key (a usable cache entry), else absent;
    # "invalidated" once `pipeledger cache clear` retired it. MLMD filters cannot test absence.
    "cache_state": S,
    "cache_invalidated_at": INT,
    "cached_from_id": S,
    "error": S,
    "logs_uri": S,
    "error_message": S,
}
ARTIFACT_PROPERTIES = {
    "type": S,
    "data_type": S,
    "materializer": S,
    "materializer_version": S,
    "content_hash": S,
    "size": INT,
    "producer_step_run_id": S,
    "created_at": INT,
    "artifact_store": S,
}

#: ``last_known_state`` per status, as KFP and TFX read it: a crashed step is a failure to
#: them (``CANCELED`` is KFP's "not triggered", which it counts as done).
STATES = {
    Status.RUNNING: mlmd.Execution.RUNNING,
    Status.COMPLETED: mlmd.Execution.COMPLETE,
    Status.FAILED: mlmd.Execution.FAILED,
    Status.CACHED: mlmd.Execution.CACHED,
    Status.CRASHED: mlmd.Execution.FAILED,
    # A step not run (a branch not taken, or after a failure) is KFP's "not triggered".
    Status.SKIPPED: mlmd.Execution.CANCELED,
}


@dataclass(frozen=True)
class TypeIds:
    """MLMD's ids of pipeledger's types, and of KFP's context types, on one server."""

    pipeline: int
    run: int
    step: int
    artifact: int
    run_number: int
    kfp_pipeline: int
    kfp_run: int
    kfp_dag: int


def register_types(call: Any) -> TypeIds:
    """Create (or extend) pipeledger's types on the server with ``call(method, request)``."""

    def context_type(name: str, properties: dict[str, int] | None = None) -> int:
        request = service.PutContextTypeRequest(
            context_type=mlmd.ContextType(name=name, properties=properties or {}), can_add_fields=True
        )
        return int(call("PutContextType", request).type_id)

    def schemaless(name: str) -> int:  # KFP's types: whatever KFP (or anyone) declared stays as it is
        request = service.PutContextTypeRequest(context_type=mlmd.ContextType(name=name), can_omit_fields=True)
        return int(call("PutContextType", request).type_id)

    dag = service.PutExecutionTypeRequest(execution_type=mlmd.ExecutionType(name=KFP_DAG_TYPE), can_omit_fields=True)

    step = service.PutExecutionTypeRequest(
        execution_type=mlmd.ExecutionType(name=STEP_TYPE, properties=STEP_PROPERTIES), can_add_fields=True
    )
    artifact = service.PutArtifactTypeRequest(
        artifact_type=mlmd.ArtifactType(name=ARTIFACT_TYPE, properties=ARTIFACT_PROPERTIES), can_add_fields=True
    )
    return TypeIds(
        pipeline=context_type(PIPELINE_TYPE, PIPELINE_PROPERTIES),
        run=context_type(RUN_TYPE, RUN_PROPERTIES),
        step=int(call("PutExecutionType", step).type_id),
        artifact=int(call("PutArtifactType", artifact).type_id),
        run_number=context_type(RUN_NUMBER_TYPE),
        kfp_pipeline=schemaless(KFP_PIPELINE_TYPE),
        kfp_run=schemaless(KFP_RUN_TYPE),
        kfp_dag=int(call("PutExecutionType", dag).type_id),
    )


def step_key(name: str) -> str:
    """The ``step_key`` property of a step named ``name``."""
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:32]

"""The KFP view: the nodes that show pipeledger's runs to Kubeflow Pipelines' and TFX's readers.

Kubeflow Pipelines v2 (``backend/src/v2/metadata/client.go``) keeps a run as a
``system.PipelineRun`` context named by the run, child of a ``system.Pipeline`` context
named by the pipeline, and the run's state on a root ``system.DAGExecution`` in the run
context. The flavor writes the same for each run: the contexts in the call that creates
the run, the root DAG right after (``RUNNING``, with the run's parameters as its
``inputs`` struct and its name as ``display_name``), whose state follows the run's
(``COMPLETE``, or ``FAILED`` for failed and crashed runs). Every node of the view carries
a ``pipeledger_run_id`` custom property naming the run. pipeledger never reads the view
back: it is written for others, and a run recorded before the view existed has none.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2
from ml_metadata.proto import metadata_store_pb2 as mlmd
from ml_metadata.proto import metadata_store_service_pb2 as service

from pipeledger.exceptions import MetadataStoreError
from pipeledger.metadata_store.mlmd import records
from pipeledger.metadata_store.mlmd.connection import AlreadyExistsError
from pipeledger.metadata_store.mlmd.core import MlmdCore
from pipeledger.metadata_store.mlmd.types import KFP_DAG_TYPE, KFP_PIPELINE_TYPE, KFP_RUN_LINK, KFP_RUN_TYPE, STATES
from pipeledger.metadata_store.mlmd.values import string
from pipeledger.models import JSON, Status

_DAG_STATES = {Status.COMPLETED: mlmd.Execution.COMPLETE, Status.CACHED: mlmd.Execution.COMPLETE}


def dag_state(status: Status) -> int:
    """The root DAG's ``last_known_state`` for a run's status (a crash is a failure to KFP)."""
    return _DAG_STATES.get(status, STATES.get(status, mlmd.Execution.FAILED))


def dag_name(run_name: str) -> str:
    """The root DAG execution's name (KFP names its own ``run/<run id>``, its run context's name)."""
    return f"run/{run_name}"


class MlmdKfpView(MlmdCore):
    """Writes and finds the KFP view of runs."""

    _run_dags: dict[str, int | None]  # run id -> MLMD id of its root DAG execution (None: it has none)

    def _kfp_pipeline_context(self, name: str) -> Any:
        """The ``system.Pipeline`` context called ``name`` (Kubeflow's, if it has one), created if missing."""
        for _attempt in range(3):
            found = self.context_named(KFP_PIPELINE_TYPE, name)
            if found is not None:
                return found
            ctx = mlmd.Context(type_id=self.types.kfp_pipeline, name=name)
            try:
                ctx.id = self.conn.call("PutContexts", service.PutContextsRequest(contexts=[ctx])).context_ids[0]
            except AlreadyExistsError:
                continue  # created concurrently: read it
            return ctx
        raise MetadataStoreError(f"could not create the Kubeflow pipeline context {name!r}")

    def _kfp_contexts(self, run_id: str, run_name: str) -> list[int]:
        """MLMD ids of run ``run_id``'s ``system.PipelineRun`` context and its ``system.Pipeline``
        parent, or ``[]`` for a run recorded before the view existed."""
        kfp_run = self.context_named(KFP_RUN_TYPE, run_name)
        if kfp_run is None or records.kfp_run_link(kfp_run) != run_id:
            return []
        request = service.GetParentContextsByContextRequest(context_id=kfp_run.id)
        parents = self.conn.call("GetParentContextsByContext", request).contexts
        return [kfp_run.id, *(p.id for p in parents if p.type_id == self.types.kfp_pipeline)]

    def _put_root_dag(self, run_id: str, run_name: str, parameters: dict[str, JSON], contexts: list[int]) -> None:
        """Record run ``run_id``'s root DAG execution (``RUNNING``) in its KFP contexts."""
        dag = mlmd.Execution(type_id=self.types.kfp_dag, name=dag_name(run_name))
        dag.last_known_state = mlmd.Execution.RUNNING
        dag.custom_properties["display_name"].CopyFrom(string(run_name))
        dag.custom_properties[KFP_RUN_LINK].CopyFrom(string(run_id))
        inputs = struct_pb2.Struct()
        inputs.update({k: v for k, v in parameters.items() if _fits_struct(v)})
        dag.custom_properties["inputs"].struct_value.CopyFrom(inputs)
        request = service.PutExecutionRequest(execution=dag, contexts=[mlmd.Context(id=i) for i in contexts])
        request.options.force_reuse_context = True
        try:
            self._run_dags[run_id] = int(self.conn.call("PutExecution", request).execution_id)
        except AlreadyExistsError:
            self._run_dags[run_id] = None  # another writer's node of that name: the view goes without it

    def _set_dag_states(self, runs: dict[str, tuple[str, Status]]) -> None:
        """Set the root DAG state of each run (run id -> (run name, status)) that has one."""
        updates = []
        for run_id, (run_name, status) in runs.items():
            dag_id = self._root_dag(run_id, run_name)
            if dag_id is not None:
                updates.append(
                    mlmd.Execution(id=dag_id, type_id=self.types.kfp_dag, last_known_state=dag_state(status))
                )
        if updates:
            mask = {"paths": ["last_known_state"]}
            self.conn.call("PutExecutions", service.PutExecutionsRequest(executions=updates, update_mask=mask))

    def _root_dag(self, run_id: str, run_name: str) -> int | None:
        if run_id not in self._run_dags:
            request = service.GetExecutionByTypeAndNameRequest(
                type_name=KFP_DAG_TYPE, execution_name=dag_name(run_name)
            )
            response = self.conn.call("GetExecutionByTypeAndName", request)
            found = response.execution if response.HasField("execution") else None
            linked = found is not None and records.kfp_run_link(found) == run_id
            self._run_dags[run_id] = found.id if found is not None and linked else None
        return self._run_dags[run_id]


def _fits_struct(value: JSON) -> bool:
    """Whether ``value`` is a JSON value a protobuf ``Struct`` holds (every one but big integers,
    which it would round)."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, float)):
        return True
    if isinstance(value, int):
        return abs(value) < 2**53
    if isinstance(value, list):
        return all(_fits_struct(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _fits_struct(v) for k, v in value.items())
    return False

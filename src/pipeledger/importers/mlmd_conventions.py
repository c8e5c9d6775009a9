"""What TFX, Kubeflow Pipelines and ZenML <= 0.13 wrote into MLMD, and what it means for pipeledger.

The rules (docs/importing.md tells users the same):

* A **run** is a context of a run type: ``pipeline_run`` (TFX >= 0.30, ZenML <= 0.13),
  ``run`` (older TFX), ``KfpRun`` (Kubeflow Pipelines v1), ``system.PipelineRun`` /
  ``kfp.PipelineRun`` (v2). Its **pipeline** is its parent context of a pipeline type
  (``pipeline``, ``system.Pipeline``), else the pipeline context most of its executions
  belong to, else its ``pipeline_name`` property, else ``mlmd-unassigned``.
* A **step run** is an execution of such a run, except Kubeflow Pipelines v2's
  ``system.DAGExecution`` executions: the root DAG and the sub-DAGs (conditions, loops) are
  the run's structure, kept in its ``config["imported_from"]`` (the root DAG's ``inputs``,
  the pipeline's parameters, become the run's parameters). A step's name is ZenML's
  ``zenml-pipeline_parameter_name``, else the ``component_id`` property (TFX, KFP v1),
  else its ``node`` context's name without the pipeline prefix, else KFP v2's
  ``task_name``/``display_name`` (inside a sub-DAG, prefixed with the DAG's task names,
  ``condition-1/train``; an iteration of a loop ``for-loop-2[0]/train``), else the
  execution's name, else the last dotted part of its type name; repeated names in a run
  get ``-2``, ``-3``... Its parameters are the execution's properties and custom
  properties except bookkeeping ones (kept in the step's ``config["mlmd"]``); on a KFP v2
  execution, the parameters are its ``inputs`` struct and every other property
  (``task_name``, ``pod_name``, ``cache_fingerprint``...) is bookkeeping.
* ``last_known_state``: ``COMPLETE`` → completed, ``CACHED`` → cached, ``FAILED`` →
  failed (the error is TFX's recorded ``__execution_result__`` ``resultMessage``, or its
  ``__execution_error_msg__``), ``NEW``/``RUNNING`` → crashed (the import records finished
  history: an execution still open in MLMD never finished for pipeledger). ``CANCELED``
  means "not triggered" to KFP v2 (a condition's branch not taken, counted as done): skipped;
  to TFX it means stopped before it finished: failed. Without a state, the legacy ``state``
  property decides, else: completed if it has outputs.
* **Edges**: ``INPUT``, ``DECLARED_INPUT``, ``INTERNAL_INPUT`` events are inputs; ``OUTPUT``,
  ``DECLARED_OUTPUT``, ``INTERNAL_OUTPUT`` outputs. Every (key, index) pair of an event's
  path is an edge (TFX writes one event, path ``['model', 0, 'baseline_model', 0]``, for an
  artifact used under two keys): named by the key, ``key[index]`` when the key holds
  several artifacts.
* **Names** that break pipeledger's rules (control characters, surrounding whitespace,
  too long) are normalised reversibly, the original kept in the record:
  :mod:`~pipeledger.importers.mlmd_names`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from pipeledger.importers.mlmd_source import MlmdContext, MlmdExecution, MlmdSnapshot
from pipeledger.models import JSON, Status

PIPELINE_CONTEXT_TYPES = frozenset({"pipeline", "system.Pipeline"})
RUN_CONTEXT_TYPES = frozenset({"pipeline_run", "run", "KfpRun", "system.PipelineRun", "kfp.PipelineRun"})
NODE_CONTEXT_TYPES = frozenset({"node", "component_run", "component"})
INPUT_EVENTS = frozenset({"INPUT", "DECLARED_INPUT", "INTERNAL_INPUT"})
OUTPUT_EVENTS = frozenset({"OUTPUT", "DECLARED_OUTPUT", "INTERNAL_OUTPUT"})
ZENML_STEP_NAME = "zenml-pipeline_parameter_name"
ZENML_DATATYPE = "datatype"
ZENML_MATERIALIZER = "materializer"
UNASSIGNED_PIPELINE = "mlmd-unassigned"
IMPORT_TAG = "imported-from-mlmd"
#: Execution properties that describe the bookkeeping of TFX, KFP or ZenML, not a parameter.
BOOKKEEPING = frozenset(
    {"component_id", "pipeline_name", "run_id", "state", "checksum_md5", "pipeline_root", "kfp_pod_name"}
)
#: Kubeflow Pipelines v2's execution types (``backend/src/v2/metadata/client.go``).
KFP_V2_DAG = "system.DAGExecution"
KFP_V2_EXECUTION_TYPES = frozenset(
    {"system.ContainerExecution", KFP_V2_DAG, "system.ImporterExecution", "system.ImporterWorkspaceExecution"}
)
#: The custom property where KFP v2 keeps an execution's input parameter values (a struct).
KFP_V2_INPUTS = "inputs"
#: TFX's records of a failure: a JSON ``ExecutionResult`` and a plain message.
TFX_EXECUTION_RESULT = "__execution_result__"
TFX_ERROR_MESSAGE = "__execution_error_msg__"
_STATES = {
    "COMPLETE": Status.COMPLETED,
    "CACHED": Status.CACHED,
    "FAILED": Status.FAILED,
    "NEW": Status.CRASHED,
    "RUNNING": Status.CRASHED,
}
_LEGACY_STATES = {"complete": Status.COMPLETED, "published": Status.COMPLETED, "cached": Status.CACHED}


@dataclass(frozen=True)
class PathKey:
    """One (key, index) pair of an event's path: an edge name and the artifact's position under it."""

    key: str
    index: int | None


def path_keys(path: tuple[str | int, ...]) -> list[PathKey]:
    """The (key, index) pairs of an event path, in order: ``['model', 0, 'baseline_model', 0]``
    gives two; a key without an index has index None; a path without a key gives none."""
    pairs: list[PathKey] = []
    for position, step in enumerate(path):
        if isinstance(step, str):
            following = path[position + 1] if position + 1 < len(path) else None
            pairs.append(PathKey(step, following if isinstance(following, int) else None))
    return pairs


def is_kfp_v2(execution: MlmdExecution) -> bool:
    """Whether Kubeflow Pipelines v2 wrote ``execution`` (by its ``system.*`` execution type)."""
    return execution.type in KFP_V2_EXECUTION_TYPES


def is_dag(execution: MlmdExecution) -> bool:
    """Whether ``execution`` is a KFP v2 DAG (the run's root or a sub-DAG): structure, not a step."""
    return execution.type == KFP_V2_DAG


def pipeline_name(snapshot: MlmdSnapshot, run: MlmdContext, executions: list[MlmdExecution]) -> str:
    contexts = snapshot.contexts
    for parent in snapshot.parents.get(run.id, ()):
        if parent in contexts and contexts[parent].type in PIPELINE_CONTEXT_TYPES:
            return contexts[parent].name
    votes = Counter(c for e in executions for c in e.context_ids if contexts[c].type in PIPELINE_CONTEXT_TYPES)
    if votes:
        best = min(votes, key=lambda c: (-votes[c], c))
        return contexts[best].name
    for properties in (run.properties, *(e.properties for e in executions)):
        name = properties.get("pipeline_name")
        if isinstance(name, str) and name:
            return name
    return UNASSIGNED_PIPELINE


def step_name(
    snapshot: MlmdSnapshot, execution: MlmdExecution, pipeline: str, dag_paths: dict[int, str] | None = None
) -> str:
    """The step name of ``execution`` (see the module's docstring); ``dag_paths`` maps a KFP v2
    sub-DAG's execution id to its path of task names (the root DAG maps to ``""``). The name
    may still break pipeledger's name rules: :mod:`~pipeledger.importers.mlmd_names` follows."""
    props = {**execution.custom_properties, **execution.properties}
    zenml = props.get(ZENML_STEP_NAME)
    if isinstance(zenml, str) and zenml:
        try:
            decoded = json.loads(zenml)
        except ValueError:
            decoded = zenml
        return str(decoded)
    component = props.get("component_id")
    if isinstance(component, str) and component:
        return component
    for context_id in execution.context_ids:
        context = snapshot.contexts[context_id]
        if context.type in NODE_CONTEXT_TYPES and context.name:
            return context.name.removeprefix(f"{pipeline}.")
    for key in ("task_name", "display_name"):
        value = props.get(key)
        if isinstance(value, str) and value:
            parent = props.get("parent_dag_id")
            prefix = (dag_paths or {}).get(int(parent), "") if isinstance(parent, (int, float)) else ""
            return f"{prefix}/{value}" if prefix else value
    if execution.name:
        return execution.name
    return execution.type.rsplit(".", 1)[-1] or f"execution-{execution.id}"


def dag_paths(executions: list[MlmdExecution]) -> dict[int, str]:
    """KFP v2 DAG execution id → its path of task names below the root DAG (``""`` for the root):
    ``condition-1``, ``for-loop-2/for-loop-2[0]`` shortened to ``for-loop-2[0]`` (an iteration
    of a loop replaces the loop's own segment)."""
    dags = {e.id: e for e in executions if is_dag(e)}
    paths: dict[int, str] = {}

    def path(execution_id: int, seen: frozenset[int] = frozenset()) -> str:
        if execution_id in paths:
            return paths[execution_id]
        dag = dags[execution_id]
        props = dag.custom_properties
        parent = props.get("parent_dag_id")
        if not isinstance(parent, (int, float)) or int(parent) not in dags or execution_id in seen:
            paths[execution_id] = ""  # the root DAG (or a parent outside the history)
            return ""
        task = str(props.get("task_name") or props.get("display_name") or f"dag-{execution_id}")
        index = props.get("iteration_index")
        segment = f"{task}[{int(index)}]" if isinstance(index, (int, float)) else task
        above = path(int(parent), seen | {execution_id})
        head, _, last = above.rpartition("/")
        if isinstance(index, (int, float)) and last == task:
            above = head
        paths[execution_id] = f"{above}/{segment}" if above else segment
        return paths[execution_id]

    for execution_id in sorted(dags):
        path(execution_id)
    return paths


def step_status(execution: MlmdExecution, has_outputs: bool) -> tuple[Status, str | None]:
    """The step's status and error for ``execution`` (see the module's docstring)."""
    if execution.state == "CANCELED":
        if is_kfp_v2(execution):
            return Status.SKIPPED, None
        message = failure_message(execution)
        stopped = f"MLMD execution {execution.id} was CANCELED: stopped before it finished"
        return Status.FAILED, f"{stopped}: {message}" if message else stopped
    if execution.state in _STATES:
        status = _STATES[execution.state]
    else:
        legacy = execution.properties.get("state", execution.custom_properties.get("state"))
        status = _LEGACY_STATES.get(str(legacy).lower(), Status.COMPLETED if has_outputs else Status.CRASHED)
        if legacy is not None and str(legacy).lower() == "failed":
            status = Status.FAILED
    if status is Status.FAILED:
        return status, failure_message(execution) or f"MLMD execution {execution.id} ended {execution.state}"
    if status is Status.CRASHED:
        return status, f"MLMD execution {execution.id} was {execution.state} when imported: it never finished"
    return status, None


def failure_message(execution: MlmdExecution) -> str | None:
    """The failure message TFX recorded on ``execution``: the ``resultMessage`` of its
    ``__execution_result__`` (an ``ExecutionResult`` as JSON, written by
    ``execution_lib.set_execution_result``), else its ``__execution_error_msg__``; None if neither."""
    props = {**execution.custom_properties, **execution.properties}
    result = props.get(TFX_EXECUTION_RESULT)
    if isinstance(result, str):
        try:
            result = json.loads(result)
        except ValueError:
            result = None
    if isinstance(result, dict):
        message = result.get("resultMessage", result.get("result_message"))
        if isinstance(message, str) and message.strip():
            return message
    message = props.get(TFX_ERROR_MESSAGE)
    return message if isinstance(message, str) and message.strip() else None


def split_properties(execution: MlmdExecution) -> tuple[dict[str, JSON], dict[str, JSON]]:
    """An execution's (custom) properties as ``(parameters, bookkeeping)``.

    Bookkeeping is what TFX, KFP or ZenML recorded about the execution itself
    (:data:`BOOKKEEPING`, ``zenml-*`` and ``__*__`` keys). ZenML stored parameters as JSON
    text: on a ZenML execution, string values are decoded when they are valid JSON. On a
    KFP v2 execution the parameters are the fields of its ``inputs`` struct, and everything
    else is bookkeeping.
    """
    everything = {**execution.custom_properties, **execution.properties}
    if is_kfp_v2(execution):
        inputs = everything.get(KFP_V2_INPUTS)
        parameters = dict(inputs) if isinstance(inputs, dict) else {}
        bookkeeping = {k: v for k, v in everything.items() if k != KFP_V2_INPUTS or not isinstance(v, dict)}
        return parameters, bookkeeping
    zenml = any(k.startswith("zenml-") for k in execution.custom_properties)
    parameters = {}
    bookkeeping = {}
    for key, value in everything.items():
        if key in BOOKKEEPING or key.startswith(("zenml-", "__")):
            bookkeeping[key] = value
        elif zenml and isinstance(value, str):
            try:
                parameters[key] = json.loads(value)
            except ValueError:
                parameters[key] = value
        else:
            parameters[key] = value
    return parameters, bookkeeping

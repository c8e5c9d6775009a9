"""What TFX, Kubeflow Pipelines and ZenML <= 0.13 wrote into MLMD, and what it means for pipeledger.

The rules (docs/importing.md tells users the same):

* A **run** is a context of a run type: ``pipeline_run`` (TFX >= 0.30, ZenML <= 0.13),
  ``run`` (older TFX), ``KfpRun`` (Kubeflow Pipelines v1), ``system.PipelineRun`` /
  ``kfp.PipelineRun`` (v2). Its **pipeline** is its parent context of a pipeline type
  (``pipeline``, ``system.Pipeline``), else the pipeline context most of its executions
  belong to, else its ``pipeline_name`` property, else ``mlmd-unassigned``.
* A **step run** is an execution of such a run. Its name is ZenML's
  ``zenml-pipeline_parameter_name``, else the ``component_id`` property (TFX, KFP v1),
  else its ``node`` context's name without the pipeline prefix, else KFP v2's
  ``task_name``/``display_name``, else the execution's name, else the last dotted part of
  its type name; repeated names in a run get ``-2``, ``-3``... Its parameters are the
  execution's properties and custom properties except bookkeeping ones (kept in the
  step's ``config["mlmd"]``).
* ``last_known_state``: ``COMPLETE`` → completed, ``CACHED`` → cached, ``FAILED`` and
  ``CANCELED`` → failed, ``NEW``/``RUNNING`` → crashed (the import records finished
  history: an execution still open in MLMD never finished for pipeledger). Without a
  state, the legacy ``state`` property decides, else: completed if it has outputs.
* **Edges**: ``INPUT``, ``DECLARED_INPUT``, ``INTERNAL_INPUT`` events are inputs; ``OUTPUT``,
  ``DECLARED_OUTPUT``, ``INTERNAL_OUTPUT`` outputs; named by the event path's key.
"""

from __future__ import annotations

import json
from collections import Counter

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
_STATES = {
    "COMPLETE": Status.COMPLETED,
    "CACHED": Status.CACHED,
    "FAILED": Status.FAILED,
    "CANCELED": Status.FAILED,
    "NEW": Status.CRASHED,
    "RUNNING": Status.CRASHED,
}
_LEGACY_STATES = {"complete": Status.COMPLETED, "published": Status.COMPLETED, "cached": Status.CACHED}


def edge_names(edges: dict[int, tuple[str | int, ...]], default: str) -> dict[str, int]:
    """Edge names from event paths: the key, with the index when a key holds several artifacts."""
    keys = Counter(next((str(p) for p in path if isinstance(p, str)), default) for path in edges.values())
    named: dict[str, int] = {}
    for position, (artifact_id, path) in enumerate(sorted(edges.items(), key=lambda item: (str(item[1]), item[0]))):
        key = next((str(p) for p in path if isinstance(p, str)), default)
        index = next((p for p in path if isinstance(p, int)), position)
        name = key if keys[key] == 1 else f"{key}[{index}]"
        while name in named:
            name += "'"
        named[name] = artifact_id
    return named


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


def step_name(snapshot: MlmdSnapshot, execution: MlmdExecution, pipeline: str) -> str:
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
            return value
    if execution.name:
        return execution.name
    return execution.type.rsplit(".", 1)[-1] or f"execution-{execution.id}"


def step_status(execution: MlmdExecution, has_outputs: bool) -> tuple[Status, str | None]:
    if execution.state in _STATES:
        status = _STATES[execution.state]
    else:
        legacy = execution.properties.get("state", execution.custom_properties.get("state"))
        status = _LEGACY_STATES.get(str(legacy).lower(), Status.COMPLETED if has_outputs else Status.CRASHED)
        if legacy is not None and str(legacy).lower() == "failed":
            status = Status.FAILED
    if status is Status.FAILED:
        return status, f"MLMD execution {execution.id} ended {execution.state}"
    if status is Status.CRASHED:
        return status, f"MLMD execution {execution.id} was {execution.state} when imported: it never finished"
    return status, None


def split_properties(execution: MlmdExecution) -> tuple[dict[str, JSON], dict[str, JSON]]:
    """An execution's (custom) properties as ``(parameters, bookkeeping)``.

    Bookkeeping is what TFX, KFP or ZenML recorded about the execution itself
    (:data:`BOOKKEEPING`, ``zenml-*`` and ``__*__`` keys). ZenML stored parameters as JSON
    text: on a ZenML execution, string values are decoded when they are valid JSON.
    """
    zenml = any(k.startswith("zenml-") for k in execution.custom_properties)
    parameters: dict[str, JSON] = {}
    bookkeeping: dict[str, JSON] = {}
    for key, value in {**execution.custom_properties, **execution.properties}.items():
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

"""Look-ups every part of the MLMD store shares: nodes by pipeledger id, by filter, in batches."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ml_metadata.proto import metadata_store_pb2 as mlmd
from ml_metadata.proto import metadata_store_service_pb2 as service

from pipeledger.exceptions import NotFoundError
from pipeledger.metadata_store.mlmd.connection import MlmdConnection
from pipeledger.metadata_store.mlmd.types import PIPELINE_TYPE, RUN_TYPE, STEP_TYPE, TypeIds

_BATCH = 100
_BY_EXTERNAL_ID = {
    "contexts": ("GetContextsByExternalIds", service.GetContextsByExternalIdsRequest),
    "executions": ("GetExecutionsByExternalIds", service.GetExecutionsByExternalIdsRequest),
    "artifacts": ("GetArtifactsByExternalIds", service.GetArtifactsByExternalIdsRequest),
}


def _batches(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _BATCH):
        yield items[start : start + _BATCH]


class MlmdCore:
    """The connection, the type ids and batched reads of contexts, executions and artifacts."""

    conn: MlmdConnection
    types: TypeIds

    # ----------------------------------------------------------- by pipeledger id

    def _by_external_id(self, field: str, ids: Sequence[str], type_id: int | None = None) -> dict[str, Any]:
        """Nodes of ``field`` (contexts, executions, artifacts) by pipeledger id, in batches; missing
        ids are absent (MLMD answers NOT_FOUND when none of a batch exists)."""
        method, request_class = _BY_EXTERNAL_ID[field]
        found: dict[str, Any] = {}
        for chunk in _batches(list(dict.fromkeys(ids))):
            try:
                nodes = getattr(self.conn.call(method, request_class(external_ids=chunk)), field)
            except NotFoundError:
                continue
            found.update((n.external_id, n) for n in nodes if type_id is None or n.type_id == type_id)
        return found

    def contexts_by_external_id(self, ids: Sequence[str]) -> dict[str, Any]:
        """Contexts (runs, pipelines) by pipeledger id; missing ids are absent."""
        return self._by_external_id("contexts", ids)

    def executions_by_external_id(self, ids: Sequence[str]) -> dict[str, Any]:
        """Step-run executions by pipeledger id; missing ids are absent."""
        return self._by_external_id("executions", ids, self.types.step)

    def artifacts_by_external_id(self, ids: Sequence[str]) -> dict[str, Any]:
        """Artifacts by pipeledger id; missing ids are absent."""
        return self._by_external_id("artifacts", ids, self.types.artifact)

    def context_named(self, type_name: str, name: str) -> Any | None:
        """The context of type ``type_name`` called ``name``, or None."""
        request = service.GetContextByTypeAndNameRequest(type_name=type_name, context_name=name)
        response = self.conn.call("GetContextByTypeAndName", request)
        return response.context if response.HasField("context") else None

    def pipeline_named(self, name: str) -> Any | None:
        """The context of the pipeline called ``name``, or None."""
        return self.context_named(PIPELINE_TYPE, name)

    def run_context(self, run_id: str) -> Any:
        """The context of run ``run_id``.

        Raises:
            NotFoundError: no such run.
        """
        ctx = self.contexts_by_external_id([run_id]).get(run_id)
        if ctx is None or ctx.type_id != self.types.run:
            raise NotFoundError(f"no run with id {run_id!r}")
        return ctx

    def step_execution(self, step_run_id: str) -> Any:
        """The execution of step run ``step_run_id``.

        Raises:
            NotFoundError: no such step run.
        """
        ex = self.executions_by_external_id([step_run_id]).get(step_run_id)
        if ex is None:
            raise NotFoundError(f"no step run with id {step_run_id!r}")
        return ex

    # ---------------------------------------------------------------- by MLMD id

    def artifacts_by_id(self, ids: Iterable[int]) -> dict[int, Any]:
        """Artifacts by MLMD id."""
        found: dict[int, Any] = {}
        for chunk in _batches(list(dict.fromkeys(ids))):
            response = self.conn.call("GetArtifactsByID", service.GetArtifactsByIDRequest(artifact_ids=chunk))
            found.update((a.id, a) for a in response.artifacts)
        return found

    def executions_by_id(self, ids: Iterable[int]) -> dict[int, Any]:
        """Executions by MLMD id."""
        found: dict[int, Any] = {}
        for chunk in _batches(list(dict.fromkeys(ids))):
            response = self.conn.call("GetExecutionsByID", service.GetExecutionsByIDRequest(execution_ids=chunk))
            found.update((e.id, e) for e in response.executions)
        return found

    def events_of_executions(self, ids: Iterable[int]) -> list[Any]:
        """The events of the given executions."""
        events: list[Any] = []
        for chunk in _batches(list(dict.fromkeys(ids))):
            request = service.GetEventsByExecutionIDsRequest(execution_ids=chunk)
            events.extend(self.conn.call("GetEventsByExecutionIDs", request).events)
        return events

    def events_of_artifacts(self, ids: Iterable[int]) -> list[Any]:
        """The events of the given artifacts."""
        events: list[Any] = []
        for chunk in _batches(list(dict.fromkeys(ids))):
            request = service.GetEventsByArtifactIDsRequest(artifact_ids=chunk)
            events.extend(self.conn.call("GetEventsByArtifactIDs", request).events)
        return events

    # ---------------------------------------------------------------- by filter

    def runs_where(self, query: str | None = None) -> list[Any]:
        """Run contexts matching an MLMD filter query (all pages)."""
        request = service.GetContextsByTypeRequest(type_name=RUN_TYPE, options=_options(query))
        return list(self.conn.pages("GetContextsByType", request, "contexts"))

    def steps_where(self, query: str | None = None) -> list[Any]:
        """Step executions matching an MLMD filter query (all pages)."""
        request = service.GetExecutionsByTypeRequest(type_name=STEP_TYPE, options=_options(query))
        return list(self.conn.pages("GetExecutionsByType", request, "executions"))


def _options(query: str | None) -> Any:
    """List options ordered by MLMD id (creation order), filtered by ``query``."""
    options = mlmd.ListOperationOptions()
    options.order_by_field.field = mlmd.ListOperationOptions.OrderByField.ID
    options.order_by_field.is_asc = True
    if query:
        options.filter_query = query
    return options

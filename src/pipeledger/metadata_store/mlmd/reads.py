"""Reads of the MLMD store: pipelines, runs, step runs, edges, artifacts, metadata, cache look-ups.

MLMD filters in the service (by pipeline, status, time, cache key) but orders
only by creation time or id, and pages by token, not offset. Run lists are
therefore filtered by MLMD and ordered by start time and sliced here: their cost
grows with the number of runs that match the filters.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from ml_metadata.proto import metadata_store_pb2 as mlmd
from ml_metadata.proto import metadata_store_service_pb2 as service

from pipeledger.metadata_store.mlmd import records
from pipeledger.metadata_store.mlmd.core import MlmdCore
from pipeledger.metadata_store.mlmd.types import PIPELINE_TYPE, RUN_TYPE, STEP_TYPE, step_key
from pipeledger.metadata_store.mlmd.values import micros, outside_default, quote
from pipeledger.models import (
    JSON,
    ArtifactRecord,
    CacheEntry,
    CacheHit,
    EntityKind,
    PipelineRecord,
    RunRecord,
    Status,
    StepIO,
    StepRunRecord,
)


class MlmdReads(MlmdCore):
    """The read half of the contract."""

    def _find_pipeline(self, name: str) -> PipelineRecord | None:
        found = self.pipeline_named(name)
        return None if found is None else records.pipeline_record(found)

    def list_pipelines(
        self, *, limit: int | None = None, offset: int = 0, projects: Collection[str] | None = None
    ) -> list[PipelineRecord]:
        if outside_default(projects):
            return []
        request = service.GetContextsByTypeRequest(type_name=PIPELINE_TYPE)
        found = sorted(
            (records.pipeline_record(c) for c in self.conn.pages("GetContextsByType", request, "contexts")),
            key=lambda p: p.name,
        )
        return _page(found, limit, offset)

    def _find_run(self, name_or_id: str) -> RunRecord | None:
        request = service.GetContextByTypeAndNameRequest(type_name=RUN_TYPE, context_name=name_or_id)
        response = self.conn.call("GetContextByTypeAndName", request)
        if response.HasField("context"):
            return records.run_record(response.context)
        ctx = self.contexts_by_external_id([name_or_id]).get(name_or_id)
        if ctx is not None and ctx.type_id == self.types.run:
            return records.run_record(ctx)
        return None

    def _runs(self, pipeline: str | None, status: Status | str | None, since: datetime | None) -> list[Any]:
        filters = []
        if pipeline is not None:  # by the pipeline's id: names are free text, ids hex
            found = self.pipeline_named(pipeline)
            if found is None:
                return []
            filters.append(f"properties.pipeline_id.string_value = {quote(found.external_id)}")
        if status is not None:
            filters.append(f"properties.status.string_value = {quote(Status(status).value)}")
        if since is not None:
            filters.append(f"properties.start_time.int_value >= {micros(since)}")
        return self.runs_where(" AND ".join(filters) or None)

    def _sorted_runs(
        self,
        pipeline: str | None,
        status: Status | str | None,
        since: datetime | None,
        limit: int | None,
        offset: int,
        newest_first: bool,
    ) -> list[RunRecord]:
        runs = [records.run_record(c) for c in self._runs(pipeline, status, since)]
        runs.sort(key=lambda r: (r.start_time, r.id), reverse=newest_first)
        return _page(runs, limit, offset)

    def list_runs(
        self,
        *,
        pipeline: str | None = None,
        status: Status | str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = True,
        projects: Collection[str] | None = None,
    ) -> list[RunRecord]:
        if outside_default(projects):
            return []
        return self._sorted_runs(pipeline, status, since, limit, offset, newest_first)

    def list_run_names(
        self,
        *,
        pipeline: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = True,
        projects: Collection[str] | None = None,
    ) -> list[str]:
        if outside_default(projects):
            return []
        return [r.name for r in self._sorted_runs(pipeline, None, None, limit, offset, newest_first)]

    def count_runs(
        self,
        *,
        pipeline: str | None = None,
        status: Status | str | None = None,
        projects: Collection[str] | None = None,
    ) -> int:
        if outside_default(projects):
            return 0
        return len(self._runs(pipeline, status, None))

    def list_step_runs(self, run_id: str) -> list[StepRunRecord]:
        steps = [records.step_record(e) for e in self.steps_where(f"properties.run_id.string_value = {quote(run_id)}")]
        return sorted(steps, key=lambda s: (s.start_time, s.id))

    def get_step_run(self, step_run_id: str) -> StepRunRecord:
        return records.step_record(self.step_execution(step_run_id))

    def list_step_io(self, step_run_ids: Sequence[str]) -> list[StepIO]:
        executions = self.executions_by_external_id(step_run_ids)
        by_id = {ex.id: ex.external_id for ex in executions.values()}
        events = self.events_of_executions(by_id)
        artifacts = self.artifacts_by_id(ev.artifact_id for ev in events)
        edges: list[StepIO] = []
        for ev in events:
            direction = records.event_direction(ev)
            node = artifacts.get(ev.artifact_id)
            if direction is None or node is None or node.type_id != self.types.artifact:
                continue
            edges.extend(
                records.step_io(by_id[ev.execution_id], name, direction, node) for name in records.event_names(ev)
            )
        return edges

    def find_cached_step(
        self, cache_key: str, *, not_before: datetime | None = None, projects: Collection[str] | None = None
    ) -> CacheHit | None:
        if outside_default(projects):
            return None
        query = (
            f"properties.cache_key.string_value = {quote(cache_key)} AND "
            "properties.cache_state.string_value = 'valid' AND properties.status.string_value = 'completed'"
        )
        if not_before is not None:
            query += f" AND properties.end_time.int_value >= {micros(not_before)}"
        entries = self.steps_where(query)
        if not entries:
            return None
        latest = max(entries, key=lambda e: (e.properties["end_time"].int_value, e.id))
        step = records.step_record(latest)
        outputs = {
            edge.name: edge.artifact for edge in self.list_step_io([step.id]) if edge.direction.value == "output"
        }
        run = self.contexts_by_external_id([step.run_id]).get(step.run_id)
        return records.cache_hit(step, outputs, run)

    def list_cache_entries(
        self,
        *,
        pipeline: str | None = None,
        step: str | None = None,
        invalidated: bool | None = None,
        limit: int | None = None,
        projects: Collection[str] | None = None,
    ) -> list[CacheEntry]:
        if outside_default(projects):
            return []
        states = ["valid", "invalidated"] if invalidated is None else ["invalidated" if invalidated else "valid"]
        query = "properties.status.string_value = 'completed' AND properties.cache_state.string_value IN ("
        query += ", ".join(quote(s) for s in states) + ")"
        if step is not None:
            query += f" AND properties.step_key.string_value = '{step_key(step)}'"
        if pipeline is not None:
            found = self.pipeline_named(pipeline)
            if found is None:
                return []
            query += f" AND contexts_a.id = {found.id}"
        steps = [records.step_record(e) for e in self.steps_where(query)]
        steps = [s for s in steps if s.cache_key and s.end_time is not None]
        steps.sort(key=lambda s: (s.end_time, s.id), reverse=True)
        steps = _page(steps, limit, 0)
        runs = {
            k: records.run_record(c)
            for k, c in self.contexts_by_external_id(list({s.run_id for s in steps})).items()
            if c.type_id == self.types.run
        }
        return [records.cache_entry(s, runs.get(s.run_id)) for s in steps]

    def latest_step_run(
        self, pipeline: str, step: str, *, before: datetime, projects: Collection[str] | None = None
    ) -> StepRunRecord | None:
        if outside_default(projects):
            return None
        found = self.pipeline_named(pipeline)
        if found is None:
            return None
        request = service.GetExecutionsByTypeRequest(type_name=STEP_TYPE)
        request.options.filter_query = (
            f"properties.step_key.string_value = '{step_key(step)}' AND contexts_a.id = {found.id}"
            f" AND properties.start_time.int_value < {micros(before)}"
            f" AND properties.status.string_value != '{Status.SKIPPED.value}'"
        )
        # The newest page by creation (a step's runs are created in the order they start) is enough.
        request.options.order_by_field.field = mlmd.ListOperationOptions.OrderByField.ID
        request.options.order_by_field.is_asc = False
        request.options.max_result_size = 20
        steps = [records.step_record(e) for e in self.conn.call("GetExecutionsByType", request).executions]
        return max(steps, key=lambda s: (s.start_time, s.id)) if steps else None

    def _find_artifact(self, artifact_id: str) -> ArtifactRecord | None:
        node = self.artifacts_by_external_id([artifact_id]).get(artifact_id)
        return None if node is None else records.artifact_record(node)

    def get_metadata(self, kind: EntityKind, entity_ids: Sequence[str]) -> dict[str, dict[str, JSON]]:
        kind = EntityKind(kind)
        if kind is EntityKind.RUN:
            nodes = {k: c for k, c in self.contexts_by_external_id(entity_ids).items() if c.type_id == self.types.run}
        elif kind is EntityKind.STEP_RUN:
            nodes = self.executions_by_external_id(entity_ids)
        else:
            nodes = self.artifacts_by_external_id(entity_ids)
        return {k: records.metadata_of(n) for k, n in nodes.items() if n.custom_properties}


def _page(items: list[Any], limit: int | None, offset: int) -> list[Any]:
    return items[offset : None if limit is None else offset + limit]

"""The metadata store on an ML Metadata gRPC service: writes, and the class that joins the parts.

Each contract write is one MLMD call, and so one MLMD transaction, where the
contract asks for atomicity: a step starts, finishes or is recorded as a cache hit
with a single ``PutExecution`` (the execution, its new artifacts, their events and
the attributions to the run's contexts); a run starts with one ``PutContexts``.
Updates of a few fields use MLMD's update masks, so concurrent writers of other
fields (the heartbeat thread, say) are never overwritten.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from ml_metadata.proto import metadata_store_pb2 as mlmd
from ml_metadata.proto import metadata_store_service_pb2 as service

from pipeledger.exceptions import (
    CacheEntryGoneError,
    MetadataStoreError,
    NotFoundError,
    RunExistsError,
    StepRunExistsError,
    UnsupportedOperationError,
)
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.metadata_store.mlmd import records
from pipeledger.metadata_store.mlmd.connection import AlreadyExistsError, MlmdConnection
from pipeledger.metadata_store.mlmd.history import MlmdHistory
from pipeledger.metadata_store.mlmd.maintenance import MlmdMaintenance
from pipeledger.metadata_store.mlmd.reads import MlmdReads
from pipeledger.metadata_store.mlmd.types import KFP_RUN_TYPE, RUN_TYPE, register_types, step_key
from pipeledger.metadata_store.mlmd.values import json_value, outside_default, quote, string, time_value
from pipeledger.models import (
    DEFAULT_PROJECT,
    JSON,
    ArtifactCreate,
    ArtifactRecord,
    Direction,
    EntityKind,
    RunCreate,
    RunRecord,
    Status,
    StepRunCreate,
    StepRunRecord,
    new_id,
    utcnow,
)

_REUSE_CONTEXTS = service.PutExecutionRequest.Options(force_reuse_context=True)


class MlmdMetadataStore(MlmdReads, MlmdHistory, MlmdMaintenance, MetadataStore):
    """A :class:`MetadataStore` on ML Metadata's ``MetadataStoreService``.

    Opening registers (or extends) pipeledger's types on the server, which also
    checks that it answers.

    ``finish_step`` rewrites the whole execution (MLMD's ``PutExecution`` has no
    update mask, and the execution must be written in the same call as its output
    artifacts): a ``put_metadata`` on the same *running* step run from another
    process at that moment could be lost. Within one process the two are serialized.

    Args:
        connection: the gRPC connection.
        flavor: the flavor's name, for descriptions.
        describe: non-secret facts for :meth:`describe`.
    """

    def __init__(
        self, connection: MlmdConnection, *, flavor: str = "kubeflow", describe: Mapping[str, Any] | None = None
    ) -> None:
        self.conn = connection
        self.flavor = flavor
        self._describe = dict(describe or {})
        self.types = register_types(connection.call)
        self._run_links: dict[str, list[int]] = {}  # run id -> MLMD ids of its run and pipeline contexts
        self._run_dags: dict[str, int | None] = {}  # run id -> MLMD id of its root DAG (see kfp_view)
        self._step_writes = threading.Lock()

    def close(self) -> None:
        self.conn.close()

    def describe(self) -> dict[str, Any]:
        return {"flavor": self.flavor, "service": self.conn.where, **self._describe}

    def __repr__(self) -> str:
        return f"<MlmdMetadataStore {self.conn.where}>"

    # ------------------------------------------------------------------- runs

    def create_run(self, run: RunCreate) -> RunRecord:
        if run.project != DEFAULT_PROJECT:
            raise UnsupportedOperationError(
                f"the {self.flavor} metadata store keeps every pipeline in project {DEFAULT_PROJECT!r}, "
                f"not {run.project!r}: record runs of other projects in a SQL store or through a server"
            )
        existing = self.contexts_by_external_id([run.id]).get(run.id)
        if existing is not None:  # a retried call whose first attempt was recorded
            record = records.run_record(existing)
            if existing.type_id == self.types.run and record.pipeline_name == run.pipeline_name:
                return record
            raise MetadataStoreError(f"cannot create run {run.name!r}: its id {run.id!r} is taken")
        templated = "{n}" in run.name
        if not templated:
            self._refuse_taken_name(run.name)
        pipeline = self._pipeline_context(run.pipeline_name, run.pipeline_docstring)
        kfp_pipeline = self._kfp_pipeline_context(run.pipeline_name)
        number = self._next_number(pipeline.external_id)
        for _attempt in range(50):
            name = run.name.replace("{n}", str(number))
            ctx = records.run_context(self.types, run, name=name, number=number, pipeline_id=pipeline.external_id)
            claim = mlmd.Context(type_id=self.types.run_number, name=f"{pipeline.external_id}/{number}")
            kfp_run = records.kfp_run_context(self.types, run.id, name)
            request = service.PutContextsRequest(contexts=[claim, ctx, kfp_run])
            try:  # one call, one transaction: the run, its number and its KFP view, or none
                ids = self.conn.call("PutContexts", request).context_ids
            except AlreadyExistsError:
                if not templated:
                    self._refuse_taken_name(name)
                number += 1  # the number (or the templated name) is taken: take the next number
                continue
            links = [
                mlmd.ParentContext(child_id=ids[1], parent_id=pipeline.id),
                mlmd.ParentContext(child_id=ids[2], parent_id=kfp_pipeline.id),
            ]
            self.conn.call("PutParentContexts", service.PutParentContextsRequest(parent_contexts=links))
            ctx.id = ids[1]
            self._run_links[run.id] = [ctx.id, pipeline.id, ids[2], kfp_pipeline.id]
            self._put_root_dag(run.id, name, run.parameters, [ids[2], kfp_pipeline.id])
            return records.run_record(ctx)
        raise MetadataStoreError(f"could not allocate a unique name for run {run.name!r}")

    def _refuse_taken_name(self, name: str) -> None:
        """Raise :class:`RunExistsError` if a run (pipeledger's, or a KFP run context) is named ``name``."""
        if self.context_named(RUN_TYPE, name) is not None:
            raise RunExistsError(f"a run named {name!r} already exists; choose another run_name")
        if self.context_named(KFP_RUN_TYPE, name) is not None:
            raise RunExistsError(
                f"ML Metadata already holds a Kubeflow run context named {name!r}; choose another run_name"
            )

    def _pipeline_context(self, name: str, docstring: str | None) -> Any:
        for _attempt in range(3):
            found = self.pipeline_named(name)
            if found is not None:
                return found
            ctx = records.pipeline_context(self.types, new_id(), name, docstring, utcnow())
            try:
                ctx.id = self.conn.call("PutContexts", service.PutContextsRequest(contexts=[ctx])).context_ids[0]
            except AlreadyExistsError:
                continue  # created concurrently: read it
            return ctx
        raise MetadataStoreError(f"could not create pipeline {name!r}")

    def _next_number(self, pipeline_id: str) -> int:
        """1 + the highest number among the pipeline's latest runs."""
        request = service.GetContextsByTypeRequest(type_name=RUN_TYPE)
        request.options.filter_query = f"properties.pipeline_id.string_value = {quote(pipeline_id)}"
        request.options.order_by_field.field = mlmd.ListOperationOptions.OrderByField.ID
        request.options.order_by_field.is_asc = False
        request.options.max_result_size = 100
        latest = self.conn.call("GetContextsByType", request).contexts
        return 1 + max((c.properties["number"].int_value for c in latest), default=0)

    def finish_run(self, run_id: str, status: Status, *, end_time: datetime, error: str | None = None) -> None:
        ctx = self.run_context(run_id)
        update = mlmd.Context(id=ctx.id, type_id=self.types.run)
        update.properties["status"].CopyFrom(string(Status(status).value))
        update.properties["end_time"].CopyFrom(time_value(end_time))
        if error is not None:
            update.properties["error"].CopyFrom(string(error))
        paths = ["properties.status", "properties.end_time", "properties.error"]
        self.conn.call("PutContexts", service.PutContextsRequest(contexts=[update], update_mask={"paths": paths}))
        self._set_dag_states({run_id: (ctx.name, Status(status))})

    def heartbeat(self, run_id: str, at: datetime) -> None:
        try:
            run_ctx_id = self._contexts_of_run(run_id)[0].id
        except NotFoundError:
            return  # as on SQL: a heartbeat for a run that is not recorded changes nothing
        update = mlmd.Context(id=run_ctx_id, type_id=self.types.run)
        update.properties["heartbeat_at"].CopyFrom(time_value(at))
        mask = {"paths": ["properties.heartbeat_at"]}
        self.conn.call("PutContexts", service.PutContextsRequest(contexts=[update], update_mask=mask))

    # ------------------------------------------------------------------ steps

    def _contexts_of_run(self, run_id: str) -> list[Any]:
        """The run's and its pipeline's contexts (the run's first), and their ``system.*`` views
        if the run has them (runs recorded before the KFP view have none), by MLMD id only."""
        ids = self._run_links.get(run_id)
        if ids is None:  # MLMD never deletes: once found, the link holds for the store's life
            ctx = self.run_context(run_id)
            pipeline_id = ctx.properties["pipeline_id"].string_value
            pipeline = self.contexts_by_external_id([pipeline_id]).get(pipeline_id)
            ids = [ctx.id] if pipeline is None else [ctx.id, pipeline.id]
            ids += self._kfp_contexts(run_id, ctx.name)
            self._run_links[run_id] = ids
        return [mlmd.Context(id=i) for i in ids]

    def _input_events(self, step: StepRunCreate) -> list[Any]:
        found = self.artifacts_by_external_id(list(step.inputs.values()))
        missing = [f"{n}={a!r}" for n, a in step.inputs.items() if a not in found]
        if missing:
            raise NotFoundError(
                f"cannot record step {step.name!r} of run {step.run_id!r}: "
                f"no artifact with id for input {', '.join(missing)}"
            )
        return records.events(Direction.INPUT, [(n, found[a].id) for n, a in step.inputs.items()])

    def _put_new_execution(self, step: StepRunCreate, execution: Any, events: list[Any], contexts: list[Any]) -> None:
        pairs = [service.PutExecutionRequest.ArtifactAndEvent(event=ev) for ev in events]
        request = service.PutExecutionRequest(execution=execution, artifact_event_pairs=pairs, contexts=contexts)
        request.options.CopyFrom(_REUSE_CONTEXTS)
        try:
            self.conn.call("PutExecution", request)
        except AlreadyExistsError:
            raise StepRunExistsError(
                f"cannot record step {step.name!r} of run {step.run_id!r}: the run already has a step run of "
                "this name (or the step run id is taken)"
            ) from None

    def start_step(self, step: StepRunCreate) -> StepRunRecord:
        contexts = self._contexts_of_run(step.run_id)  # NotFoundError first if the run is missing
        execution = records.step_execution(self.types, step, Status.RUNNING)
        self._put_new_execution(step, execution, self._input_events(step), contexts)
        return records.step_record(execution)

    def finish_step(
        self,
        step_run_id: str,
        status: Status,
        *,
        end_time: datetime,
        outputs: Sequence[ArtifactCreate] = (),
        metadata: Mapping[str, JSON] | None = None,
        error: str | None = None,
        logs_uri: str | None = None,
        error_message: str | None = None,
    ) -> list[ArtifactRecord]:
        names = [a.name for a in outputs]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise MetadataStoreError(f"cannot finish step run {step_run_id!r}: output names given twice: {twice}")
        with self._step_writes:  # read-modify-write of the execution: see the class docstring
            return self._finish_step(step_run_id, status, end_time, outputs, metadata, error, logs_uri, error_message)

    def _finish_step(
        self,
        step_run_id: str,
        status: Status,
        end_time: datetime,
        outputs: Sequence[ArtifactCreate],
        metadata: Mapping[str, JSON] | None,
        error: str | None,
        logs_uri: str | None,
        error_message: str | None = None,
    ) -> list[ArtifactRecord]:
        execution = self.step_execution(step_run_id)
        records.set_status(execution, Status(status), end_time=end_time, error=error, error_message=error_message)
        if logs_uri is not None:
            execution.properties["logs_uri"].CopyFrom(string(logs_uri))
        elif "logs_uri" in execution.properties:
            del execution.properties["logs_uri"]
        records.set_metadata(execution, metadata or {})
        created = [a.to_record(step_run_id, end_time) for a in outputs]
        pairs = [
            service.PutExecutionRequest.ArtifactAndEvent(
                artifact=records.artifact_node(self.types, record, a.metadata),
                event=records.event(None, Direction.OUTPUT, a.name),  # MLMD fills in the new artifact's id
            )
            for a, record in zip(outputs, created)
        ]
        run_id = execution.properties["run_id"].string_value
        execution.ClearField("create_time_since_epoch")
        execution.ClearField("last_update_time_since_epoch")
        request = service.PutExecutionRequest(
            execution=execution, artifact_event_pairs=pairs, contexts=self._contexts_of_run(run_id)
        )
        request.options.CopyFrom(_REUSE_CONTEXTS)
        try:
            self.conn.call("PutExecution", request)
        except AlreadyExistsError:
            taken = sorted(self.artifacts_by_external_id([a.id for a in outputs]))
            raise MetadataStoreError(
                f"cannot finish step run {step_run_id!r}: artifact id(s) already recorded: {', '.join(taken) or '?'}"
            ) from None
        return created

    def record_cached_step(
        self, step: StepRunCreate, *, cached_from_id: str, outputs: Mapping[str, str]
    ) -> StepRunRecord:
        contexts = self._contexts_of_run(step.run_id)
        original = self.executions_by_external_id([cached_from_id]).get(cached_from_id)
        found = self.artifacts_by_external_id(list(outputs.values()))
        missing = [f"{n}={a!r}" for n, a in outputs.items() if a not in found]
        if original is None or missing:
            what = f"original step run {cached_from_id!r}" if original is None else f"output {', '.join(missing)}"
            raise CacheEntryGoneError(f"cannot record cached step {step.name!r}: its {what} no longer exists")
        execution = records.step_execution(
            self.types, step, Status.CACHED, cached_from_id=cached_from_id, end_time=step.start_time
        )
        records.set_metadata(execution, records.metadata_of(original))
        events = self._input_events(step) + records.events(
            Direction.OUTPUT, [(n, found[a].id) for n, a in outputs.items()]
        )
        self._put_new_execution(step, execution, events, contexts)
        return records.step_record(execution)

    def invalidate_cache(
        self,
        *,
        at: datetime,
        pipeline: str | None = None,
        step: str | None = None,
        projects: Collection[str] | None = None,
    ) -> int:
        if outside_default(projects):
            return 0
        query = "properties.cache_state.string_value = 'valid'"
        if step is not None:
            query += f" AND properties.step_key.string_value = '{step_key(step)}'"
        if pipeline is not None:
            found = self.pipeline_named(pipeline)
            if found is None:
                return 0
            query += f" AND contexts_a.id = {found.id}"
        entries = self.steps_where(query)
        updates = []
        for ex in entries:
            update = mlmd.Execution(id=ex.id, type_id=ex.type_id)
            update.properties["cache_state"].CopyFrom(string("invalidated"))
            update.properties["cache_invalidated_at"].CopyFrom(time_value(at))
            updates.append(update)
        if updates:
            mask = {"paths": ["properties.cache_state", "properties.cache_invalidated_at"]}
            self.conn.call("PutExecutions", service.PutExecutionsRequest(executions=updates, update_mask=mask))
        return len(updates)

    # -------------------------------------------------------------- artifacts

    def register_artifact(self, artifact: ArtifactCreate, *, at: datetime) -> ArtifactRecord:
        record = artifact.to_record(None, at)
        node = records.artifact_node(self.types, record, artifact.metadata)
        try:
            self.conn.call("PutArtifacts", service.PutArtifactsRequest(artifacts=[node]))
        except AlreadyExistsError:
            raise MetadataStoreError(f"an artifact with id {artifact.id!r} is already recorded") from None
        return record

    def _change_tags(self, kind: EntityKind, entity_id: str, add: Sequence[str], remove: Sequence[str]) -> None:
        """Runs only: their ``tags`` property, read and written back (the last of two concurrent
        changes wins). Step runs and artifacts have no tags on ML Metadata."""
        if kind is not EntityKind.RUN:
            raise UnsupportedOperationError(
                f"the {self.flavor} metadata store keeps tags of runs only, not of {kind.value}s"
            )
        ctx = self.run_context(entity_id)
        current = records.run_record(ctx).tags
        tags = sorted({*current, *add} - set(remove))
        update = mlmd.Context(id=ctx.id, type_id=ctx.type_id)
        update.properties["tags"].CopyFrom(json_value(tags))
        mask = {"paths": ["properties.tags"]}
        self.conn.call("PutContexts", service.PutContextsRequest(contexts=[update], update_mask=mask))

    def put_metadata(self, kind: EntityKind, entity_id: str, values: Mapping[str, JSON]) -> None:
        if not values:
            return
        mask = {"paths": [f"custom_properties.{key}" for key in values]}
        kind = EntityKind(kind)
        if kind is EntityKind.RUN:
            ctx = self.run_context(entity_id)
            node = mlmd.Context(id=ctx.id, type_id=ctx.type_id)
            records.set_metadata(node, values)
            self.conn.call("PutContexts", service.PutContextsRequest(contexts=[node], update_mask=mask))
        elif kind is EntityKind.STEP_RUN:
            with self._step_writes:
                ex = self.step_execution(entity_id)
                node = mlmd.Execution(id=ex.id, type_id=ex.type_id)
                records.set_metadata(node, values)
                self.conn.call("PutExecutions", service.PutExecutionsRequest(executions=[node], update_mask=mask))
        else:
            found = self.artifacts_by_external_id([entity_id]).get(entity_id)
            if found is None:
                raise NotFoundError(f"no artifact with id {entity_id!r}")
            node = mlmd.Artifact(id=found.id, type_id=found.type_id)
            records.set_metadata(node, values)
            self.conn.call("PutArtifacts", service.PutArtifactsRequest(artifacts=[node], update_mask=mask))

"""Maintenance on MLMD: crash marking, integrity checks, artifact scans. ML Metadata has no
delete API, so :meth:`delete_run` (and with it ``gc``) is not available on this store."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from datetime import datetime

from ml_metadata.proto import metadata_store_pb2 as mlmd
from ml_metadata.proto import metadata_store_service_pb2 as service

from pipeledger.exceptions import UnsupportedOperationError
from pipeledger.metadata_store.mlmd import records
from pipeledger.metadata_store.mlmd.kfp_view import MlmdKfpView
from pipeledger.metadata_store.mlmd.types import ARTIFACT_TYPE, STATES
from pipeledger.metadata_store.mlmd.values import micros, outside_default, quote, string, time_value
from pipeledger.models import ArtifactRecord, RunDeletion, Status


class MlmdMaintenance(MlmdKfpView):
    """Crash detection, integrity checks and scans; deletion is refused."""

    def mark_crashed(self, *, heartbeat_before: datetime, at: datetime) -> list[str]:
        before = micros(heartbeat_before)
        stale = self.runs_where(
            f"properties.status.string_value = 'running' AND properties.heartbeat_at.int_value < {before}"
        )
        if not stale:
            return []
        # Steps first, then runs: if this stops half-way, the runs are still found stale next time.
        run_ids = [ctx.external_id for ctx in stale]
        steps = []
        for start in range(0, len(run_ids), 20):
            ids = " OR ".join(f"properties.run_id.string_value = {quote(i)}" for i in run_ids[start : start + 20])
            steps += self.steps_where(f"properties.status.string_value = 'running' AND ({ids})")
        if steps:
            updates = []
            for ex in steps:
                update = mlmd.Execution(id=ex.id, type_id=ex.type_id, last_known_state=STATES[Status.CRASHED])
                update.properties["status"].CopyFrom(string(Status.CRASHED.value))
                update.properties["end_time"].CopyFrom(time_value(at))
                update.properties["error"].CopyFrom(string("the run crashed while this step ran"))
                updates.append(update)
            paths = ["properties.status", "properties.end_time", "properties.error", "last_known_state"]
            self.conn.call(
                "PutExecutions", service.PutExecutionsRequest(executions=updates, update_mask={"paths": paths})
            )
        runs = []
        for ctx in stale:
            update = mlmd.Context(id=ctx.id, type_id=ctx.type_id)
            update.properties["status"].CopyFrom(string(Status.CRASHED.value))
            update.properties["end_time"].CopyFrom(time_value(at))
            update.properties["error"].CopyFrom(string("the process stopped sending heartbeats"))
            runs.append(update)
        paths = ["properties.status", "properties.end_time", "properties.error"]
        self.conn.call("PutContexts", service.PutContextsRequest(contexts=runs, update_mask={"paths": paths}))
        self._set_dag_states({ctx.external_id: (ctx.name, Status.CRASHED) for ctx in stale})
        return run_ids

    def delete_run(self, run_id: str) -> RunDeletion:
        self.run_context(run_id)  # NotFoundError for an unknown run, as on every store
        raise UnsupportedOperationError(
            "the kubeflow metadata store cannot delete runs: ML Metadata has no delete API "
            "(records stay until the MLMD database itself is pruned)"
        )

    def recorded_artifact_ids(self, ids: Sequence[str]) -> set[str]:
        return set(self.artifacts_by_external_id(ids))

    def iter_artifacts(
        self, *, batch: int = 500, projects: Collection[str] | None = None
    ) -> Iterator[list[ArtifactRecord]]:
        if outside_default(projects):
            return
        request = service.GetArtifactsByTypeRequest(type_name=ARTIFACT_TYPE)
        request.options.order_by_field.field = mlmd.ListOperationOptions.OrderByField.ID
        request.options.order_by_field.is_asc = True
        chunk: list[ArtifactRecord] = []
        for node in self.conn.pages("GetArtifactsByType", request, "artifacts"):
            chunk.append(records.artifact_record(node))
            if len(chunk) >= batch:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def integrity_problems(self, *, heartbeat_before: datetime | None = None) -> list[str]:
        runs = {ctx.external_id: records.run_record(ctx) for ctx in self.runs_where()}
        steps = {ex.external_id: records.step_record(ex) for ex in self.steps_where()}
        counts = {
            "step runs whose run is missing": sum(s.run_id not in runs for s in steps.values()),
            "cached step runs whose original step run is missing": sum(
                s.cached_from_id is not None and s.cached_from_id not in steps for s in steps.values()
            ),
            "finished runs with steps still running": sum(
                s.status == Status.RUNNING and s.run_id in runs and runs[s.run_id].status != Status.RUNNING
                for s in steps.values()
            ),
        }
        producers = [a.producer_step_run_id for batch in self.iter_artifacts() for a in batch if a.producer_step_run_id]
        counts["artifacts whose producer step run is missing"] = sum(p not in steps for p in producers)
        if heartbeat_before is not None:
            counts["running runs without a recent heartbeat (crashed, not yet marked)"] = sum(
                r.status == Status.RUNNING and r.heartbeat_at is not None and r.heartbeat_at < heartbeat_before
                for r in runs.values()
            )
        return [f"{count} {label}" for label, count in counts.items() if count]

"""The store contract over HTTP: every method is one call to the pipeledger server.

Arguments and results are encoded by :mod:`pipeledger.metadata_store.rest.protocol` from the
contract's signatures; this class only names each method's call and, for writes that insert
records with client-made ids, how a retry finds what a first attempt recorded (see
:mod:`pipeledger.metadata_store.rest.transport`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from pipeledger.exceptions import NotFoundError
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.metadata_store.rest.protocol import contract_methods
from pipeledger.metadata_store.rest.transport import Transport
from pipeledger.models import (
    DEFAULT_PROJECT,
    JSON,
    ArtifactCreate,
    ArtifactRecord,
    CacheEntry,
    CacheHit,
    EntityKind,
    LineageRecord,
    MetricPoint,
    PipelineRecord,
    RunCreate,
    RunDeletion,
    RunRecord,
    RunSteps,
    SearchPage,
    Status,
    StepIO,
    StepRunCreate,
    StepRunRecord,
    StoreIdentity,
)
from pipeledger.search.ast import Entity

#: The records a search of each entity returns.
_SEARCHED: dict[Entity, TypeAdapter[list[Any]]] = {
    Entity.RUN: TypeAdapter(list[RunRecord]),
    Entity.STEP: TypeAdapter(list[StepRunRecord]),
    Entity.ARTIFACT: TypeAdapter(list[ArtifactRecord]),
}


class RestMetadataStore(MetadataStore):
    """A metadata store served by ``pipeledger server`` at ``transport.url``.

    Opening it asks the server for its API version (once, without retries): a server that
    cannot be reached raises :class:`~pipeledger.exceptions.StoreUnavailableError`, one of
    another API version :class:`~pipeledger.exceptions.ApiVersionError`.
    """

    flavor = "rest"

    def __init__(self, transport: Transport, *, flavor: str = "rest", project: str = DEFAULT_PROJECT) -> None:
        self.flavor = flavor
        self.project = project
        self.transport = transport
        self._identity: StoreIdentity | None = None
        try:
            self.server = transport.info()
        except Exception:
            transport.close()
            raise

    def __repr__(self) -> str:
        return f"<RestMetadataStore {self.transport.url}>"

    def close(self) -> None:
        self.transport.close()

    def describe(self) -> dict[str, Any]:
        return {"flavor": self.flavor, "url": self.transport.url, "server": self.server.get("metadata_store", {})}

    # ----------------------------------------------------------------- calls

    def _call(self, name: str, /, *, resend: bool = True, recover: Callable[[], Any] | None = None, **args: Any) -> Any:
        method = contract_methods()[name]
        body, recovered = self.transport.call(
            f"/store/{name}", method.encode_args(args), resend=resend, recover=recover
        )
        return recovered if body == b"" and recovered is not None else method.decode_result(body)

    def _step_run_or_none(self, step_run_id: str) -> StepRunRecord | None:
        with contextlib.suppress(NotFoundError):
            found: StepRunRecord = self._call("get_step_run", step_run_id=step_run_id)
            return found
        return None

    # ---------------------------------------------------------------- writes

    def create_run(self, run: RunCreate) -> RunRecord:
        result: RunRecord = self._call("create_run", run=run, recover=lambda: self._find_run(run.id))
        return result

    def finish_run(self, run_id: str, status: Status, *, end_time: datetime, error: str | None = None) -> None:
        self._call("finish_run", run_id=run_id, status=status, end_time=end_time, error=error)

    def heartbeat(self, run_id: str, at: datetime) -> None:
        self._call("heartbeat", run_id=run_id, at=at)

    def start_step(self, step: StepRunCreate) -> StepRunRecord:
        result: StepRunRecord = self._call("start_step", step=step, recover=lambda: self._step_run_or_none(step.id))
        return result

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
        def recover() -> list[ArtifactRecord] | None:
            found = self._step_run_or_none(step_run_id)
            if found is None or found.status is Status.RUNNING:
                return None  # not finished: the first attempt was not recorded
            return [self.get_artifact(output.id) for output in outputs]

        result: list[ArtifactRecord] = self._call(
            "finish_step",
            recover=recover,
            step_run_id=step_run_id,
            status=status,
            end_time=end_time,
            outputs=list(outputs),
            metadata=metadata,
            error=error,
            logs_uri=logs_uri,
            error_message=error_message,
        )
        return result

    def finish_and_start(
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
        next_step: StepRunCreate,
    ) -> tuple[list[ArtifactRecord], StepRunRecord]:
        def recover() -> tuple[list[ArtifactRecord], StepRunRecord] | None:
            started = self._step_run_or_none(next_step.id)
            if started is None:
                return None  # the server records both in one transaction: neither was recorded
            return [self.get_artifact(output.id) for output in outputs], started

        result: tuple[list[ArtifactRecord], StepRunRecord] = self._call(
            "finish_and_start",
            recover=recover,
            step_run_id=step_run_id,
            status=status,
            end_time=end_time,
            outputs=list(outputs),
            metadata=metadata,
            error=error,
            logs_uri=logs_uri,
            error_message=error_message,
            next_step=next_step,
        )
        return result

    def record_cached_step(
        self, step: StepRunCreate, *, cached_from_id: str, outputs: Mapping[str, str]
    ) -> StepRunRecord:
        result: StepRunRecord = self._call(
            "record_cached_step",
            recover=lambda: self._step_run_or_none(step.id),
            step=step,
            cached_from_id=cached_from_id,
            outputs=outputs,
        )
        return result

    def invalidate_cache(
        self,
        *,
        at: datetime,
        pipeline: str | None = None,
        step: str | None = None,
        projects: Collection[str] | None = None,
    ) -> int:
        result: int = self._call("invalidate_cache", at=at, pipeline=pipeline, step=step, projects=_listed(projects))
        return result

    def list_cache_entries(
        self,
        *,
        pipeline: str | None = None,
        step: str | None = None,
        invalidated: bool | None = None,
        limit: int | None = None,
        projects: Collection[str] | None = None,
    ) -> list[CacheEntry]:
        result: list[CacheEntry] = self._call(
            "list_cache_entries",
            pipeline=pipeline,
            step=step,
            invalidated=invalidated,
            limit=limit,
            projects=_listed(projects),
        )
        return result

    def register_artifact(self, artifact: ArtifactCreate, *, at: datetime) -> ArtifactRecord:
        result: ArtifactRecord = self._call(
            "register_artifact", recover=lambda: self._find_artifact(artifact.id), artifact=artifact, at=at
        )
        return result

    def put_metadata(self, kind: EntityKind, entity_id: str, values: Mapping[str, JSON]) -> None:
        self._call("put_metadata", kind=kind, entity_id=entity_id, values=values)

    def add_tags(self, kind: EntityKind, entity_id: str, tags: Sequence[str]) -> None:
        self._call("add_tags", kind=kind, entity_id=entity_id, tags=list(tags))

    def remove_tags(self, kind: EntityKind, entity_id: str, tags: Sequence[str]) -> None:
        self._call("remove_tags", kind=kind, entity_id=entity_id, tags=list(tags))

    def change_tags(
        self, kind: EntityKind, entity_id: str, *, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> None:
        self._call("change_tags", kind=kind, entity_id=entity_id, add=list(add), remove=list(remove))

    def get_tags(self, kind: EntityKind, entity_ids: Sequence[str]) -> dict[str, list[str]]:
        result: dict[str, list[str]] = self._call("get_tags", kind=kind, entity_ids=list(entity_ids))
        return result

    # ----------------------------------------------------------------- reads

    def search(
        self,
        entity: str,
        filter: str | None = None,
        *,
        order_by: Sequence[str] | str | None = None,
        limit: int | None = None,
        page_token: str | None = None,
        projects: Collection[str] | None = None,
    ) -> SearchPage:
        page: SearchPage = self._call(
            "search",
            entity=str(entity.value if isinstance(entity, Entity) else entity),
            filter=filter,
            order_by=order_by if order_by is None or isinstance(order_by, str) else list(order_by),
            limit=limit,
            page_token=page_token,
            projects=_listed(projects),
        )
        # The page's items are typed by the entity, not by the signature: decode them so.
        records = _SEARCHED[Entity(entity)].validate_python(page.items)
        return SearchPage(records, page.next_page_token)

    def get_pipeline(self, name: str, *, projects: Collection[str] | None = None) -> PipelineRecord:
        result: PipelineRecord = self._call("get_pipeline", name=name, projects=_listed(projects))
        return result

    def _find_pipeline(self, name: str) -> PipelineRecord | None:
        with contextlib.suppress(NotFoundError):
            return self.get_pipeline(name)
        return None

    def list_pipelines(
        self, *, limit: int | None = None, offset: int = 0, projects: Collection[str] | None = None
    ) -> list[PipelineRecord]:
        result: list[PipelineRecord] = self._call(
            "list_pipelines", limit=limit, offset=offset, projects=_listed(projects)
        )
        return result

    def get_run(self, name_or_id: str, *, projects: Collection[str] | None = None) -> RunRecord:
        result: RunRecord = self._call("get_run", name_or_id=name_or_id, projects=_listed(projects))
        return result

    def _find_run(self, name_or_id: str) -> RunRecord | None:
        with contextlib.suppress(NotFoundError):
            return self.get_run(name_or_id)
        return None

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
        result: list[RunRecord] = self._call(
            "list_runs",
            pipeline=pipeline,
            status=status,
            since=since,
            limit=limit,
            offset=offset,
            newest_first=newest_first,
            projects=_listed(projects),
        )
        return result

    def list_run_names(
        self,
        *,
        pipeline: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = True,
        projects: Collection[str] | None = None,
    ) -> list[str]:
        result: list[str] = self._call(
            "list_run_names",
            pipeline=pipeline,
            limit=limit,
            offset=offset,
            newest_first=newest_first,
            projects=_listed(projects),
        )
        return result

    def count_runs(
        self,
        *,
        pipeline: str | None = None,
        status: Status | str | None = None,
        projects: Collection[str] | None = None,
    ) -> int:
        result: int = self._call("count_runs", pipeline=pipeline, status=status, projects=_listed(projects))
        return result

    def list_step_runs(self, run_id: str) -> list[StepRunRecord]:
        result: list[StepRunRecord] = self._call("list_step_runs", run_id=run_id)
        return result

    def get_step_run(self, step_run_id: str) -> StepRunRecord:
        result: StepRunRecord = self._call("get_step_run", step_run_id=step_run_id)
        return result

    def list_step_io(self, step_run_ids: Sequence[str]) -> list[StepIO]:
        result: list[StepIO] = self._call("list_step_io", step_run_ids=list(step_run_ids))
        return result

    def get_run_steps(self, name_or_id: str, *, projects: Collection[str] | None = None) -> RunSteps:
        result: RunSteps = self._call("get_run_steps", name_or_id=name_or_id, projects=_listed(projects))
        return result

    def find_cached_step(
        self, cache_key: str, *, not_before: datetime | None = None, projects: Collection[str] | None = None
    ) -> CacheHit | None:
        result: CacheHit | None = self._call(
            "find_cached_step", cache_key=cache_key, not_before=not_before, projects=_listed(projects)
        )
        return result

    def latest_step_run(
        self, pipeline: str, step: str, *, before: datetime, projects: Collection[str] | None = None
    ) -> StepRunRecord | None:
        result: StepRunRecord | None = self._call(
            "latest_step_run", pipeline=pipeline, step=step, before=before, projects=_listed(projects)
        )
        return result

    def lineage(
        self,
        *,
        artifact_id: str | None = None,
        step_run_id: str | None = None,
        direction: str = "upstream",
        depth: int | None = None,
    ) -> LineageRecord:
        result: LineageRecord = self._call(
            "lineage", artifact_id=artifact_id, step_run_id=step_run_id, direction=direction, depth=depth
        )
        return result

    def _lineage(
        self, *, artifact_id: str | None, step_run_id: str | None, direction: str, depth: int | None
    ) -> LineageRecord:
        return self.lineage(artifact_id=artifact_id, step_run_id=step_run_id, direction=direction, depth=depth)

    def metric_history(
        self,
        pipeline: str,
        *,
        keys: Sequence[str] | None = None,
        limit: int | None = None,
        projects: Collection[str] | None = None,
    ) -> list[MetricPoint]:
        result: list[MetricPoint] = self._call(
            "metric_history",
            pipeline=pipeline,
            keys=None if keys is None else list(keys),
            limit=limit,
            projects=_listed(projects),
        )
        return result

    def get_artifact(self, artifact_id: str) -> ArtifactRecord:
        result: ArtifactRecord = self._call("get_artifact", artifact_id=artifact_id)
        return result

    def _find_artifact(self, artifact_id: str) -> ArtifactRecord | None:
        with contextlib.suppress(NotFoundError):
            return self.get_artifact(artifact_id)
        return None

    def get_metadata(self, kind: EntityKind, entity_ids: Sequence[str]) -> dict[str, dict[str, JSON]]:
        result: dict[str, dict[str, JSON]] = self._call("get_metadata", kind=kind, entity_ids=list(entity_ids))
        return result

    # ----------------------------------------------------------- maintenance

    def mark_crashed(self, *, heartbeat_before: datetime, at: datetime) -> list[str]:
        result: list[str] = self._call("mark_crashed", heartbeat_before=heartbeat_before, at=at)
        return result

    def delete_run(self, run_id: str) -> RunDeletion:
        # Not sent twice: a first attempt that was applied would make the second one fail, and
        # its answer (the files to remove) would be lost; those files are left for `gc`.
        result: RunDeletion = self._call("delete_run", resend=False, run_id=run_id)
        return result

    def recorded_artifact_ids(self, ids: Sequence[str]) -> set[str]:
        result: set[str] = self._call("recorded_artifact_ids", ids=list(ids))
        return result

    def iter_artifacts(
        self, *, batch: int = 500, projects: Collection[str] | None = None
    ) -> Iterator[list[ArtifactRecord]]:
        method = contract_methods()["iter_artifacts"]
        arguments = method.encode_args({"batch": batch, "projects": _listed(projects)})
        for line in self.transport.stream("/store/iter_artifacts", arguments):
            records: list[ArtifactRecord] = method.decode_result(line)
            yield records

    def integrity_problems(self, *, heartbeat_before: datetime | None = None) -> list[str]:
        result: list[str] = self._call("integrity_problems", heartbeat_before=heartbeat_before)
        return result

    def store_identity(self) -> StoreIdentity | None:
        if self._identity is None:
            self._identity = self._call("store_identity")
        return self._identity

    def step_run_statuses(self, ids: Sequence[str], *, heartbeat_before: datetime | None = None) -> dict[str, Status]:
        result: dict[str, Status] = self._call("step_run_statuses", ids=list(ids), heartbeat_before=heartbeat_before)
        return result

    def deletion_preview(self, run_id: str, *, also_deleted: Collection[str] = ()) -> RunDeletion:
        result: RunDeletion = self._call("deletion_preview", run_id=run_id, also_deleted=list(also_deleted))
        return result


def _listed(projects: Collection[str] | None) -> list[str] | None:
    """``projects`` as the wire carries it (a sorted list), or None (every project)."""
    return None if projects is None else sorted(set(projects))

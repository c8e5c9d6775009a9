"""The post-execution API's entry point."""

from __future__ import annotations

from datetime import datetime

from pipeledger.client.views import ArtifactView, PipelineView, RunView, StepView
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import RunDeletion, Status
from pipeledger.stack.registry import get_stack
from pipeledger.stack.stack import Stack


class Client:
    """Reads what a metadata store recorded.

    By default it reads the active stack's metadata store; pass ``stack=`` for
    another registered stack, or ``store=`` for a store you opened yourself::

        client = Client()
        run = client.get_pipeline("training").latest_run
        run.steps["train"].outputs["model"].read()
    """

    def __init__(self, *, stack: str | Stack | None = None, store: MetadataStore | None = None):
        self._stack: Stack | None = None
        if store is not None:
            self.store = store
        else:
            self._stack = stack if isinstance(stack, Stack) else get_stack(stack)
            self.store = self._stack.metadata_store

    def get_pipeline(self, name: str) -> PipelineView:
        """The pipeline called ``name``. Raises NotFoundError listing known pipelines."""
        return PipelineView(self.store.get_pipeline(name), self.store)

    def list_pipelines(self, *, limit: int | None = None, offset: int = 0) -> list[PipelineView]:
        """Pipelines by name, paged."""
        return [PipelineView(p, self.store) for p in self.store.list_pipelines(limit=limit, offset=offset)]

    def get_run(self, name_or_id: str) -> RunView:
        """The run with this name (or id). Raises NotFoundError naming the latest runs."""
        return RunView(self.store.get_run(name_or_id), self.store)

    def list_runs(
        self,
        *,
        pipeline: str | None = None,
        status: Status | str | None = None,
        since: datetime | None = None,
        limit: int | None = 50,
        offset: int = 0,
    ) -> list[RunView]:
        """Runs newest first, filtered and paged in the store (``limit=None`` for all)."""
        records = self.store.list_runs(pipeline=pipeline, status=status, since=since, limit=limit, offset=offset)
        return [RunView(r, self.store) for r in records]

    def get_step_run(self, step_run_id: str) -> StepView:
        """The step run with this id."""
        return StepView(self.store.get_step_run(step_run_id), self.store)

    def delete_run(self, name_or_id: str) -> RunDeletion:
        """Delete a run: its records, and the artifacts (records and files) no other run uses.

        Artifacts still used by another run (as inputs or cached outputs) are kept and
        listed in the result's ``kept_artifacts``. Files are removed only from the stack's
        artifact store, where this metadata store wrote them (a client opened with ``store=``
        removes none); the others are listed in ``kept_files``. Raises NotFoundError for an
        unknown run.
        """
        from pipeledger.maintenance import delete_run

        artifact_store = self._stack.artifact_store if self._stack is not None else None
        return delete_run(self.store, self.store.get_run(name_or_id).id, artifact_store)

    def get_artifact(self, artifact_id: str) -> ArtifactView:
        """The artifact with this id."""
        return ArtifactView(self.store.get_artifact(artifact_id), self.store)

    def __repr__(self) -> str:
        return f"<Client {self.store!r}>"

"""The post-execution API's entry point."""

from __future__ import annotations

from datetime import datetime

from pipeledger.client.views import ArtifactView, PipelineView, RunView, StepView
from pipeledger.exceptions import NotFoundError
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
        """Runs newest first, filtered and paged in the store (``limit=None`` for all).

        Filtering by ``running`` or ``crashed`` first records runs whose heartbeat is stale as
        crashed (as ``run list`` does), so the filter agrees with the status each run shows.
        """
        if status in (Status.RUNNING, Status.CRASHED):  # a str enum: "running" too
            from pipeledger.maintenance import mark_crashed_runs

            mark_crashed_runs(self.store)
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
        """The artifact with this id, or named ``RUN/STEP/OUTPUT``: the output ``OUTPUT`` of step
        ``STEP`` in run ``RUN`` (e.g. ``"training-3/train/model"``; a cached step's output is the
        artifact it reused). Names may hold ``/`` themselves: every way to split the reference in
        three is tried, and exactly one must name an output.

        Raises:
            NotFoundError: no such artifact, or no such run, step or output (listing those that
                exist); or the reference names several outputs.
        """
        if "/" in artifact_id:  # ids are hex digits
            return self._artifact_at(artifact_id)
        try:
            return ArtifactView(self.store.get_artifact(artifact_id), self.store)
        except NotFoundError as exc:
            raise NotFoundError(f"{exc}; give an artifact id (`pipeledger run show RUN`) or RUN/STEP/OUTPUT") from None

    def _artifact_at(self, reference: str) -> ArtifactView:
        parts = reference.split("/")
        runs: dict[str, RunView | None] = {}
        found: dict[str, ArtifactView] = {}
        for i in range(1, len(parts) - 1):
            run_name = "/".join(parts[:i])
            if run_name not in runs:
                try:
                    runs[run_name] = self.get_run(run_name)
                except NotFoundError:
                    runs[run_name] = None
            run = runs[run_name]
            if run is None:
                continue
            for j in range(i + 1, len(parts)):
                step, output = "/".join(parts[i:j]), "/".join(parts[j:])
                if step in run.steps and output in run.steps[step].outputs:
                    found[f"{run_name!r}, step {step!r}, output {output!r}"] = run.steps[step].outputs[output]
        if len(found) == 1:
            return next(iter(found.values()))
        if found:
            raise NotFoundError(f"{reference!r} is ambiguous: it names run {'; run '.join(found)}; use an artifact id")
        if len(parts) < 3 or not all(parts):
            raise NotFoundError(
                f"{reference!r}: give an artifact id or RUN/STEP/OUTPUT (see `pipeledger run show RUN`)"
            )
        # No match: the plainest reading (names without "/") raises the error naming what is missing.
        run = runs.get(parts[0]) or self.get_run(parts[0])
        return run.steps["/".join(parts[1:-1])].outputs[parts[-1]]

    def __repr__(self) -> str:
        return f"<Client {self.store!r}>"

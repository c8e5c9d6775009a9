"""The post-execution API's entry point."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pipeledger.client.search import SearchResults
from pipeledger.client.views import ArtifactView, PipelineView, RunView, StepView
from pipeledger.exceptions import NotFoundError, UnsupportedOperationError
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import RunDeletion, Status
from pipeledger.stack.registry import get_stack
from pipeledger.stack.stack import Stack

MAX_PAGE = 1000


def quote(text: str) -> str:
    """``text`` as a filter string literal."""
    return "'" + text.replace("'", "''") + "'"


def list_filter(pipeline: str | None, status: Status | str | None, since: datetime | None) -> str | None:
    """The search filter of :meth:`Client.list_runs`'s arguments (None for no condition)."""
    parts = []
    if pipeline is not None:
        parts.append(f"pipeline = {quote(pipeline)}")
    if status is not None:
        parts.append(f"status = {quote(Status(status).value)}")
    if since is not None:
        parts.append(f"started >= {quote(since.isoformat())}")
    return " and ".join(parts) or None


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
        if offset:
            records = self.store.list_runs(pipeline=pipeline, status=status, since=since, limit=limit, offset=offset)
            return [RunView(r, self.store) for r in records]
        try:
            return self._list_by_search(list_filter(pipeline, status, since), limit)
        except UnsupportedOperationError:  # a store without search
            records = self.store.list_runs(pipeline=pipeline, status=status, since=since, limit=limit)
            return [RunView(r, self.store) for r in records]

    def _list_by_search(self, filter: str | None, limit: int | None) -> list[RunView]:
        """Newest runs first through :meth:`search_runs` (every page while ``limit`` is None);
        stores that cannot search list through ``list_runs``."""
        found: list[RunView] = []
        token: str | None = None
        while True:
            want = MAX_PAGE if limit is None else min(MAX_PAGE, limit - len(found))
            page = self.search_runs(filter, limit=want, page_token=token)
            found.extend(page.items)
            token = page.next_page_token
            if token is None or (limit is not None and len(found) >= limit):
                return found

    def search_runs(
        self,
        filter: str | None = None,
        *,
        order_by: Sequence[str] | str | None = None,
        limit: int | None = 50,
        page_token: str | None = None,
    ) -> SearchResults[RunView]:
        """Runs matching ``filter`` (see ``docs/searching.md``), ordered by ``order_by`` (default
        newest first), one page of at most ``limit``; ``.next_page_token`` fetches the next::

            page = client.search_runs("pipeline = 'training' and metrics.accuracy > 0.9",
                                      order_by=["metrics.accuracy desc"], limit=20)
            page.to_pandas()

        Raises:
            QueryError: a malformed filter or order (the message points at it with a caret).
        """
        page = self.store.search("run", filter, order_by=order_by, limit=limit, page_token=page_token)
        return SearchResults([RunView(r, self.store) for r in page.items], page.next_page_token)

    def search_steps(
        self,
        filter: str | None = None,
        *,
        order_by: Sequence[str] | str | None = None,
        limit: int | None = 50,
        page_token: str | None = None,
    ) -> SearchResults[StepView]:
        """Step runs matching ``filter``; as :meth:`search_runs` (fields: ``step``, ``run``,
        ``cached``, ``cache_key``, ``params.X``, ``metrics.KEY``...)."""
        page = self.store.search("step", filter, order_by=order_by, limit=limit, page_token=page_token)
        return SearchResults([StepView(r, self.store) for r in page.items], page.next_page_token)

    def search_artifacts(
        self,
        filter: str | None = None,
        *,
        order_by: Sequence[str] | str | None = None,
        limit: int | None = 50,
        page_token: str | None = None,
    ) -> SearchResults[ArtifactView]:
        """Artifacts matching ``filter``; as :meth:`search_runs` (fields: ``type``, ``data_type``,
        ``size``, ``content_hash``, ``producer``, ``downstream_of(...)``...)."""
        page = self.store.search("artifact", filter, order_by=order_by, limit=limit, page_token=page_token)
        return SearchResults([ArtifactView(r, self.store) for r in page.items], page.next_page_token)

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

"""Running one step in a worker (a process, a thread or a Dask worker) and reporting back.

A :class:`StepTask` holds what a worker needs: the run's record, the step invocation, the
recipes of the stack's stores (:mod:`pipeledger.stack.recipe`; a worker opens the stores itself
and keeps them open for the next task), the cache policy and the materializers. The worker
runs it through the same :class:`~pipeledger.orchestrators.step_runner.StepRunner` as the
sequential orchestrator, which records the step in the metadata store, and returns a
:class:`StepResult`: plain, picklable data.

A task started again after its worker was lost (killed, out of memory) meets the step run
an earlier attempt recorded (``StepRunExistsError`` when it records the step). If that step
run is still ``running``, the retry runs the function again and finishes that same step run
(see :meth:`StepRunner.retry_step`), so a step has one record whatever the number of attempts;
a retried step's metadata has ``pipeledger.attempts``. If it is finished (Dask runs a finished
task again when the worker holding its result was lost), the recorded result is returned.
"""

from __future__ import annotations

import contextlib
import pickle
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from pipeledger.artifacts.materializers import MaterializerRegistry, default_registry
from pipeledger.artifacts.store import ArtifactStore
from pipeledger.caching.policy import CachePolicy
from pipeledger.exceptions import StepRunExistsError
from pipeledger.limits import storable_text
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import ArtifactRecord, Direction, RunRecord, Status, StepRunRecord, utcnow
from pipeledger.orchestrators.step_runner import StepOutcome, StepRunner
from pipeledger.pipelines.tracing import StepInvocation
from pipeledger.stack.recipe import StoreRecipes


class StepError(Exception):
    """A step's exception that could not be sent back from its worker: its type name and message."""


@dataclass
class StepTask:
    """One step to run in a worker."""

    run: RunRecord
    invocation: StepInvocation | str
    """The invocation, or its name in :data:`FORKED_INVOCATIONS` of the run (workers forked from the client)."""
    stores: StoreRecipes | None
    cache: CachePolicy
    materializers: MaterializerRegistry | None = None
    """None: the worker's :func:`~pipeledger.artifacts.materializers.default_registry` (materializers
    registered where the step's module is imported, or inherited by a forked worker)."""
    max_attempts: int = 1


@dataclass
class StepResult:
    """What a worker reports about a step: its outcome and the output it printed."""

    name: str
    status: Status
    step_run_id: str | None
    seconds: float
    outputs: dict[str, ArtifactRecord] = field(default_factory=dict)
    error: BaseException | None = None
    output: list[tuple[str, str]] = field(default_factory=list)
    """What the step wrote, as ``(stream, text)`` pieces in order, for the client to show."""
    reason: str | None = None
    """Why a ``skipped`` step was not run."""

    @property
    def outputs_usable(self) -> bool:
        """Whether downstream steps can run on this step's outputs (it completed or was cached)."""
        return self.status is Status.COMPLETED or self.status is Status.CACHED

    def outcome(self) -> StepOutcome:
        """The result as the orchestrator's :class:`StepOutcome`."""
        return StepOutcome(self.status, self.step_run_id or "", self.seconds, self.outputs, self.error)


FORKED_INVOCATIONS: dict[str, dict[str, StepInvocation]] = {}
"""The invocations of the runs being executed (by run id, then name), set before worker processes are forked from the
client: they inherit it, so steps need not be picklable (e.g. defined inside a function)."""

_OPEN: dict[str, tuple[MetadataStore, ArtifactStore]] = {}
_OPEN_LOCK = threading.Lock()


def open_stores(recipes: StoreRecipes) -> tuple[MetadataStore, ArtifactStore]:
    """The stores of ``recipes``, opened once per process and kept for later tasks."""
    key = recipes.metadata_store.key + recipes.artifact_store.key
    with _OPEN_LOCK:
        found = _OPEN.get(key)
        if found is None:
            found = (recipes.metadata_store.build(), recipes.artifact_store.build())
            _OPEN[key] = found
        return found


def close_stores() -> None:
    """Close the stores this process opened for tasks (e.g. before it exits)."""
    with _OPEN_LOCK:
        for metadata_store, _ in _OPEN.values():
            metadata_store.close()
        _OPEN.clear()


def run_step_task(
    task: StepTask,
    upstream: Mapping[str, StepResult | None],
    stores: tuple[MetadataStore, ArtifactStore] | None = None,
) -> StepResult:
    """Run ``task`` here with the outputs of its finished upstream steps; never raises for the
    step's own failure (it is in the result). ``upstream`` maps each upstream step to its result.
    ``stores`` are open stores to use (in a thread of the client); by default the task's recipes
    are opened (see :func:`open_stores`).

    If an upstream step did not complete (failed or skipped), the step is recorded ``skipped``.
    If this process is interrupted while the step runs, the step is recorded ``failed`` and
    the interrupt is re-raised.
    """
    if stores is None:
        if task.stores is None:
            raise ValueError("a step task sent to another process needs the recipes of the stores")
        stores = open_stores(task.stores)
    metadata_store, artifact_store = stores
    pieces: list[tuple[str, str]] = []
    runner = StepRunner(
        task.run,
        metadata_store,
        artifact_store,
        task.materializers or default_registry(),
        echo_output=True,
        cache=task.cache,
        output_sink=lambda stream, text: pieces.append((stream, text)),
    )
    invocation = task.invocation
    if not isinstance(invocation, StepInvocation):
        invocation = FORKED_INVOCATIONS[task.run.id][invocation]
    broken = [name for name in invocation.upstream if (r := upstream.get(name)) is None or not r.outputs_usable]
    if broken:
        reason = f"upstream step {broken[0]} failed"
        try:
            outcome = runner.record_skipped(invocation, reason)
        except StepRunExistsError:  # recorded by an earlier attempt of this task
            earlier = _earlier_attempt(metadata_store, task.run.id, invocation.name)
            if earlier is None:
                raise
            return _recorded_result(metadata_store, earlier)
        return StepResult(invocation.name, outcome.status, outcome.step_run_id, 0.0, reason=reason)
    produced = {name: r.outputs for name, r in upstream.items() if r is not None}
    try:
        try:
            outcome = runner.run_step(invocation, produced)
        except StepRunExistsError:  # an earlier attempt of this task recorded the step (see the module)
            earlier = _earlier_attempt(metadata_store, task.run.id, invocation.name)
            if earlier is None:
                raise
            if earlier.status is not Status.RUNNING:
                return _recorded_result(metadata_store, earlier)
            outcome = runner.retry_step(invocation, earlier, produced, task.max_attempts)
    except BaseException as exc:  # interrupted, or the store failed: end the step's record, re-raise
        how = "interrupted" if isinstance(exc, KeyboardInterrupt) else "stopped"
        text = storable_text(f"{how}: {type(exc).__name__}: {exc}".rstrip(": "))
        for step_run_id in sorted(runner.unfinished):
            with contextlib.suppress(Exception):  # else left to crash detection
                metadata_store.finish_step(
                    step_run_id, Status.FAILED, end_time=utcnow(), error=text, error_message=text
                )
        raise
    return StepResult(
        invocation.name,
        outcome.status,
        outcome.step_run_id,
        outcome.seconds,
        outcome.outputs,
        _sendable(outcome.error),
        pieces,
    )


def _earlier_attempt(store: MetadataStore, run_id: str, name: str) -> StepRunRecord | None:
    """The step run of this step an earlier attempt recorded, if any: ``running`` when its worker
    was lost during the step, finished when its worker was lost after it (Dask runs a task
    again when the result it held is lost with its worker, and a downstream step needs it)."""
    for record in store.list_step_runs(run_id):
        if record.name == name:
            return record
    return None


def _recorded_result(store: MetadataStore, record: StepRunRecord) -> StepResult:
    """The result of a step already recorded finished, rebuilt from the store (not run again)."""
    outputs_of = record.cached_from_id or record.id
    outputs = {
        edge.name: edge.artifact
        for edge in store.list_step_io([outputs_of])
        if edge.direction is Direction.OUTPUT and edge.step_run_id == outputs_of
    }
    seconds = (record.end_time - record.start_time).total_seconds() if record.end_time else 0.0
    error = StepError(record.failure_message or "failed") if record.status is Status.FAILED else None
    return StepResult(record.name, record.status, record.id, seconds, outputs, error)


def _sendable(error: BaseException | None) -> BaseException | None:
    """``error`` if it survives pickling (to go back to the client), else a :class:`StepError`
    with its type name and message."""
    if error is None:
        return None
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return StepError(f"{type(error).__name__}: {error}")
    return error

"""The orchestrator contract and the run lifecycle every orchestrator shares.

:meth:`Orchestrator.run` records the run, lets the flavor execute the steps
(:meth:`Orchestrator.execute`) and records how the run ended. Executing a step
and recording it is :class:`~pipeledger.orchestrators.step_runner.StepRunner`'s
job, so every orchestrator records steps the same way.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

from pipeledger.artifacts.materializers import MaterializerRegistry
from pipeledger.artifacts.store import ArtifactStore
from pipeledger.caching.policy import CachePolicy
from pipeledger.exceptions import RunFailedError
from pipeledger.limits import check_record_size, encoded_size, storable_text
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import RunCreate, RunRecord, Status, utcnow
from pipeledger.orchestrators.heartbeat import Heartbeat
from pipeledger.orchestrators.progress import ProgressReporter
from pipeledger.orchestrators.step_runner import StepOutcome, StepRunner
from pipeledger.pipelines.tracing import StepInvocation
from pipeledger.settings import heartbeat_interval
from pipeledger.stack.recipe import StoreRecipes

log = logging.getLogger(__name__)


@dataclass
class RunPlan:
    """Everything needed to execute and record one pipeline run."""

    create: RunCreate
    invocations: list[StepInvocation]
    metadata_store: MetadataStore
    artifact_store: ArtifactStore
    materializers: MaterializerRegistry
    reporter: ProgressReporter = field(default_factory=ProgressReporter)
    echo_output: bool = True
    cache: CachePolicy = field(default_factory=CachePolicy)
    stores: StoreRecipes | None = None
    """How worker processes open the same stores (None: only this process can use them)."""


@dataclass
class RunResult:
    """The finished run's record, each step's outcome, and the first failure if any."""

    run: RunRecord
    outcomes: dict[str, StepOutcome]
    failure: RunFailedError | None = None


class Orchestrator(abc.ABC):
    """Executes a traced pipeline's steps. Subclasses implement :meth:`execute`."""

    flavor: str = "custom"

    def __init__(self, name: str = "default") -> None:
        self.name = name

    def run(self, plan: RunPlan) -> RunResult:
        """Record a new run, execute its steps, and record its end.

        The run is ``completed`` when every step completed (or was cached), else
        ``failed`` (steps not run after a failure are recorded ``skipped``); the result
        carries a :class:`RunFailedError` for the first failing step (not raised here). A run
        record larger than :data:`~pipeledger.limits.MAX_RECORD_BYTES` is refused
        (``DefinitionError``) before anything is recorded. When executing raises (an interrupt, the metadata
        store failing), the steps left ``running`` and then the run are recorded ``failed``
        and the exception is re-raised; if the store cannot record that either, run and steps
        are left to crash detection, which marks them ``crashed`` once the heartbeat is stale.
        """
        create = plan.create
        check_record_size(
            f"the record of a run of pipeline {create.pipeline_name!r} (its parameters, configuration and environment)",
            encoded_size([create.parameters, create.config, create.environment, create.stack, create.tags]),
        )
        with self.prepare(plan):
            return self._record_and_execute(plan)

    def prepare(self, plan: RunPlan) -> contextlib.AbstractContextManager[None]:
        """Get ready to execute ``plan`` (e.g. connect to a cluster) and refuse what cannot work,
        before the run is recorded; the context lasts until the run is recorded finished. Raises
        (e.g. ``ConfigError``) to refuse the plan: nothing is recorded then. The default does
        nothing."""
        return contextlib.nullcontext()

    def _record_and_execute(self, plan: RunPlan) -> RunResult:
        create = plan.create
        # The run starts when it is recorded: its recorded duration and the one the progress
        # display shows are the same, end_time - start_time (loading the stack and the
        # materializers before is not part of it).
        run = plan.metadata_store.create_run(dataclasses.replace(create, start_time=utcnow()))
        reporter = plan.reporter
        reporter.run_started(run.pipeline_name, run.name, [i.name for i in plan.invocations])
        runner = StepRunner(
            run,
            plan.metadata_store,
            plan.artifact_store,
            plan.materializers,
            plan.echo_output,
            plan.cache,
            output_sink=reporter.output_sink(),
        )
        outcomes: dict[str, StepOutcome] = {}
        try:
            with Heartbeat(plan.metadata_store, run.id, heartbeat_interval()):
                outcomes = self.execute(plan, runner)
        except BaseException as exc:  # interrupted, or the store failed: record the run as failed, re-raise
            _record_interrupted(plan.metadata_store, run, runner, f"{type(exc).__name__}: {exc}")
            reporter.run_finished(run.name, "failed", (utcnow() - run.start_time).total_seconds())
            reporter.close()
            raise
        failed = [(name, o) for name, o in outcomes.items() if o.status is Status.FAILED]
        status = Status.FAILED if failed else Status.COMPLETED
        failure = None
        error_text = None
        if failed:
            step_name, outcome = failed[0]
            assert outcome.error is not None
            failure = RunFailedError(run.name, step_name, outcome.error)
            failure.__cause__ = outcome.error
            error_text = storable_text(str(failure))
        end = utcnow()
        plan.metadata_store.finish_run(run.id, status, end_time=end, error=error_text)
        reporter.run_finished(run.name, status.value, (end - run.start_time).total_seconds())
        reporter.close()
        return RunResult(plan.metadata_store.get_run(run.id), outcomes, failure)

    @abc.abstractmethod
    def execute(self, plan: RunPlan, runner: StepRunner) -> dict[str, StepOutcome]:
        """Execute the plan's steps with ``runner``; return each step's outcome.

        Steps downstream of a failed step must not run; record them with
        :meth:`StepRunner.record_skipped` (their outcome is ``skipped``).
        """

    def describe(self) -> dict[str, Any]:
        """Non-secret facts for the run's stack snapshot."""
        return {"flavor": self.flavor}


def _record_interrupted(store: MetadataStore, run: RunRecord, runner: StepRunner, error: str) -> None:
    """Record the steps still ``running`` and then the run as ``failed`` with ``error``, as far as
    the store allows: a run is never recorded finished while one of its steps is left ``running``.
    If the store fails, nothing more is attempted (the caller re-raises the original error) and the
    stopped heartbeat lets crash detection mark the run and its steps ``crashed``."""
    text = storable_text(error)
    try:
        for step_run_id in sorted(runner.unfinished):
            store.finish_step(step_run_id, Status.FAILED, end_time=utcnow(), error=text, error_message=text)
            runner.unfinished.discard(step_run_id)
        store.finish_run(run.id, Status.FAILED, end_time=utcnow(), error=text)
    except Exception as exc:
        log.warning("could not record run %s as failed (%s); it will be marked crashed", run.name, exc)

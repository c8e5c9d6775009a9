"""The orchestrator contract and the run lifecycle every orchestrator shares.

:meth:`Orchestrator.run` records the run, lets the flavor execute the steps
(:meth:`Orchestrator.execute`) and records how the run ended. Executing a step
and recording it is :class:`~pipeledger.orchestrators.step_runner.StepRunner`'s
job, so every orchestrator records steps the same way.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from pipeledger.artifacts.materializers import MaterializerRegistry
from pipeledger.artifacts.store import ArtifactStore
from pipeledger.caching.policy import CachePolicy
from pipeledger.exceptions import RunFailedError
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import RunCreate, RunRecord, Status, utcnow
from pipeledger.orchestrators.heartbeat import Heartbeat
from pipeledger.orchestrators.progress import ProgressReporter
from pipeledger.orchestrators.step_runner import StepOutcome, StepRunner
from pipeledger.pipelines.tracing import StepInvocation
from pipeledger.settings import heartbeat_interval


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
        ``failed``; the result carries a :class:`RunFailedError` for the first
        failing step (not raised here).
        """
        # The run starts when it is recorded: its recorded duration and the one the progress
        # display shows are the same, end_time - start_time (loading the stack and the
        # materializers before is not part of it).
        run = plan.metadata_store.create_run(dataclasses.replace(plan.create, start_time=utcnow()))
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
        except BaseException as exc:  # interrupted: record the run as failed, then re-raise
            end = utcnow()
            plan.metadata_store.finish_run(run.id, Status.FAILED, end_time=end, error=f"{type(exc).__name__}: {exc}")
            reporter.run_finished(run.name, "failed", (end - run.start_time).total_seconds())
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
            error_text = str(failure)
        end = utcnow()
        plan.metadata_store.finish_run(run.id, status, end_time=end, error=error_text)
        reporter.run_finished(run.name, status.value, (end - run.start_time).total_seconds())
        reporter.close()
        return RunResult(plan.metadata_store.get_run(run.id), outcomes, failure)

    @abc.abstractmethod
    def execute(self, plan: RunPlan, runner: StepRunner) -> dict[str, StepOutcome]:
        """Execute the plan's steps with ``runner``; return each executed step's outcome.

        Steps downstream of a failed step must not run.
        """

    def describe(self) -> dict[str, Any]:
        """Non-secret facts for the run's stack snapshot."""
        return {"flavor": self.flavor}

"""The ``local`` orchestrator: runs the steps in this process, or several at once in workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from pipeledger.models import ArtifactRecord, Status
from pipeledger.orchestrators.base import Orchestrator, RunPlan
from pipeledger.orchestrators.step_runner import StepOutcome, StepRunner
from pipeledger.stack.flavor import FlavorConfig, OrchestratorFlavor


class LocalOrchestratorConfig(FlavorConfig):
    """Configuration of the ``local`` orchestrator."""

    max_parallelism: int = Field(
        1, ge=1, description="How many independent steps run at once (1: one after another, in this process)."
    )
    workers: Literal["processes", "threads"] = Field(
        "processes", description="With max_parallelism > 1, run steps in worker processes or threads."
    )
    on_failure: Literal["continue", "stop", "cancel"] = Field(
        "continue",
        description=(
            "After a failed step: continue (run the steps that do not depend on it), stop (start no "
            "more steps) or cancel (stop, and kill the steps running in worker processes)."
        ),
    )

    @model_validator(mode="after")
    def _cancel_needs_processes(self) -> LocalOrchestratorConfig:
        if self.on_failure == "cancel" and (self.workers == "threads" or self.max_parallelism == 1):
            raise ValueError("on_failure=cancel needs worker processes (max_parallelism > 1, workers=processes)")
        return self


class LocalOrchestrator(Orchestrator):
    """Runs steps in topological order, in process, or up to ``max_parallelism`` at once in
    worker processes or threads (:mod:`pipeledger.orchestrators.parallel`).

    After a failure, steps that depend on the failed step (directly or not) are not
    run: they are recorded ``skipped`` (see :meth:`StepRunner.record_skipped`);
    independent steps still run, unless ``on_failure`` is ``stop`` or ``cancel``.
    """

    flavor = "local"

    def __init__(self, name: str = "default", config: LocalOrchestratorConfig | None = None) -> None:
        super().__init__(name)
        self.config = config or LocalOrchestratorConfig()

    def execute(self, plan: RunPlan, runner: StepRunner) -> dict[str, StepOutcome]:
        if self.config.max_parallelism > 1:
            from pipeledger.orchestrators.parallel import execute_in_pool

            return execute_in_pool(
                plan,
                runner,
                max_parallelism=self.config.max_parallelism,
                workers=self.config.workers,
                on_failure=self.config.on_failure,
            )
        outcomes: dict[str, StepOutcome] = {}
        produced: dict[str, dict[str, ArtifactRecord]] = {}
        blocked: dict[str, str] = {}  # step not to run -> the failed step it (indirectly) waits for
        stopped_by: str | None = None
        for invocation in plan.invocations:
            broken = [blocked[u] for u in invocation.upstream if u in blocked]
            if broken or stopped_by is not None:
                blocked[invocation.name] = broken[0] if broken else str(stopped_by)
                reason = f"upstream step {broken[0]} failed" if broken else f"step {stopped_by} failed (stop)"
                outcomes[invocation.name] = runner.record_skipped(invocation, reason)
                plan.reporter.step_skipped(invocation.name, reason)
                continue
            plan.reporter.step_started(invocation.name)
            outcome = runner.run_step(invocation, produced)
            outcomes[invocation.name] = outcome
            error = f"{type(outcome.error).__name__}: {outcome.error}" if outcome.error else None
            plan.reporter.step_finished(invocation.name, outcome.status.value, outcome.seconds, error)
            if outcome.status is Status.FAILED:
                blocked[invocation.name] = invocation.name
                if self.config.on_failure != "continue":
                    stopped_by = invocation.name
            else:
                produced[invocation.name] = outcome.outputs
        return outcomes

    def describe(self) -> dict[str, Any]:
        return {"flavor": self.flavor, **self.config.model_dump()}


class LocalOrchestratorFlavor(OrchestratorFlavor):
    """The built-in ``local`` orchestrator flavor."""

    name = "local"
    description = (
        "Runs the steps in the calling Python process, or several at once in worker processes (--max-parallelism=N)."
    )
    config_class = LocalOrchestratorConfig

    def create(self, component_name: str, config: Any, home: Path) -> LocalOrchestrator:
        return LocalOrchestrator(component_name, config)

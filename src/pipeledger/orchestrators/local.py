"""The ``local`` orchestrator: runs the steps in this process, or several at once in workers."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from pipeledger.models import ArtifactRecord, Status
from pipeledger.orchestrators.base import Orchestrator, RunPlan
from pipeledger.orchestrators.step_runner import HeldStepFailed, StepOutcome, StepRunner
from pipeledger.pipelines.tracing import StepInvocation
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
        runner.hold_finishes = True  # one step at a time: a step's end is recorded with the next start
        turn = _Turn(plan, runner, self.config.on_failure)
        try:
            for invocation in plan.invocations:
                turn.step(invocation)
        except BaseException:
            with contextlib.suppress(Exception):  # the first error is the one to see
                runner.flush()
            raise
        try:
            runner.flush()
        except HeldStepFailed as failed:
            turn.failed_late(failed)
        return turn.outcomes

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


@dataclass
class _Turn:
    """The steps of one run executed one after another, in the plan's order."""

    plan: RunPlan
    runner: StepRunner
    on_failure: str
    outcomes: dict[str, StepOutcome] = field(default_factory=dict)
    produced: dict[str, dict[str, ArtifactRecord]] = field(default_factory=dict)
    blocked: dict[str, str] = field(default_factory=dict)
    """Step not to run -> the failed step it (indirectly) waits for."""
    stopped_by: str | None = None

    def step(self, invocation: StepInvocation) -> None:
        """Run ``invocation``, or record it skipped after a failure upstream (or anywhere, with
        ``on_failure: stop``). When recording the held end of the previous step fails first,
        that step is failed after all, and this one is decided again."""
        try:
            self._step(invocation)
        except HeldStepFailed as failed:
            self.failed_late(failed)
            self._step(invocation, announced=True)

    def _step(self, invocation: StepInvocation, *, announced: bool = False) -> None:
        """Run or skip ``invocation``; ``announced``: its start was reported already (by the
        attempt that found the previous step's held end refused), so it is not reported twice."""
        plan, runner = self.plan, self.runner
        broken = [self.blocked[u] for u in invocation.upstream if u in self.blocked]
        if broken or self.stopped_by is not None:
            self.blocked[invocation.name] = broken[0] if broken else str(self.stopped_by)
            reason = f"upstream step {broken[0]} failed" if broken else f"step {self.stopped_by} failed (stop)"
            self.outcomes[invocation.name] = runner.record_skipped(invocation, reason)
            plan.reporter.step_skipped(invocation.name, reason)
            return
        if not announced:
            plan.reporter.step_started(invocation.name)
        outcome = runner.run_step(invocation, self.produced)
        self._ended(invocation.name, outcome)

    def _ended(self, name: str, outcome: StepOutcome) -> None:
        self.outcomes[name] = outcome
        error = f"{type(outcome.error).__name__}: {outcome.error}" if outcome.error else None
        self.plan.reporter.step_finished(name, outcome.status.value, outcome.seconds, error)
        if outcome.status is Status.FAILED:
            self.blocked[name] = name
            self.produced.pop(name, None)
            if self.on_failure != "continue":
                self.stopped_by = name
        else:
            self.produced[name] = outcome.outputs

    def failed_late(self, failed: HeldStepFailed) -> None:
        """The step whose end was held turned out failed: its results could not be recorded."""
        done = self.outcomes[failed.step_name]
        self._ended(failed.step_name, StepOutcome(Status.FAILED, done.step_run_id, done.seconds, {}, failed.error))

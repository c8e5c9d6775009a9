"""The ``local`` orchestrator: runs the steps one after another in this process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeledger.models import ArtifactRecord, Status
from pipeledger.orchestrators.base import Orchestrator, RunPlan
from pipeledger.orchestrators.step_runner import StepOutcome, StepRunner
from pipeledger.stack.flavor import FlavorConfig, OrchestratorFlavor


class LocalOrchestrator(Orchestrator):
    """Runs steps in topological order, in process.

    After a failure, steps that depend on the failed step (directly or not) are not
    run: they are recorded ``skipped`` (see :meth:`StepRunner.record_skipped`);
    independent steps still run.
    """

    flavor = "local"

    def execute(self, plan: RunPlan, runner: StepRunner) -> dict[str, StepOutcome]:
        outcomes: dict[str, StepOutcome] = {}
        produced: dict[str, dict[str, ArtifactRecord]] = {}
        blocked: dict[str, str] = {}  # step not to run -> the failed step it (indirectly) waits for
        for invocation in plan.invocations:
            broken = [blocked[u] for u in invocation.upstream if u in blocked]
            if broken:
                blocked[invocation.name] = broken[0]
                reason = f"upstream step {broken[0]} failed"
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
            else:
                produced[invocation.name] = outcome.outputs
        return outcomes


class LocalOrchestratorFlavor(OrchestratorFlavor):
    """The built-in ``local`` orchestrator flavor (no configuration)."""

    name = "local"
    description = "Runs the steps one after another in the calling Python process."
    config_class = FlavorConfig

    def create(self, component_name: str, config: Any, home: Path) -> LocalOrchestrator:
        return LocalOrchestrator(component_name)

"""Orchestrators execute a pipeline's steps and report them to the metadata store."""

from pipeledger.orchestrators.base import Orchestrator, RunPlan, RunResult
from pipeledger.orchestrators.local import LocalOrchestrator

__all__ = ["LocalOrchestrator", "Orchestrator", "RunPlan", "RunResult"]

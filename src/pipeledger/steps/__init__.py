"""Authoring steps: the ``@step`` decorator."""

from pipeledger.steps.step import Step, step

__all__ = ["Step", "step"]

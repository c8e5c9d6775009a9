"""Authoring pipelines: the ``@pipeline`` decorator, tracing and running."""

from pipeledger.pipelines.pipeline import Pipeline, pipeline

__all__ = ["Pipeline", "pipeline"]

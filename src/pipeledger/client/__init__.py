"""The post-execution API: read pipelines, runs, steps and artifacts back."""

from pipeledger.client.client import Client
from pipeledger.client.views import ArtifactView, PipelineView, RunView, StepView

__all__ = ["ArtifactView", "Client", "PipelineView", "RunView", "StepView"]

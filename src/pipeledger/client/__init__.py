"""The post-execution API: read pipelines, runs, steps and artifacts back.

The read side: it imports the store contract, the artifact store and the record-level
modules (``lineage/``, ``comparison``), never execution code (``make lint`` checks it).
"""

from pipeledger.client.base import View
from pipeledger.client.client import Client
from pipeledger.client.views import ArtifactView, PipelineView, RunView, StepView

__all__ = ["ArtifactView", "Client", "PipelineView", "RunView", "StepView", "View"]

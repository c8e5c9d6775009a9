"""``pipeledger orchestrator ...``."""

from __future__ import annotations

from pipeledger.cli.components import component_group
from pipeledger.stack.flavor import ComponentType

orchestrator_group = component_group(ComponentType.ORCHESTRATOR, "local", "")

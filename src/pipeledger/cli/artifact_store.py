"""``pipeledger artifact-store ...``."""

from __future__ import annotations

from pipeledger.cli.components import component_group
from pipeledger.stack.flavor import ComponentType

artifact_store_group = component_group(ComponentType.ARTIFACT_STORE, "local", "--path=/data/artifacts")

"""``pipeledger metadata-store ...``."""

from __future__ import annotations

from pipeledger.cli.components import component_group
from pipeledger.stack.flavor import ComponentType

metadata_store_group = component_group(
    ComponentType.METADATA_STORE, "sqlite", "--path=/data/pipeledger/metadata.db"
)

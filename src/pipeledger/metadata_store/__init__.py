"""The metadata store: its contract (:mod:`.base`), the SQL implementation and the flavors."""

from pipeledger.metadata_store.base import MetadataStore

__all__ = ["MetadataStore"]

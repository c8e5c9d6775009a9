"""The SQL implementation of the metadata store, shared by every SQL database."""

from pipeledger.metadata_store.sql.engine import Database
from pipeledger.metadata_store.sql.store import SqlMetadataStore

__all__ = ["Database", "SqlMetadataStore"]

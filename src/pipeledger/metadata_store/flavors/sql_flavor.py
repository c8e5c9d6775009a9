"""What every SQL flavor shares: it builds a :class:`Database`; the store is the same for all."""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, SecretStr

from pipeledger.exceptions import SchemaVersionError
from pipeledger.metadata_store.sql import Database, SqlMetadataStore
from pipeledger.metadata_store.sql import migrate as migrations
from pipeledger.metadata_store.sql.schema import SCHEMA_REVISION
from pipeledger.stack.flavor import FlavorConfig, MetadataStoreFlavor


class SqlFlavor(MetadataStoreFlavor):
    """A metadata-store flavor backed by pipeledger's SQL implementation.

    Subclasses only build the :class:`Database` (URL, driver options, connection
    checks) and say whether the schema may upgrade itself on open.
    """

    #: Upgrade an older schema when the store is opened (only for private, local databases).
    auto_upgrade: ClassVar[bool] = False

    @abc.abstractmethod
    def database(self, component_name: str, config: Any, home: Path) -> Database:
        """Connect (creating the database if the flavor does) and return the Database.

        Raises:
            StoreUnavailableError: the database cannot be reached or opened.
        """

    def create(self, component_name: str, config: Any, home: Path) -> SqlMetadataStore:
        database = self.database(component_name, config, home)
        return SqlMetadataStore(
            database,
            flavor=self.name,
            auto_upgrade=self.auto_upgrade,
            migrate_command=f"pipeledger metadata-store migrate {component_name}",
        )

    def migrate(self, component_name: str, config: Any, home: Path) -> tuple[str | None, str]:
        """Upgrade the database to this pipeledger's schema revision with the Alembic migrations
        (:mod:`pipeledger.metadata_store.sql.migrate`). Returns the revisions before and after.

        Raises:
            SchemaVersionError: the database is newer than this library.
            StoreUnavailableError: the database cannot be reached.
        """
        database = self.database(component_name, config, home)
        try:
            before = migrations.current_revision(database)
            if before is not None and before not in migrations.known_revisions():
                raise SchemaVersionError(
                    f"{database.display_name} has schema revision {before}, newer than this "
                    f"pipeledger (schema revision {SCHEMA_REVISION}); upgrade pipeledger instead"
                )
            migrations.upgrade(database)
            return before, str(migrations.current_revision(database))
        finally:
            database.dispose()


class ServerConfig(FlavorConfig):
    """Connection settings shared by database-server flavors."""

    host: str = Field("127.0.0.1", description="Host name or IP address of the database server.")
    port: int = Field(..., gt=0, lt=65536, description="TCP port of the server.")
    database: str = Field(..., min_length=1, max_length=63, description="Database (schema) name.")
    username: str = Field(..., min_length=1, description="User to connect as.")
    password: SecretStr | None = Field(None, description="Password, as a reference: ${env:NAME} or ${file:/path}.")
    connect_timeout: int = Field(10, gt=0, description="Seconds to wait for a connection.")
    create_database: bool = Field(True, description="Create the database if it does not exist.")

    def password_value(self) -> str | None:
        """The resolved password (never log it)."""
        return self.password.get_secret_value() if self.password is not None else None

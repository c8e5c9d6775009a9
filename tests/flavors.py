"""Flavors defined outside the package, for the stack tests.

They are registered by import path (``tests.flavors:...``) with ``flavor register``.
The entry-point test writes its own module into a temporary distribution instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, SecretStr

from pipeledger.metadata_store.sql import Database, SqlMetadataStore
from pipeledger.stack.flavor import ArtifactStoreFlavor, FlavorConfig, MetadataStoreFlavor


class FakeMysqlConfig(FlavorConfig):
    """Looks like a MySQL store's configuration; the data actually goes to a SQLite file."""

    host: str = Field("127.0.0.1", description="Server host.")
    port: int = Field(3306, description="Server port.")
    user: str = Field("pipeledger", description="User name.")
    password: SecretStr = Field(description="Password, as a reference.")
    path: str = Field(description="The SQLite file standing in for the server's database.")


class FakeMysqlFlavor(MetadataStoreFlavor):
    """A MySQL-style flavor with a password: ``create`` receives the resolved secret."""

    name = "fakemysql"
    description = "MySQL-style test store (SQLite underneath)."
    integration = "tests"
    config_class = FakeMysqlConfig

    #: The passwords ``create`` was given, to check that the reference was resolved.
    passwords_seen: ClassVar[list[str]] = []

    def default_config(self, component_name: str, home: Path) -> dict[str, Any]:
        return {"path": str(home / f"fakemysql-{component_name}.db")}

    def create(self, component_name: str, config: FakeMysqlConfig, home: Path) -> SqlMetadataStore:
        FakeMysqlFlavor.passwords_seen.append(config.password.get_secret_value())
        database = Database(
            f"sqlite:///{config.path}",
            display_name=f"fakemysql {config.user}@{config.host}:{config.port}",
        )
        return SqlMetadataStore(database, flavor=self.name)


class NotAFlavor:
    """Something that is not a flavor."""


class IncompleteFlavor(MetadataStoreFlavor):  # type: ignore[misc]  # no create(): abstract
    name = "incomplete"


class ClashingFlavor(FakeMysqlFlavor):
    """Takes the name of the built-in flavor."""

    name = "sqlite"


class OtherArtifactFlavor(ArtifactStoreFlavor):
    """An artifact-store flavor, to register under the wrong component type."""

    name = "other"

    def create(self, component_name: str, config: Any, home: Path) -> Any:
        raise NotImplementedError


class MigratingFlavor(FakeMysqlFlavor):
    """A flavor with a schema of its own: ``migrate`` records what it was given."""

    name = "migrating"
    description = "Test store whose flavor migrates its schema itself."

    #: ``(component name, resolved password)`` of every ``migrate`` call.
    migrations_seen: ClassVar[list[tuple[str, str]]] = []

    def migrate(self, component_name: str, config: FakeMysqlConfig, home: Path) -> tuple[str | None, str]:
        MigratingFlavor.migrations_seen.append((component_name, config.password.get_secret_value()))
        return None, "custom-1"

"""A custom metadata-store flavor: metadata in any database SQLAlchemy can reach by URL.

Register it with ``pipeledger metadata-store flavor register url_store:UrlMetadataStoreFlavor``
(with this directory on ``PYTHONPATH``), or declare it in your package's
``pyproject.toml``::

    [project.entry-points."pipeledger.flavors"]
    url = "url_store:UrlMetadataStoreFlavor"
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from sqlalchemy.engine import make_url

from pipeledger.metadata_store.sql import Database, SqlMetadataStore
from pipeledger.stack.flavor import FlavorConfig, MetadataStoreFlavor


class UrlMetadataStoreConfig(FlavorConfig):
    """Where the database is: a SQLAlchemy URL without password, and the password apart."""

    url: str = Field(description="SQLAlchemy URL, e.g. sqlite:////data/meta.db (no password in it).")
    password: SecretStr | None = Field(None, description="Database password, as a reference.")


class UrlMetadataStoreFlavor(MetadataStoreFlavor):
    """Any SQLAlchemy URL, through pipeledger's SQL implementation."""

    name = "url"
    description = "Metadata in any database SQLAlchemy reaches by URL."
    integration = "example"
    config_class = UrlMetadataStoreConfig

    def create(self, component_name: str, config: UrlMetadataStoreConfig, home: Path) -> SqlMetadataStore:
        url = make_url(config.url)
        if config.password is not None:
            url = url.set(password=config.password.get_secret_value())
        database = Database(url, display_name=url.render_as_string(hide_password=True))
        return SqlMetadataStore(database, flavor=self.name)

"""Artifact-store flavors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from pipeledger.artifacts.store import ArtifactStore
from pipeledger.metadata_store.flavors.rest import RestMetadataStoreConfig as RestServerConfig
from pipeledger.permissions import Permissions
from pipeledger.redact import url_credentials
from pipeledger.stack.flavor import ArtifactStoreFlavor, FlavorConfig


class LocalArtifactStoreConfig(FlavorConfig):
    """Configuration of the ``local`` artifact store."""

    path: str = Field(description="Directory (or fsspec URL) under which artifacts are stored.")
    permissions: Permissions = Field(
        "private",
        description="private: files 0600, directories 0700 (the default); group: 0660 and 2770 (a group-shared store).",
    )

    @field_validator("path")
    @classmethod
    def _no_credentials(cls, value: str) -> str:
        # The path is part of every artifact URI recorded in the metadata store and
        # exported to OpenLineage: a credential in it would be recorded everywhere.
        found = url_credentials(value)
        if found:
            raise ValueError(
                f"the path holds {found}; artifact URIs are recorded, so give the filesystem's "
                "credentials through its own configuration (environment variables or config files)"
            )
        return value


class LocalArtifactStoreFlavor(ArtifactStoreFlavor):
    """Artifacts in a directory of the local filesystem."""

    name = "local"
    description = "Artifacts in a directory on your local filesystem (any fsspec URL works too)."
    config_class = LocalArtifactStoreConfig

    def default_config(self, component_name: str, home: Path) -> dict[str, Any]:
        suffix = "" if component_name == "default" else f"-{component_name}"
        return {"path": str(home / f"artifacts{suffix}")}

    def create(self, component_name: str, config: Any, home: Path) -> ArtifactStore:
        return ArtifactStore(config.path, name=component_name, permissions=config.permissions)


class RestArtifactStoreFlavor(ArtifactStoreFlavor):
    """Artifacts in a pipeledger server's artifact store, written and read through its API."""

    name = "rest"
    description = "Artifacts kept by a pipeledger server, through its HTTP API (and URLs it signs, on S3)."

    config_class = RestServerConfig

    def create(self, component_name: str, config: Any, home: Path) -> ArtifactStore:
        # Imported when used: httpx is needed only by stacks using a server.
        from pipeledger.artifacts.server_files import ServerFileSystem
        from pipeledger.metadata_store.rest.transport import Transport

        transport = Transport(
            config.url,
            token=config.token.get_secret_value() if config.token is not None else None,
            timeout=config.timeout,
            retry_window=config.retry_window,
            verify=config.ca_cert or config.verify_tls,
        )
        filesystem = ServerFileSystem(transport)
        transport.info()  # the server answers, in our API version (fails fast, naming its URL)
        found = filesystem.server_info()
        if found.get("local", True):
            return ArtifactStore(found["root"], name=component_name, fs=filesystem, manifests=False)
        from pipeledger.artifacts.signed_files import object_filesystem

        served = object_filesystem(transport, found["uri"], signed_urls=bool(found.get("signed_urls")))
        return ArtifactStore(found["uri"], name=component_name, fs=served, manifests=True)

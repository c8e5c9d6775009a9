"""The ``rest`` flavor: metadata kept by a pipeledger server (``pipeledger server start``).

Pipelines record through the server and every reader reads through it; the server holds the
database's credentials, clients hold at most a token. Needs ``httpx`` (``pip install
'pipeledger[rest]'``), imported only when a store is opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from pipeledger.exceptions import ConfigError
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import DEFAULT_PROJECT
from pipeledger.redact import url_credentials
from pipeledger.stack.flavor import FlavorConfig, MetadataStoreFlavor

INSTALL_HINT = "pip install 'pipeledger[rest]'"


class RestMetadataStoreConfig(FlavorConfig):
    """Configuration of the ``rest`` flavor."""

    url: str = Field(description="URL of the pipeledger server, e.g. https://ledger.internal:8237.")
    token: SecretStr | None = Field(
        None, description="Token sent to the server, as a reference: ${env:PIPELEDGER_TOKEN} or ${file:/path}."
    )
    timeout: float = Field(30.0, gt=0, description="Seconds each request may take.")
    retry_window: float = Field(
        30.0, ge=0, description="Seconds during which calls are retried while the server is down or failing."
    )
    ca_cert: str | None = Field(None, description="CA certificate that signed the server's (HTTPS).")
    verify_tls: bool = Field(True, description="Check the server's TLS certificate.")
    project: str = Field(
        DEFAULT_PROJECT,
        description="Project new pipelines are created in (runs of an existing pipeline go to its project).",
    )

    @field_validator("url")
    @classmethod
    def _plain_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"give the server's URL as http(s)://host:port, not {value!r}")
        found = url_credentials(value) or ("a user name" if parts.username else None)
        if found or parts.query:
            raise ValueError(
                f"the URL holds {found or 'a query'}; it is shown and recorded, so give the token "
                "with --token='${env:PIPELEDGER_TOKEN}' instead"
            )
        return value.rstrip("/")


class RestMetadataStoreFlavor(MetadataStoreFlavor):
    """Metadata kept by a pipeledger server, over HTTP."""

    name = "rest"
    description = "Metadata kept by a pipeledger server (`pipeledger server start`), over HTTP/JSON."
    config_class = RestMetadataStoreConfig

    def create(self, component_name: str, config: Any, home: Path) -> MetadataStore:
        try:
            from pipeledger.metadata_store.rest import RestMetadataStore
            from pipeledger.metadata_store.rest.transport import Transport
        except ImportError as exc:
            raise ConfigError(
                f"the rest metadata store needs httpx, which is not installed ({exc}): run `{INSTALL_HINT}`"
            ) from None
        verify: bool | str = config.ca_cert or config.verify_tls
        transport = Transport(
            config.url,
            token=config.token.get_secret_value() if config.token is not None else None,
            timeout=config.timeout,
            retry_window=config.retry_window,
            verify=verify,
        )
        return RestMetadataStore(transport, flavor=self.name, project=config.project)

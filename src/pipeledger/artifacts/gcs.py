"""The ``gcs`` artifact store flavor: artifacts in a Google Cloud Storage bucket through ``gcsfs``
(``pip install 'pipeledger[gcs]'``).

Credentials: a service account key as a secret reference
(``--service-account='${file:/path/to/key.json}'``, its JSON resolved when the store is
built and never written anywhere), else Google's application default credentials
(``gcloud auth application-default login``, a workload identity, the metadata server).
``--endpoint-url`` points at another GCS-compatible endpoint (an emulator). gcsfs retries
transient errors (429, 5xx, dropped connections) with exponential backoff; an unusable store
is one line naming the store, the bucket and the cause (:func:`explain_gcs_failure`).
Objects are written the way the ``s3`` flavor writes them: files first, manifest last.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator

from pipeledger.artifacts.store import ArtifactStore, FailureExplainer
from pipeledger.exceptions import ConfigError
from pipeledger.redact import url_credentials
from pipeledger.stack.flavor import ArtifactStoreFlavor, FlavorConfig


class GcsArtifactStoreConfig(FlavorConfig):
    """Configuration of the ``gcs`` artifact store."""

    path: str = Field(description="gs://bucket/prefix under which artifacts are stored.")
    project: str | None = Field(None, description="The Google Cloud project; default: the credentials'.")
    endpoint_url: str | None = Field(None, description="Another GCS endpoint (an emulator); default: Google's.")
    service_account: SecretStr | None = Field(
        None, description="A service account key (JSON), as a secret reference; default: application credentials."
    )
    part_size: int = Field(8, ge=1, le=512, description="MiB per chunk of resumable uploads and per block of reads.")

    @field_validator("path")
    @classmethod
    def _bucket_path(cls, value: str) -> str:
        if not value.startswith(("gs://", "gcs://")) or not value.split("://", 1)[1].split("/", 1)[0]:
            raise ValueError("give the bucket and an optional prefix as gs://bucket/prefix")
        if url_credentials(value):
            raise ValueError("the path holds a credential; give it as --service-account, a secret reference")
        return "gs://" + value.split("://", 1)[1].rstrip("/")

    @field_validator("endpoint_url")
    @classmethod
    def _plain_endpoint(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith(("http://", "https://")) or url_credentials(value)):
            raise ValueError("give the endpoint as http(s)://host[:port], without credentials")
        return value

    @property
    def bucket(self) -> str:
        """The bucket's name."""
        return self.path[len("gs://") :].split("/", 1)[0]


def explain_gcs_failure(bucket: str, endpoint: str | None) -> FailureExplainer:
    """What makes a GCS store unusable, in words, for errors of ``gcsfs``/``aiohttp``: an
    unreachable endpoint, a missing bucket, refused credentials. None for other errors."""
    where = endpoint or "Google Cloud Storage"

    def explain(exc: BaseException) -> str | None:
        import aiohttp

        if isinstance(exc, aiohttp.ClientConnectionError | TimeoutError):
            return f"cannot reach the endpoint {where} ({type(exc).__name__})"
        code = getattr(exc, "code", None)
        if isinstance(exc, PermissionError) or code in (401, 403):
            return f"access to bucket {bucket} refused (check the store's credentials)"
        if isinstance(exc, FileNotFoundError) and str(exc).rstrip("/").endswith(f"/b/{bucket}/o"):
            return f"bucket {bucket} does not exist at {where}"  # 404 on the bucket's object collection
        if isinstance(code, int) and code >= 500:
            return f"bucket {bucket} at {where} kept failing after the retries: HTTP {code}"
        if type(exc).__module__.startswith(("google.auth", "gcsfs.credentials")):
            return f"no usable Google credentials: {' '.join(str(exc).split())[:200]}"
        return None

    return explain


class GcsArtifactStoreFlavor(ArtifactStoreFlavor):
    """Artifacts in a Google Cloud Storage bucket."""

    name = "gcs"
    description = "Artifacts in a Google Cloud Storage bucket (needs pipeledger[gcs])."
    config_class = GcsArtifactStoreConfig

    def create(self, component_name: str, config: Any, home: Path) -> ArtifactStore:
        try:
            from gcsfs.core import GCSFileSystem  # the JSON API over HTTP (not the experimental gRPC layer)
        except ImportError:
            raise ConfigError(
                f"artifact store {component_name!r} (flavor gcs) needs gcsfs: pip install 'pipeledger[gcs]'"
            ) from None
        token: Any = None  # application default credentials
        if config.service_account is not None:
            try:
                token = json.loads(config.service_account.get_secret_value())
            except ValueError:
                raise ConfigError(
                    f"artifact store {component_name!r}: service_account is not a service account key (JSON)"
                ) from None
        elif config.endpoint_url:
            token = "anon"  # an emulator
        options: dict[str, Any] = {"token": token, "skip_instance_cache": True}
        options["block_size"] = config.part_size * 2**20
        if config.project:
            options["project"] = config.project
        if config.endpoint_url:
            options["endpoint_url"] = config.endpoint_url
        return ArtifactStore(
            config.path,
            name=component_name,
            fs=GCSFileSystem(**options),
            manifests=True,
            explain_failure=explain_gcs_failure(config.bucket, config.endpoint_url),
        )

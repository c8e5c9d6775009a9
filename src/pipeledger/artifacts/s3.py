"""The ``s3`` artifact store flavor: artifacts in an S3 bucket (or any S3-compatible service)
through ``s3fs`` (``pip install 'pipeledger[s3]'``).

Credentials are secret references (``--key='${env:AWS_ACCESS_KEY_ID}'
--secret='${env:AWS_SECRET_ACCESS_KEY}'``), resolved when the store is built and never
written to the configuration, a run's stack snapshot, logs or lineage events; without
them the standard AWS credential chain applies (environment, ``~/.aws``, instance roles).
Transient errors (throttling, 5xx, dropped connections) are retried by botocore with
exponential backoff and jitter (``retries`` attempts in all); an unusable store (endpoint
unreachable, bucket missing, credentials refused) is one line naming the store, the bucket
and the cause (:func:`explain_s3_failure`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator

from pipeledger.artifacts.store import ArtifactStore, FailureExplainer
from pipeledger.exceptions import ConfigError
from pipeledger.redact import url_credentials
from pipeledger.stack.flavor import ArtifactStoreFlavor, FlavorConfig


def _no_credentials(value: str | None) -> str | None:
    found = url_credentials(value) if value else None
    if found:
        raise ValueError(
            f"it holds {found}; URLs are recorded and shown, so give credentials as --key/--secret "
            "secret references or through the AWS credential chain"
        )
    return value


class S3ArtifactStoreConfig(FlavorConfig):
    """Configuration of the ``s3`` artifact store."""

    path: str = Field(description="s3://bucket/prefix under which artifacts are stored.")
    endpoint_url: str | None = Field(None, description="The S3 endpoint (MinIO, Ceph, R2...); default: AWS.")
    region: str | None = Field(None, description="The bucket's region; default: the AWS configuration's.")
    key: SecretStr | None = Field(None, description="Access key id, as a secret reference; default: the AWS chain.")
    secret: SecretStr | None = Field(None, description="Secret access key, as a secret reference.")
    token: SecretStr | None = Field(None, description="Session token of temporary credentials, as a secret reference.")
    retries: int = Field(5, ge=1, le=20, description="Attempts per request on throttling, 5xx and dropped connections.")
    part_size: int = Field(8, ge=5, le=512, description="MiB per part of multipart uploads, and per block of reads.")
    parallel_parts: int = Field(4, ge=1, le=32, description="Parts uploaded at once (memory: parts x part size).")
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to wait for a connection to the endpoint.")
    read_timeout: float = Field(60.0, gt=0, description="Seconds to wait for data from the endpoint.")

    @field_validator("path")
    @classmethod
    def _bucket_path(cls, value: str) -> str:
        if not value.startswith("s3://") or not value[len("s3://") :].split("/", 1)[0]:
            raise ValueError("give the bucket and an optional prefix as s3://bucket/prefix")
        _no_credentials(value)
        return value.rstrip("/")

    @field_validator("endpoint_url")
    @classmethod
    def _plain_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("give the endpoint as http(s)://host[:port]")
        return _no_credentials(value)

    @model_validator(mode="after")
    def _key_with_secret(self) -> S3ArtifactStoreConfig:
        if (self.key is None) != (self.secret is None):
            raise ValueError("give --key and --secret together (or neither, for the AWS credential chain)")
        return self

    @property
    def bucket(self) -> str:
        """The bucket's name."""
        return self.path[len("s3://") :].split("/", 1)[0]


def explain_s3_failure(bucket: str, endpoint: str | None) -> FailureExplainer:
    """What makes an S3 store unusable, in words, for errors of ``s3fs``/``botocore``: an
    unreachable endpoint, a missing bucket, refused or missing credentials, a service that kept
    failing after the retries. None for other errors (a missing object is not one)."""
    where = endpoint or "AWS S3"

    def explain(exc: BaseException) -> str | None:
        from botocore import exceptions as boto

        cause = exc.__cause__ if isinstance(exc, OSError) and exc.__cause__ is not None else exc
        if isinstance(cause, boto.NoCredentialsError | boto.PartialCredentialsError):
            return "no AWS credentials found: give --key and --secret (secret references) or configure the AWS chain"
        if isinstance(cause, boto.EndpointConnectionError | boto.ConnectTimeoutError | boto.ConnectionClosedError):
            return f"cannot reach the endpoint {where} ({type(cause).__name__})"
        if isinstance(cause, boto.ReadTimeoutError):
            return f"the endpoint {where} did not answer in time (ReadTimeoutError)"
        if isinstance(exc, PermissionError):
            return f"access to bucket {bucket} refused: {_line(exc)} (check the store's credentials)"
        if isinstance(exc, FileNotFoundError) and "bucket" in str(exc).lower():
            return f"bucket {bucket} does not exist at {where}"
        if isinstance(cause, boto.ClientError):
            error = cause.response.get("Error", {})
            status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            code = str(error.get("Code", ""))
            if code in ("NoSuchBucket",):
                return f"bucket {bucket} does not exist at {where}"
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken", "403"):
                return f"access to bucket {bucket} refused: {code} (check the store's credentials)"
            if status >= 500 or code in ("SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded"):
                return f"bucket {bucket} at {where} kept failing after the retries: {code or status}"
        if isinstance(cause, boto.BotoCoreError):
            return f"{type(cause).__name__}: {_line(cause)}"
        return None

    return explain


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class S3ArtifactStoreFlavor(ArtifactStoreFlavor):
    """Artifacts in an S3 bucket, or on any S3-compatible service (``--endpoint-url``)."""

    name = "s3"
    description = "Artifacts in an S3 bucket or an S3-compatible service (needs pipeledger[s3])."
    config_class = S3ArtifactStoreConfig

    def create(self, component_name: str, config: Any, home: Path) -> ArtifactStore:
        try:
            import s3fs
        except ImportError:
            raise ConfigError(
                f"artifact store {component_name!r} (flavor s3) needs s3fs: pip install 'pipeledger[s3]'"
            ) from None
        options: dict[str, Any] = {
            "config_kwargs": {
                "retries": {"max_attempts": config.retries, "mode": "standard"},
                "connect_timeout": config.connect_timeout,
                "read_timeout": config.read_timeout,
                # SigV4 everywhere, signed URLs included (a server's, see pipeledger.server.object_files):
                # botocore would presign with the legacy SigV2, which newer regions refuse.
                "signature_version": "s3v4",
            },
            "skip_instance_cache": True,
            "default_block_size": config.part_size * 2**20,  # reads: one block in memory at a time
        }
        if config.endpoint_url:
            options["endpoint_url"] = config.endpoint_url
        if config.region:
            options["client_kwargs"] = {"region_name": config.region}
        if config.key is not None:
            options["key"] = config.key.get_secret_value()
            options["secret"] = config.secret.get_secret_value()
        if config.token is not None:
            options["token"] = config.token.get_secret_value()
        fs = s3fs.S3FileSystem(**options)
        return ArtifactStore(
            config.path,
            name=component_name,
            fs=fs,
            manifests=True,
            explain_failure=explain_s3_failure(config.bucket, config.endpoint_url),
            # Files above two parts go up in parts, at most parallel_parts of them in memory.
            upload_options={"chunksize": config.part_size * 2**20, "max_concurrency": config.parallel_parts},
        )

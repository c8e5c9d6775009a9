"""The artifact store contract suite of :mod:`pipeledger.testing`, run on every built-in flavor:
``local`` (a directory), ``s3`` (moto's S3 server on 127.0.0.1, :mod:`tests.s3`) and ``gcs``
(gcp-storage-emulator on 127.0.0.1, :mod:`tests.gcs`).

Tests of how a flavor reaches its service (errors, retries, credentials) are in
``tests/test_s3_store.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeledger.artifacts.flavors import LocalArtifactStoreConfig, LocalArtifactStoreFlavor, RestArtifactStoreFlavor
from pipeledger.artifacts.gcs import GcsArtifactStoreConfig, GcsArtifactStoreFlavor
from pipeledger.artifacts.s3 import S3ArtifactStoreFlavor
from pipeledger.artifacts.store import ArtifactStore
from pipeledger.stack.manager import resolve_config
from pipeledger.testing import ArtifactStoreContract
from tests.gcs import GcsEmulator
from tests.s3 import KEY_VARIABLE, SECRET_VARIABLE, TEST_KEY, TEST_SECRET, MotoS3
from tests.servers import rest_enabled


class TestLocalArtifactStore(ArtifactStoreContract):
    @pytest.fixture
    def artifact_store(self, tmp_path: Path) -> Iterator[ArtifactStore]:
        config = LocalArtifactStoreConfig(path=str(tmp_path / "artifacts"))
        yield LocalArtifactStoreFlavor().create("contract", config, tmp_path)


class TestS3ArtifactStore(ArtifactStoreContract):
    @pytest.fixture
    def artifact_store(
        self, tmp_path: Path, s3_server: MotoS3, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[ArtifactStore]:
        monkeypatch.setenv(KEY_VARIABLE, TEST_KEY)
        monkeypatch.setenv(SECRET_VARIABLE, TEST_SECRET)
        values = {
            "path": f"s3://{s3_bucket}/contract",
            "endpoint_url": s3_server.endpoint,
            "key": f"${{env:{KEY_VARIABLE}}}",
            "secret": f"${{env:{SECRET_VARIABLE}}}",
        }
        flavor = S3ArtifactStoreFlavor()
        yield flavor.create("contract", resolve_config(flavor, "contract", values, tmp_path), tmp_path)


class TestGcsArtifactStore(ArtifactStoreContract):
    @pytest.fixture
    def artifact_store(self, tmp_path: Path, gcs_server: GcsEmulator) -> Iterator[ArtifactStore]:
        config = GcsArtifactStoreConfig(
            path=f"gs://{gcs_server.new_bucket()}/contract", endpoint_url=gcs_server.endpoint
        )
        yield GcsArtifactStoreFlavor().create("contract", config, tmp_path)


@pytest.mark.skipif(not rest_enabled(), reason="rest is not among PIPELEDGER_TEST_BACKENDS")
class TestRestArtifactStore(ArtifactStoreContract):
    """The ``rest`` flavor: the artifact store of a real ``pipeledger server`` process, through its
    API (tests/rest_server.py), each test in a directory of its own under the server's store."""

    @pytest.fixture
    def artifact_store(self, tmp_path: Path, rest_servers: object) -> Iterator[ArtifactStore]:
        server = rest_servers.get("sqlite")  # type: ignore[attr-defined]
        flavor = RestArtifactStoreFlavor()
        config = resolve_config(flavor, "contract", {"url": server.url}, tmp_path)
        served = flavor.create("contract", config, tmp_path)
        yield served

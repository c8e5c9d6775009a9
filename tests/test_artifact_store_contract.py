"""The artifact store contract suite of :mod:`pipeledger.testing`, run on every built-in flavor:
``local`` (a directory) and ``s3`` (moto's S3 server on 127.0.0.1, :mod:`tests.s3`).

Tests of how a flavor reaches its service (errors, retries, credentials) are in
``tests/test_s3_store.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeledger.artifacts.flavors import LocalArtifactStoreConfig, LocalArtifactStoreFlavor
from pipeledger.artifacts.store import ArtifactStore
from pipeledger.testing import ArtifactStoreContract


class TestLocalArtifactStore(ArtifactStoreContract):
    @pytest.fixture
    def artifact_store(self, tmp_path: Path) -> Iterator[ArtifactStore]:
        config = LocalArtifactStoreConfig(path=str(tmp_path / "artifacts"))
        yield LocalArtifactStoreFlavor().create("contract", config, tmp_path)

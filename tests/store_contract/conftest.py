"""The store contract suite runs every test on SQLite, MariaDB/MySQL, PostgreSQL and ML Metadata.

Tests marked ``sql_only`` check the SQL implementation itself and are skipped on
the kubeflow (MLMD) store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeledger.metadata_store.base import MetadataStore
from tests.servers import contract_backends, open_empty_store


@pytest.fixture(params=contract_backends())
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetadataStore]:
    """An empty metadata store on each backend."""
    if request.param == "kubeflow" and request.node.get_closest_marker("sql_only"):
        pytest.skip("checks the SQL implementation itself; the kubeflow store is ML Metadata")
    opened = open_empty_store(request.param, tmp_path, request)
    yield opened
    opened.close()

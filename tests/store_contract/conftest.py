"""The store contract suite runs every test on SQLite, MariaDB/MySQL, PostgreSQL and ML Metadata.

Add a backend by extending :func:`_open_store`; every test in this directory
then runs on it. Tests marked ``sql_only`` check the SQL implementation itself
(its schema, its statements) and are skipped on the kubeflow (MLMD) store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from pipeledger.metadata_store.base import MetadataStore
from pipeledger.metadata_store.flavors.sqlite import SqliteMetadataStoreConfig, open_sqlite_store
from pipeledger.metadata_store.sql import SqlMetadataStore
from pipeledger.metadata_store.sql.schema import metadata
from tests.servers import contract_backends, open_server_store

BACKENDS = contract_backends()


def _open_store(backend: str, tmp_path: Path, urls: dict[str, URL], request: pytest.FixtureRequest) -> MetadataStore:
    if backend == "kubeflow":
        from pipeledger.metadata_store.mlmd import MlmdMetadataStore
        from pipeledger.metadata_store.mlmd.connection import MlmdConnection

        service = request.getfixturevalue("mlmd_service")
        service.reset(tmp_path / "mlmd.db")
        return MlmdMetadataStore(MlmdConnection("127.0.0.1", service.port))
    if backend == "sqlite":
        return open_sqlite_store(SqliteMetadataStoreConfig(path=str(tmp_path / "contract.db")))
    return open_server_store(backend, urls[backend], tmp_path)


def _empty_tables(store: MetadataStore) -> None:
    assert isinstance(store, SqlMetadataStore)
    with store.db.transaction() as conn:
        conn.execute(text("UPDATE step_runs SET cached_from_id = NULL"))  # self-reference first
        for table in reversed(metadata.sorted_tables):
            conn.execute(text(f"DELETE FROM {table.name}"))


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path, server_urls: dict[str, URL]) -> Iterator[MetadataStore]:
    """An empty metadata store on each backend."""
    if request.param == "kubeflow" and request.node.get_closest_marker("sql_only"):
        pytest.skip("checks the SQL implementation itself; the kubeflow store is ML Metadata")
    opened = _open_store(request.param, tmp_path, server_urls, request)
    if request.param in ("mysql", "postgresql"):
        _empty_tables(opened)
    yield opened
    opened.close()

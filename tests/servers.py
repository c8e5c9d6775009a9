"""The database servers tests run against: MariaDB/MySQL and PostgreSQL on this machine.

Each test session creates its own database on each server (``pl_test_<random>``)
and drops it at the end. Set ``PIPELEDGER_TEST_MYSQL_URL`` /
``PIPELEDGER_TEST_POSTGRES_URL`` to point elsewhere; set
``PIPELEDGER_TEST_BACKENDS=sqlite`` to test SQLite only (CI always tests all; ``kubeflow``
names the kubeflow flavor on the ML Metadata test service of :mod:`tests.mlmd_service`).
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from pipeledger.metadata_store.base import MetadataStore
from pipeledger.metadata_store.flavors.sqlite import SqliteMetadataStoreConfig, open_sqlite_store
from pipeledger.metadata_store.sql import SqlMetadataStore
from pipeledger.metadata_store.sql.schema import metadata

MYSQL_URL = os.environ.get("PIPELEDGER_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
POSTGRES_URL = os.environ.get("PIPELEDGER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


_SQL_BACKENDS = ("sqlite", "mysql", "postgresql")


def _configured() -> list[str]:
    configured = os.environ.get("PIPELEDGER_TEST_BACKENDS", "sqlite,mysql,postgresql,kubeflow")
    return [b.strip() for b in configured.split(",") if b.strip()]


def enabled_backends() -> list[str]:
    """The SQL backends to test: sqlite, mysql, postgresql (or those of ``$PIPELEDGER_TEST_BACKENDS``)."""
    return [b for b in _configured() if b in _SQL_BACKENDS]


def mlmd_enabled() -> bool:
    """Whether to test the kubeflow flavor on the ML Metadata test service: ``kubeflow`` is among
    ``$PIPELEDGER_TEST_BACKENDS`` (it is by default) and ``ml-metadata`` exists for this Python
    (<= 3.11). There it must be installed (``make`` installs it): a missing one fails the tests
    instead of skipping them."""
    return "kubeflow" in _configured() and sys.version_info < (3, 12)


def contract_backends() -> list[str]:
    """Every backend the store contract suite runs on."""
    return enabled_backends() + (["kubeflow"] if mlmd_enabled() else [])


@contextmanager
def scratch_database(backend: str) -> Iterator[URL]:
    """Create a fresh database on the server of ``backend``; drop it afterwards."""
    admin_url = make_url(MYSQL_URL if backend == "mysql" else POSTGRES_URL)
    name = f"pl_test_{secrets.token_hex(4)}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if backend == "mysql":
            conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
        else:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name)
    finally:
        with engine.connect() as conn:
            if backend == "postgresql":
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :n AND pid <> pg_backend_pid()"
                    ),
                    {"n": name},
                )
            conn.execute(text(f"DROP DATABASE {name}"))
        engine.dispose()


def server_config(backend: str, url: URL) -> dict[str, object]:
    """The flavor configuration (as CLI-style strings) reaching ``url``; the password, if any,
    comes from the environment variable ``PIPELEDGER_TEST_DB_PASSWORD``."""
    values: dict[str, object] = {
        "host": url.host or "127.0.0.1",
        "port": str(url.port or (3306 if backend == "mysql" else 5432)),
        "database": url.database,
        "username": url.username,
    }
    if url.password:
        values["password"] = "${env:PIPELEDGER_TEST_DB_PASSWORD}"
    return values


def open_server_store(backend: str, url: URL, home: Path) -> MetadataStore:
    """Open the store at ``url`` through the real ``mysql``/``postgresql`` flavor."""
    from pipeledger.stack.flavor import ComponentType
    from pipeledger.stack.flavor_registry import FlavorRegistry
    from pipeledger.stack.manager import resolve_config

    if url.password:
        os.environ["PIPELEDGER_TEST_DB_PASSWORD"] = url.password
    flavor = FlavorRegistry().get(ComponentType.METADATA_STORE, backend)
    config = resolve_config(flavor, "test", server_config(backend, url), home)
    return flavor.create("test", config, home)


def open_empty_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> MetadataStore:
    """An empty metadata store on ``backend`` (a file under ``tmp_path``, the session's scratch
    database of a server emptied first, or a fresh database of the ML Metadata test service)."""
    if backend == "kubeflow":
        from pipeledger.metadata_store.mlmd import MlmdMetadataStore
        from pipeledger.metadata_store.mlmd.connection import MlmdConnection

        service = request.getfixturevalue("mlmd_service")
        service.reset(tmp_path / "mlmd.db")
        return MlmdMetadataStore(MlmdConnection("127.0.0.1", service.port))
    if backend == "sqlite":
        return open_sqlite_store(SqliteMetadataStoreConfig(path=str(tmp_path / "contract.db")))
    urls: dict[str, URL] = request.getfixturevalue("server_urls")
    opened = open_server_store(backend, urls[backend], tmp_path)
    _empty_tables(opened)
    return opened


def _empty_tables(store: MetadataStore) -> None:
    assert isinstance(store, SqlMetadataStore)
    with store.db.transaction() as conn:
        conn.execute(text("UPDATE step_runs SET cached_from_id = NULL"))  # self-reference first
        for table in reversed(metadata.sorted_tables):
            conn.execute(text(f"DELETE FROM {table.name}"))

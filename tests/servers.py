"""The database servers tests run against: MariaDB/MySQL and PostgreSQL on this machine.

Each test session creates its own database on each server (``pl_test_<random>``)
and drops it at the end. Set ``PIPELEDGER_TEST_MYSQL_URL`` /
``PIPELEDGER_TEST_POSTGRES_URL`` to point elsewhere; set
``PIPELEDGER_TEST_BACKENDS=sqlite`` to test SQLite only (``kubeflow`` names the kubeflow
flavor on the ML Metadata test service of :mod:`tests.mlmd_service`; ``rest`` the ``rest`` flavor
talking to a real ``pipeledger server`` process, :mod:`tests.rest_server`, in front of SQLite and,
when ``postgresql`` is named too, PostgreSQL).

Strict mode: when ``PIPELEDGER_TEST_BACKENDS`` is set, every backend it names must run. A
server that cannot be reached, or ``ml-metadata`` missing (no wheel for this Python), fails
the tests that need it instead of skipping them, and an unknown name is a usage error; CI
(``.ci/run``) names all five, so it can never pass with fewer tests. Unset, the defaults
are the five backends, and kubeflow is skipped where ``ml-metadata`` has no wheel.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from pipeledger.metadata_store.base import MetadataStore
from pipeledger.metadata_store.flavors.sqlite import SqliteMetadataStoreConfig, open_sqlite_store
from pipeledger.metadata_store.sql import SqlMetadataStore
from pipeledger.metadata_store.sql.schema import metadata

MYSQL_URL = os.environ.get("PIPELEDGER_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
POSTGRES_URL = os.environ.get("PIPELEDGER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


SQL_BACKENDS = ("sqlite", "mysql", "postgresql")
BACKENDS = (*SQL_BACKENDS, "kubeflow", "rest")
_VARIABLE = "PIPELEDGER_TEST_BACKENDS"
_URL_VARIABLES = {"mysql": "PIPELEDGER_TEST_MYSQL_URL", "postgresql": "PIPELEDGER_TEST_POSTGRES_URL"}


def _configured() -> list[str]:
    configured = os.environ.get(_VARIABLE, ",".join(BACKENDS))
    return [b.strip() for b in configured.split(",") if b.strip()]


def strict() -> bool:
    """Whether ``$PIPELEDGER_TEST_BACKENDS`` is set: then every backend it names must run."""
    return _VARIABLE in os.environ


def check_backends_variable() -> None:
    """Refuse a ``$PIPELEDGER_TEST_BACKENDS`` naming no backend or an unknown one (a typo such as
    ``postgres`` would otherwise drop that backend's tests silently)."""
    configured = _configured()
    unknown = [b for b in configured if b not in BACKENDS]
    if unknown or not configured:
        raise pytest.UsageError(
            f"{_VARIABLE}={os.environ.get(_VARIABLE)!r}: "
            + (f"unknown backend {', '.join(map(repr, unknown))}" if unknown else "no backend named")
            + f"; use a comma-separated list of {', '.join(BACKENDS)}"
        )


def cannot_run(backend: str, reason: str, fix: str) -> NoReturn:
    """``backend`` cannot run here: fail the test in one line naming the fix (a test needing it
    must not pass or be skipped silently when it was asked for)."""
    leave_out = f"leave {backend} out of {_VARIABLE}" if strict() else f"set {_VARIABLE} without {backend}"
    pytest.fail(f"backend {backend} cannot run: {reason}. Fix: {fix}, or {leave_out}", pytrace=False)


def skip_without_mlmd_wheel() -> None:
    """At the top of a test module that needs ``ml-metadata``: skip it where that has no wheel
    (Python >= 3.12), unless ``kubeflow`` is named in ``$PIPELEDGER_TEST_BACKENDS`` (then fail)."""
    if sys.version_info < (3, 12):
        return  # there ml-metadata must be installed (make does): a missing one fails the import
    reason = "ml-metadata 1.17.1 has wheels for Python <= 3.11 only"
    if strict() and "kubeflow" in _configured():
        cannot_run("kubeflow", reason, "use Python <= 3.11")
    pytest.skip(reason, allow_module_level=True)


def enabled_backends() -> list[str]:
    """The SQL backends to test: sqlite, mysql, postgresql (or those of ``$PIPELEDGER_TEST_BACKENDS``)."""
    return [b for b in _configured() if b in SQL_BACKENDS]


def mlmd_enabled() -> bool:
    """Whether to test the kubeflow flavor on the ML Metadata test service: ``kubeflow`` is among
    ``$PIPELEDGER_TEST_BACKENDS`` (it is by default) and, unless it is named there explicitly
    (strict mode), ``ml-metadata`` exists for this Python (<= 3.11). Where it exists it must be
    installed (``make`` installs it): a missing one fails the tests instead of skipping them."""
    return "kubeflow" in _configured() and (strict() or sys.version_info < (3, 12))


def rest_enabled() -> bool:
    """Whether to test the ``rest`` flavor against a real server process (it is by default)."""
    return "rest" in _configured()


def rest_backends() -> list[str]:
    """The databases behind the server the ``rest`` flavor is tested on: SQLite, and PostgreSQL
    when it is tested too (``rest-sqlite``, ``rest-postgresql``)."""
    if not rest_enabled():
        return []
    return [f"rest-{b}" for b in ("sqlite", "postgresql") if b == "sqlite" or b in enabled_backends()]


def contract_backends() -> list[str]:
    """Every backend the store contract suite runs on."""
    return enabled_backends() + (["kubeflow"] if mlmd_enabled() else []) + rest_backends()


@contextmanager
def scratch_database(backend: str) -> Iterator[URL]:
    """Create a fresh database on the server of ``backend``; drop it afterwards."""
    admin_url = make_url(MYSQL_URL if backend == "mysql" else POSTGRES_URL)
    name = f"pl_test_{secrets.token_hex(4)}"
    try:
        engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        conn = engine.connect()
    except Exception as error:  # the server is down or unreachable, or its driver is missing
        problem = f"{type(error).__name__}: {str(error).splitlines()[0]}"
    else:
        problem = ""
    if problem:  # outside the except block: one line, no chained traceback
        where = admin_url.render_as_string(hide_password=True)
        cannot_run(backend, f"cannot connect to {where} ({problem})", f"start it or set {_URL_VARIABLES[backend]}")
    with conn:
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
        service = request.getfixturevalue("mlmd_service")  # first: it fails clearly without ml-metadata
        from pipeledger.metadata_store.mlmd import MlmdMetadataStore
        from pipeledger.metadata_store.mlmd.connection import MlmdConnection

        service.reset(tmp_path / "mlmd.db")
        return MlmdMetadataStore(MlmdConnection("127.0.0.1", service.port))
    if backend == "sqlite":
        return open_sqlite_store(SqliteMetadataStoreConfig(path=str(tmp_path / "contract.db")))
    if backend.startswith("rest-"):
        server = request.getfixturevalue("rest_servers").get(backend.removeprefix("rest-"))
        server.empty()
        return server.client()
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

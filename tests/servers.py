"""The database servers tests run against: MariaDB/MySQL and PostgreSQL on this machine.

Each test session creates its own database on each server (``pl_test_<random>``)
and drops it at the end. Set ``PIPELEDGER_TEST_MYSQL_URL`` /
``PIPELEDGER_TEST_POSTGRES_URL`` to point elsewhere; set
``PIPELEDGER_TEST_BACKENDS=sqlite`` to test SQLite only (CI always tests all).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

MYSQL_URL = os.environ.get("PIPELEDGER_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
POSTGRES_URL = os.environ.get(
    "PIPELEDGER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def enabled_backends() -> list[str]:
    """The backends to test: sqlite, mysql, postgresql (or ``$PIPELEDGER_TEST_BACKENDS``)."""
    configured = os.environ.get("PIPELEDGER_TEST_BACKENDS", "sqlite,mysql,postgresql")
    return [b.strip() for b in configured.split(",") if b.strip()]


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

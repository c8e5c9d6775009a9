"""Another application's database is refused, with one line, and left exactly as it was.

pipeledger creates its schema only in an empty database or a new SQLite file: pointed at a
database that holds other tables (and none of pipeledger's), it must not add its tables, switch
a SQLite file to WAL journaling, or change a byte.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect, text

from pipeledger import Client, StoreUnavailableError
from pipeledger.cli.main import cli
from tests import pipelines as P
from tests.servers import enabled_backends, scratch_database, server_config

SERVERS = [b for b in enabled_backends() if b != "sqlite"]


def one_error_line(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_foreign_sqlite(path: Path, *, alembic_revision: str | None = None) -> None:
    """An application's SQLite database (rollback journal), optionally managed by its own Alembic."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers (name) VALUES ('Ada'), ('Grace')")
    if alembic_revision:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.execute("INSERT INTO alembic_version VALUES (?)", (alembic_revision,))
    conn.commit()
    conn.close()


@pytest.mark.parametrize("revision", [None, "4f2a9c1b7e3d"], ids=["plain", "own-alembic"])
def test_a_foreign_sqlite_file_is_refused_and_left_unchanged(home: Path, revision: str | None) -> None:
    db = home / "metadata.db"
    make_foreign_sqlite(db, alembic_revision=revision)
    before = digest(db)

    with pytest.raises(StoreUnavailableError) as caught:
        P.training()
    message = str(caught.value)
    assert message == (
        f"sqlite:///{db} is not a pipeledger metadata store: it holds other tables (customers); "
        "refusing to change it: point the metadata store at a new file or an empty database"
    )
    assert str(db) in one_error_line("run", "list")
    assert "not a pipeledger metadata store" in one_error_line("metadata-store", "migrate")

    assert digest(db) == before  # not a byte changed: no tables added, not switched to WAL
    assert not Path(f"{db}-wal").exists()
    conn = sqlite3.connect(db)
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")] == (
        ["alembic_version", "customers"] if revision else ["customers"]
    )
    conn.close()


def test_an_empty_sqlite_file_becomes_a_store(home: Path) -> None:
    home.mkdir(parents=True)
    (home / "metadata.db").touch()
    assert P.training().status == "completed"
    assert Client().list_runs()[0].name == "training-1"


@pytest.mark.parametrize("backend", SERVERS)
def test_a_server_database_of_another_application_is_refused(home: Path, backend: str) -> None:
    with scratch_database(backend) as url:
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE customers (id INTEGER PRIMARY KEY, name VARCHAR(50))"))
            conn.execute(text("INSERT INTO customers VALUES (1, 'Ada')"))
        try:
            options = [f"--{k}={v}" for k, v in server_config(backend, url).items()]
            for args in (
                ["metadata-store", "register", "app", f"--flavor={backend}", *options],
                ["stack", "register", "app", "-m", "app", "--set"],
            ):
                assert CliRunner().invoke(cli, args).exit_code == 0
            with pytest.raises(StoreUnavailableError, match="is not a pipeledger metadata store: it holds other"):
                P.training()
            assert "not a pipeledger metadata store" in one_error_line("run", "list")
            assert inspect(engine).get_table_names() == ["customers"]  # nothing added
        finally:
            engine.dispose()

"""The ``sqlite`` flavor: a metadata store in a local SQLite file (the default).

The file uses WAL journaling (readers never block the writer), ``synchronous=NORMAL``
(durable at every checkpoint, fast commits), foreign keys, and a busy timeout so
concurrent writers wait instead of failing. Being local and private to one user,
it upgrades its own schema when pipeledger is upgraded.

The file is private to the user (``0600``, its directory ``0700`` if pipeledger
creates it), whatever the umask; ``permissions: group`` makes it ``0660`` for a
store shared by a Unix group (:mod:`pipeledger.permissions`). SQLite creates the
``-wal`` and ``-shm`` files with the database file's mode.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

from pydantic import Field

from pipeledger.exceptions import StoreUnavailableError
from pipeledger.metadata_store.flavors.sql_flavor import SqlFlavor
from pipeledger.metadata_store.sql import Database, SqlMetadataStore
from pipeledger.metadata_store.sql.migrate import check_not_foreign
from pipeledger.permissions import Permissions, create_file, make_dirs, restrict
from pipeledger.stack.flavor import FlavorConfig


class SqliteMetadataStoreConfig(FlavorConfig):
    """Configuration of the ``sqlite`` flavor."""

    path: str = Field(description="Path of the SQLite database file (created if missing).")
    busy_timeout: float = Field(30.0, gt=0, description="Seconds a writer waits for the database lock before failing.")
    permissions: Permissions = Field(
        "private",
        description="private: the file 0600 (the default); group: 0660, new directories 2770 (a group-shared store).",
    )


def sqlite_database(config: SqliteMetadataStoreConfig) -> Database:
    """The :class:`Database` of the SQLite file described by ``config`` (parent directory created).

    The file is created (empty: SQLite's new database) with the mode of
    ``config.permissions``, so that SQLite's ``-wal`` and ``-shm`` files get it too;
    an existing file and its ``-wal``/``-shm`` (owned by the user) lose the permission
    bits the setting does not allow (:func:`pipeledger.permissions.restrict`).

    Raises:
        StoreUnavailableError: the directory cannot be created, the path is a directory,
            the file is not a SQLite database, or it is another application's database.
    """
    path = Path(config.path).expanduser()
    display = f"sqlite:///{path}"
    try:
        make_dirs(path.parent, config.permissions)
    except OSError as exc:
        raise StoreUnavailableError(f"cannot create the directory of metadata store {display}: {exc.strerror}") from exc
    if path.is_dir():
        raise StoreUnavailableError(f"metadata store {display} is a directory, not a SQLite file")
    _refuse_foreign_file(path, display)
    try:
        create_file(path, config.permissions)
    except OSError as exc:
        raise StoreUnavailableError(f"cannot create metadata store {display}: {exc.strerror}") from exc
    for suffix in ("-wal", "-shm"):
        restrict(f"{path}{suffix}", config.permissions)
    database = Database(
        f"sqlite:///{path}",
        display_name=display,
        connect_args={"timeout": config.busy_timeout, "check_same_thread": False},
    )
    database.check_connection()
    return database


def _refuse_foreign_file(path: Path, display: str) -> None:
    """Refuse, without changing a byte of it, a SQLite file that holds tables but not
    pipeledger's: another application's database (opening it as a store would switch it to WAL
    journaling and add tables). A file that is not a SQLite database at all is left to the
    connection check, which reports it."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    try:
        # A plain connection and one read: no journal-mode change, nothing written.
        with contextlib.closing(sqlite3.connect(path, timeout=30.0)) as conn:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'")
            tables = [row[0] for row in rows]
    except sqlite3.Error:
        return
    check_not_foreign(display, tables)


def open_sqlite_store(config: SqliteMetadataStoreConfig) -> SqlMetadataStore:
    """Open (creating if needed) the SQLite metadata store described by ``config``.

    Raises:
        StoreUnavailableError: see :func:`sqlite_database`.
        SchemaVersionError: the file was written by a newer pipeledger.
    """
    return SqlMetadataStore(sqlite_database(config), flavor="sqlite", auto_upgrade=True)


class SqliteMetadataStoreFlavor(SqlFlavor):
    """The built-in default: a SQLite file on the local filesystem."""

    name = "sqlite"
    description = "Metadata in a SQLite file on your local filesystem. The default; for running pipelines locally."
    config_class = SqliteMetadataStoreConfig
    auto_upgrade = True
    machine_local = True

    def default_config(self, component_name: str, home: Path) -> dict[str, Any]:
        filename = "metadata.db" if component_name == "default" else f"metadata-{component_name}.db"
        return {"path": str(home / filename)}

    def database(self, component_name: str, config: Any, home: Path) -> Database:
        return sqlite_database(config)

"""What a driver error means, read from the driver's error code (never from its message).

Each driver gives a code: sqlite3 ``sqlite_errorname`` (``SQLITE_CONSTRAINT_UNIQUE``,
``SQLITE_BUSY``...), PyMySQL the server's error number in ``args[0]``, psycopg the SQLSTATE
in ``sqlstate`` (psycopg2: ``pgcode``). Only sqlite3 before Python 3.11 gives no code; there,
and only there, the message's fixed prefix is read. :func:`kind` reduces them to the few cases the store
acts on; :class:`~pipeledger.metadata_store.sql.engine.Database` turns those into typed errors.
"""

from __future__ import annotations

import enum
import sqlite3


class ErrorKind(enum.Enum):
    """The cases of a driver error the store treats differently."""

    DUPLICATE = "duplicate"  # a unique or primary key refused a row
    MISSING_REFERENCE = "missing reference"  # a foreign key refused a row (or a delete)
    TRANSIENT = "transient"  # busy, deadlock, lock wait timeout, serialization failure: retry
    OTHER = "other"


_SQLITE = {
    "SQLITE_CONSTRAINT_UNIQUE": ErrorKind.DUPLICATE,
    "SQLITE_CONSTRAINT_PRIMARYKEY": ErrorKind.DUPLICATE,
    "SQLITE_CONSTRAINT_FOREIGNKEY": ErrorKind.MISSING_REFERENCE,
}
_SQLITE_TRANSIENT_PREFIXES = ("SQLITE_BUSY", "SQLITE_LOCKED")  # and their extended codes

_MYSQL = {
    1062: ErrorKind.DUPLICATE,  # ER_DUP_ENTRY
    1586: ErrorKind.DUPLICATE,  # ER_DUP_ENTRY_WITH_KEY_NAME
    1451: ErrorKind.MISSING_REFERENCE,  # ER_ROW_IS_REFERENCED_2 (a delete)
    1452: ErrorKind.MISSING_REFERENCE,  # ER_NO_REFERENCED_ROW_2 (an insert)
    1213: ErrorKind.TRANSIENT,  # ER_LOCK_DEADLOCK
    1205: ErrorKind.TRANSIENT,  # ER_LOCK_WAIT_TIMEOUT
}

_POSTGRESQL = {
    "23505": ErrorKind.DUPLICATE,  # unique_violation
    "23503": ErrorKind.MISSING_REFERENCE,  # foreign_key_violation
    "40001": ErrorKind.TRANSIENT,  # serialization_failure
    "40P01": ErrorKind.TRANSIENT,  # deadlock_detected
    "55P03": ErrorKind.TRANSIENT,  # lock_not_available
}


def kind(error: BaseException | None) -> ErrorKind:
    """The :class:`ErrorKind` of a driver (DBAPI) error, by its code; OTHER when it has none."""
    if error is None:
        return ErrorKind.OTHER
    sqlite_name = getattr(error, "sqlite_errorname", None)
    if isinstance(sqlite_name, str):
        if sqlite_name.startswith(_SQLITE_TRANSIENT_PREFIXES):
            return ErrorKind.TRANSIENT
        return _SQLITE.get(sqlite_name, ErrorKind.OTHER)
    if isinstance(error, sqlite3.Error):  # Python 3.10's sqlite3 gives no code: only the message
        return _sqlite_by_message(error)
    args = getattr(error, "args", ())
    if args and isinstance(args[0], int):  # PyMySQL (its errors have a ``sqlstate`` too: "23000"...)
        return _MYSQL.get(args[0], ErrorKind.OTHER)
    sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if isinstance(sqlstate, str):
        return _POSTGRESQL.get(sqlstate, ErrorKind.OTHER)
    return ErrorKind.OTHER


def _sqlite_by_message(error: sqlite3.Error) -> ErrorKind:
    """For sqlite3 before Python 3.11, whose errors carry no ``sqlite_errorname``."""
    text = str(error)
    if text.startswith(("database is locked", "database table is locked")):
        return ErrorKind.TRANSIENT
    if text.startswith(("UNIQUE constraint failed", "PRIMARY KEY constraint failed")):
        return ErrorKind.DUPLICATE
    if text.startswith("FOREIGN KEY constraint failed"):
        return ErrorKind.MISSING_REFERENCE
    return ErrorKind.OTHER

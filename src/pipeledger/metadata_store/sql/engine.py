"""Connections and transactions: the one place that talks to the database driver.

:class:`Database` wraps a SQLAlchemy engine. Every write goes through
:meth:`Database.transaction`, which begins the transaction the way the dialect
needs (``BEGIN IMMEDIATE`` on SQLite, so concurrent writers queue on the busy
timeout instead of deadlocking), commits or rolls back, retries transient
failures (busy database, deadlock, serialization failure) with jittered backoff,
and translates driver errors into pipeledger's errors with ``raise ... from``.
:meth:`Database.driver_transaction` and :meth:`Database.driver_read` do the same on
the pooled DBAPI connection, for work made only of the statements of
:mod:`~pipeledger.metadata_store.sql.fastpath` (the per-step writes and hot reads).
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import PoolProxiedConnection

from pipeledger.exceptions import MetadataStoreError, StoreUnavailableError
from pipeledger.metadata_store.sql.fastpath import AnyConnection, DriverConnection, observed

T = TypeVar("T")

_TRANSIENT_MARKERS = (
    "database is locked",  # SQLite busy
    "database table is locked",
    "deadlock",  # MySQL 1213, PostgreSQL 40P01
    "lock wait timeout",  # MySQL 1205
    "could not serialize access",  # PostgreSQL 40001
    "serialization failure",
)


def json_dumps(value: Any) -> str:
    """Serialize a JSON column value; NaN and infinities are refused (not JSON)."""
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


class Database:
    """A SQLAlchemy engine plus pipeledger's transaction discipline.

    Args:
        url: the SQLAlchemy URL (may hold a password: it is never printed).
        display_name: what error messages call this database, e.g.
            ``"sqlite:///home/me/metadata.db"`` or ``"mysql 127.0.0.1:3306/prod"``.
        connect_args: passed to the DBAPI ``connect()``.
        max_retries: how many times a transient failure is retried.
        engine_options: passed to ``create_engine`` (may replace the ``json_serializer``).
    """

    def __init__(
        self,
        url: URL | str,
        *,
        display_name: str,
        connect_args: dict[str, Any] | None = None,
        max_retries: int = 8,
        engine_options: dict[str, Any] | None = None,
    ) -> None:
        self.display_name = display_name
        self.max_retries = max_retries
        connect_args = dict(connect_args or {})
        if make_url(url).get_backend_name() == "sqlite":
            connect_args.setdefault("timeout", 30.0)  # seconds a writer waits for the lock (busy timeout)
        self.engine: Engine = create_engine(
            url,
            connect_args=connect_args,
            **{"json_serializer": json_dumps, **(engine_options or {})},
        )
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)

    # ------------------------------------------------------------------ public

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back on any error.

        Driver errors are translated (see :meth:`translate`). Use
        :meth:`run_transaction` to get automatic retries of transient failures.
        """
        try:
            with self.engine.connect() as conn:
                conn.execution_options(pipeledger_begin="IMMEDIATE")
                with conn.begin():
                    yield conn
        except (sa_exc.SQLAlchemyError, self.engine.dialect.loaded_dbapi.Error) as exc:
            raise self.translate(exc) from exc

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only connection (a deferred transaction, rolled back at the end)."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except (sa_exc.SQLAlchemyError, self.engine.dialect.loaded_dbapi.Error) as exc:
            raise self.translate(exc) from exc

    @contextmanager
    def driver_read(self) -> Iterator[AnyConnection]:
        """A connection for reads made only of :class:`~.fastpath.FastRead` statements.

        It is the pooled DBAPI connection itself (no SQLAlchemy ``Connection``: that costs
        as much as a small query), or a :meth:`read` connection when someone observes the
        engine's SQL (cursor-execute listeners, ``echo``), so they still see every statement.
        Errors are translated as in :meth:`read`; a connection the driver reports as
        disconnected is dropped from the pool.
        """
        if observed(self.engine):
            with self.read() as conn:
                yield conn
            return
        pooled = self._checkout()
        try:
            yield DriverConnection(self.engine.dialect, pooled.dbapi_connection)
        except sa_exc.DBAPIError as exc:
            self._drop_if_disconnected(pooled, exc.orig)
            raise self.translate(exc) from exc
        finally:
            self._checkin(pooled)

    @contextmanager
    def driver_transaction(self) -> Iterator[AnyConnection]:
        """A write transaction for work made only of :mod:`~.fastpath` statements.

        Like :meth:`transaction` (``BEGIN IMMEDIATE`` on SQLite, commit on success,
        rollback on any error, driver errors translated), on the pooled DBAPI connection
        itself: SQLAlchemy's ``Connection`` and transaction objects cost ~90 µs per
        transaction, as much as SQLite's commit. When someone observes the engine's SQL
        (cursor-execute listeners, ``echo``), it is :meth:`transaction` itself.
        """
        if observed(self.engine):
            with self.transaction() as conn:
                yield conn
            return
        dialect = self.engine.dialect
        pooled = self._checkout()
        dbapi_connection = pooled.dbapi_connection
        try:
            try:
                if self.dialect == "sqlite":  # the other drivers begin implicitly
                    dbapi_connection.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
                yield DriverConnection(dialect, dbapi_connection)
                dbapi_connection.commit()  # type: ignore[union-attr]
            except BaseException:
                try:
                    dbapi_connection.rollback()  # type: ignore[union-attr]
                except Exception:
                    pooled.invalidate()
                raise
        except dialect.loaded_dbapi.Error as exc:  # BEGIN or COMMIT: wrapped as SQLAlchemy wraps driver errors
            wrapped = sa_exc.DBAPIError.instance(None, None, exc, dialect.loaded_dbapi.Error, dialect=dialect)
            assert isinstance(wrapped, sa_exc.DBAPIError)  # orig is a driver error
            self._drop_if_disconnected(pooled, exc)
            raise self.translate(wrapped) from wrapped
        except sa_exc.DBAPIError as exc:
            self._drop_if_disconnected(pooled, exc.orig)
            raise self.translate(exc) from exc
        finally:
            self._checkin(pooled)

    def _checkout(self) -> PoolProxiedConnection:
        """A pooled DBAPI connection; errors translated.

        ``Engine.raw_connection`` raises the driver's own exceptions (a server that is down,
        frozen or refusing connections), unlike ``Engine.connect``.
        """
        dialect = self.engine.dialect
        try:
            return self.engine.raw_connection()
        except dialect.loaded_dbapi.Error as exc:  # connecting failed: the server is unreachable
            wrapped = sa_exc.DBAPIError.instance(None, None, exc, dialect.loaded_dbapi.Error, dialect=dialect)
            assert isinstance(wrapped, sa_exc.DBAPIError)
            raise StoreUnavailableError(
                f"cannot connect to metadata store {self.display_name}: {driver_message(wrapped)}"
            ) from exc
        except sa_exc.SQLAlchemyError as exc:  # e.g. the pool's TimeoutError: no free connection
            raise self.translate(exc) from exc

    @staticmethod
    def _checkin(pooled: PoolProxiedConnection) -> None:
        """Return ``pooled`` to the pool. The pool resets it (rollback) and discards it if that
        fails; a driver error it still raises is not worth more than a dropped connection."""
        try:
            pooled.close()
        except Exception:
            pooled.invalidate()

    def run_transaction(self, work: Callable[[Connection], T]) -> T:
        """Run ``work(conn)`` in a write transaction, retrying transient failures.

        ``work`` must be safe to run again from the start (it is only retried
        after a rollback). Retries back off exponentially with full jitter,
        starting at 10 ms, at most ``max_retries`` times.
        """
        return self._retrying(self.transaction, work)

    def run_driver_transaction(self, work: Callable[[AnyConnection], T]) -> T:
        """:meth:`run_transaction` for work made only of :mod:`~.fastpath` statements,
        in a :meth:`driver_transaction` (the same retries)."""
        return self._retrying(self.driver_transaction, work)

    def _retrying(self, begin: Callable[[], AbstractContextManager[Any]], work: Callable[[Any], T]) -> T:
        attempt = 0
        while True:
            try:
                with begin() as conn:
                    return work(conn)
            except MetadataStoreError as exc:
                cause = exc.__cause__
                if attempt >= self.max_retries or not is_transient(cause):
                    raise
                attempt += 1
                time.sleep(random.uniform(0, 0.01 * 2**attempt))

    def _drop_if_disconnected(self, pooled: Any, error: BaseException | None) -> None:
        """After a disconnect, drop ``pooled`` and every connection pooled before it (the server
        dropped them all, most likely), as SQLAlchemy does for its own connections."""
        dialect = self.engine.dialect
        if isinstance(error, Exception) and dialect.is_disconnect(error, pooled.dbapi_connection, None):  # type: ignore[arg-type]
            self.engine.pool._invalidate(pooled, error)

    def check_connection(self) -> None:
        """Open one connection and run ``SELECT 1``.

        Raises:
            StoreUnavailableError: naming this database and the driver's reason.
        """
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except sa_exc.DBAPIError as exc:
            raise StoreUnavailableError(f"cannot connect to {self.display_name}: {driver_message(exc)}") from exc
        except sa_exc.SQLAlchemyError as exc:
            raise StoreUnavailableError(f"cannot connect to {self.display_name}: {_first_line(exc)}") from exc

    def translate(self, exc: BaseException) -> MetadataStoreError:
        """Turn a driver or SQLAlchemy error into a one-line pipeledger error (never with a password).

        Driver errors should come wrapped as SQLAlchemy wraps them (``DBAPIError``); a bare one
        is wrapped here. Other SQLAlchemy errors (the pool's ``TimeoutError``...) become a
        :class:`StoreUnavailableError` or :class:`MetadataStoreError` with their first line.
        """
        dialect = self.engine.dialect
        if not isinstance(exc, sa_exc.DBAPIError) and isinstance(exc, dialect.loaded_dbapi.Error):
            wrapped = sa_exc.DBAPIError.instance(None, None, exc, dialect.loaded_dbapi.Error, dialect=dialect)
            assert isinstance(wrapped, sa_exc.DBAPIError)
            exc = wrapped
        if not isinstance(exc, sa_exc.DBAPIError):
            if isinstance(exc, (sa_exc.TimeoutError, sa_exc.DisconnectionError)):
                return StoreUnavailableError(f"metadata store {self.display_name} is unavailable: {_first_line(exc)}")
            return MetadataStoreError(f"metadata store {self.display_name}: {_first_line(exc)}")
        message = driver_message(exc)
        if isinstance(exc, sa_exc.IntegrityError):
            return MetadataStoreError(f"{self.display_name}: integrity error: {message}")
        if _is_unavailable(exc):
            return StoreUnavailableError(f"cannot open metadata store {self.display_name}: {message}")
        return MetadataStoreError(f"metadata store {self.display_name}: {message}")

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def is_transient(exc: BaseException | None) -> bool:
    """True for failures that succeed when retried: busy, deadlock, serialization."""
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    text = str(exc.orig).lower()
    return any(marker in text for marker in _TRANSIENT_MARKERS)


def _is_unavailable(exc: sa_exc.DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    text = str(exc.orig).lower()
    return any(
        marker in text
        for marker in (
            "unable to open database",
            "file is not a database",
            "database disk image is malformed",
            "can't connect",
            "connection refused",
            "access denied",
            "password authentication failed",
            "unknown database",
            "does not exist",
            "timeout expired",
            "timed out",
            "ssl",
            "connection failed",  # psycopg, a lost server: refused, reset, closed
            "server closed the connection",
            "the connection is closed",
            "terminating connection",
            "lost connection",  # MySQL 2013
            "server has gone away",  # MySQL 2006
            "connection reset",
            "broken pipe",
        )
    )


def driver_message(exc: sa_exc.DBAPIError) -> str:
    """The driver's reason for ``exc`` on one line: ``(1045, "Access denied...")`` becomes
    ``Access denied... (error 1045)``."""
    orig = exc.orig
    if orig is None:
        return _first_line(exc)
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
        return f"{_first_line_of(args[1])} (error {args[0]})"
    return _first_line(orig)


def _first_line_of(text: str) -> str:
    text = text.strip()
    return text.splitlines()[0] if text else ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


WAL_AUTOCHECKPOINT_PAGES = 4000
"""How large SQLite's write-ahead log grows (in pages, 16 MiB with 4 KiB pages) before the
committing connection checkpoints it. A checkpoint is when ``synchronous=NORMAL`` syncs
(the log, then the database file); at SQLite's default of 1,000 pages it was about a third
of the time of recording a step. Checkpointing 4x less often copies each often-rewritten
page (the tail of every table and index) once per 4,000 frames instead of four times:
recording is ~10% faster in interleaved measurements (``benchmarks/RESULTS.md``), for a
``-wal`` file of at most ~16 MiB. A background checkpoint thread was tried and gained nothing
more on two cores."""


def _configure_sqlite(engine: Engine) -> None:
    """WAL journal, foreign keys and explicit BEGIN statements (the busy timeout is the
    driver's ``timeout`` connect argument: the flavor's ``busy_timeout``, else 30 s).

    pysqlite's own transaction handling is switched off (``isolation_level=None``)
    so that SQLAlchemy emits ``BEGIN`` itself: ``BEGIN IMMEDIATE`` for writes,
    taking the write lock up front, plain ``BEGIN`` for reads.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("pipeledger_begin")
        statement = "BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN"
        try:  # straight to the driver: this runs once per transaction, on the hot path
            conn.connection.driver_connection.execute(statement)  # type: ignore[union-attr]
        except sqlite3.Error as exc:  # as SQLAlchemy would raise it, so retries and messages apply
            raise sa_exc.OperationalError(statement, None, exc) from exc

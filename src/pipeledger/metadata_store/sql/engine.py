"""Connections and transactions: the one place that talks to the database driver.

:class:`Database` wraps a SQLAlchemy engine. Every transaction, read or write, Core or
prebuilt statements, goes through one implementation (:meth:`Database._begin`) over one of
two adapters: a SQLAlchemy ``Connection`` (:class:`_CoreAdapter`) or the pooled DBAPI
connection (:class:`_DriverAdapter`, the fast path of :mod:`.fastpath`). It begins the
transaction the way the dialect needs (``BEGIN IMMEDIATE`` on SQLite, so concurrent writers
queue on the busy timeout instead of deadlocking), commits or rolls back, and translates
driver errors into pipeledger's errors by the driver's error code (:mod:`.driver_errors`)
with ``raise ... from``. :meth:`Database.run_transaction` and :meth:`Database.run_session`
retry :class:`~pipeledger.exceptions.TransientStoreError` (busy database, deadlock,
serialization failure) with jittered backoff.

Which adapter prebuilt statements run on is decided here, not by the store: the driver
one when the fast path is on (``Database(fast_path=...)``, else the ``PIPELEDGER_FAST_PATH``
environment variable; on by default) and nobody observes the engine's SQL.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, RootTransaction, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import PoolProxiedConnection

from pipeledger.exceptions import MetadataStoreError, StoreUnavailableError, TransientStoreError
from pipeledger.metadata_store.sql.driver_errors import ErrorKind, kind
from pipeledger.metadata_store.sql.fastpath import CoreSession, DriverSession, DuplicateError, Session, observed

T = TypeVar("T")

FAST_PATH_ENV = "PIPELEDGER_FAST_PATH"
"""Environment variable read when ``Database(fast_path=None)``: ``0``, ``off`` or ``false``
turns the driver-cursor path off (every statement then runs through SQLAlchemy Core)."""


def fast_path_from_environment() -> bool:
    """Whether ``PIPELEDGER_FAST_PATH`` leaves the fast path on (unset: on)."""
    return os.environ.get(FAST_PATH_ENV, "").strip().lower() not in ("0", "off", "false", "no")


class DuplicateRowError(MetadataStoreError):
    """A unique or primary key refused a row (a statement without its own ``on_duplicate``)."""


class MissingReferenceError(MetadataStoreError):
    """A foreign key refused a row: something it refers to does not exist (or is still referred to)."""


_JSON_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))
"""Built once: ``json.dumps`` with options builds an encoder per call (a few µs, and a step
writes three or four JSON values)."""


def json_dumps(value: Any) -> str:
    """Serialize a JSON column value; NaN and infinities are refused (not JSON)."""
    return _JSON_ENCODER.encode(value)


class Database:
    """A SQLAlchemy engine plus pipeledger's transaction discipline.

    Args:
        url: the SQLAlchemy URL (may hold a password: it is never printed).
        display_name: what error messages call this database, e.g.
            ``"sqlite:///home/me/metadata.db"`` or ``"mysql 127.0.0.1:3306/prod"``.
        connect_args: passed to the DBAPI ``connect()``.
        max_retries: how many times a transient failure is retried.
        engine_options: passed to ``create_engine`` (may replace the ``json_serializer``).
        fast_path: run prebuilt statements on the driver's cursor (see :mod:`.fastpath`); None
            reads ``PIPELEDGER_FAST_PATH`` (``0``/``off``/``false`` turn it off; on by default).
        check_liveness: check that a pooled connection is alive before using it (database
            servers: see :func:`check_connections`; not SQLite files).
    """

    def __init__(
        self,
        url: URL | str,
        *,
        display_name: str,
        connect_args: dict[str, Any] | None = None,
        max_retries: int = 8,
        engine_options: dict[str, Any] | None = None,
        fast_path: bool | None = None,
        check_liveness: bool = False,
    ) -> None:
        self.display_name = display_name
        self.fast_path = fast_path_from_environment() if fast_path is None else fast_path
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
        #: Called after each committed write transaction (see :mod:`.statistics`).
        self.after_write: Callable[[], None] | None = None
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)
        if check_liveness:
            check_connections(self.engine)
        #: Reads run outside a transaction (autocommit): on PostgreSQL under READ COMMITTED each
        #: statement takes its own snapshot inside a transaction too, so a read transaction only
        #: adds a ``BEGIN`` and a ``ROLLBACK``, two round trips per read.
        self.autocommit_reads = self.dialect == "postgresql"

    # ------------------------------------------------------------------ public

    def transaction(self) -> AbstractContextManager[Connection]:
        """A write transaction on a SQLAlchemy ``Connection``, for Core statements: committed on
        success, rolled back on any error, driver errors translated (see :meth:`translate`).
        Use :meth:`run_transaction` to get automatic retries of transient failures."""
        return self._begin(_CoreAdapter(self, write=True, yields_session=False))

    def read(self) -> AbstractContextManager[Connection]:
        """A read-only ``Connection`` for Core statements (a deferred transaction, rolled back at the end)."""
        return self._begin(_CoreAdapter(self, write=False, yields_session=False))

    def session(self, *, write: bool = False) -> AbstractContextManager[Session]:
        """A read (or with ``write``, a write transaction) for prebuilt statements
        (:class:`~.fastpath.FastRead`, :class:`~.fastpath.FastWrite`).

        The session runs them on the pooled DBAPI connection itself when the fast path is on and
        nobody observes the engine's SQL (cursor-execute listeners, ``echo``), else through
        SQLAlchemy Core; either way as :meth:`transaction` and :meth:`read` do (``BEGIN
        IMMEDIATE`` on SQLite for writes, commit or rollback, errors translated).
        """
        if self.fast_path and not observed(self.engine):
            return self._begin(_DriverAdapter(self, write=write))
        return self._begin(_CoreAdapter(self, write=write, yields_session=True))

    def run_transaction(self, work: Callable[[Connection], T]) -> T:
        """Run ``work(conn)`` in a :meth:`transaction`, retrying transient failures.

        ``work`` must be safe to run again from the start (it is only retried
        after a rollback). Retries back off exponentially with full jitter,
        starting at 10 ms, at most ``max_retries`` times.
        """
        return self._retrying(self.transaction, work)

    def run_session(self, work: Callable[[Session], T]) -> T:
        """Run ``work(session)`` in a write :meth:`session`, retrying transient failures as
        :meth:`run_transaction` does."""
        return self._retrying(lambda: self.session(write=True), work)

    def _retrying(self, begin: Callable[[], AbstractContextManager[Any]], work: Callable[[Any], T]) -> T:
        attempt = 0
        while True:
            try:
                with begin() as begun:
                    result = work(begun)
                if self.after_write is not None:
                    self.after_write()
                return result
            except TransientStoreError:
                if attempt >= self.max_retries:
                    raise
                attempt += 1
                time.sleep(random.uniform(0, 0.01 * 2**attempt))

    @contextmanager
    def _begin(self, adapter: _CoreAdapter | _DriverAdapter) -> Iterator[Any]:
        """THE transaction implementation: open, begin, yield the adapter's connection or session,
        commit (a write) or roll back, close; errors translated. An error already translated (at a
        statement) passes as it is."""
        dbapi_error = self.engine.dialect.loaded_dbapi.Error
        try:
            adapter.open()
            try:
                adapter.begin()
                yield adapter.yielded
                adapter.commit()
            except BaseException:
                adapter.rollback()
                raise
            finally:
                adapter.close()
        except MetadataStoreError:
            raise
        except (sa_exc.SQLAlchemyError, dbapi_error) as exc:
            adapter.drop_if_disconnected(exc)
            raise self.translate(exc) from exc

    def translate_statement_error(
        self, exc: sa_exc.DBAPIError, on_duplicate: DuplicateError | None, row: Mapping[str, Any]
    ) -> MetadataStoreError:
        """The error a prebuilt statement's driver error means: the statement's own for a
        duplicate row (``on_duplicate``), else as :meth:`translate` says."""
        if on_duplicate is not None and kind(exc.orig) is ErrorKind.DUPLICATE:
            return on_duplicate(row)
        return self.translate(exc)

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
        found = kind(exc.orig)
        if found is ErrorKind.TRANSIENT:
            return TransientStoreError(f"metadata store {self.display_name} is busy: {message}")
        if found is ErrorKind.DUPLICATE:
            return DuplicateRowError(f"{self.display_name}: integrity error: {message}")
        if found is ErrorKind.MISSING_REFERENCE:
            return MissingReferenceError(f"{self.display_name}: integrity error: {message}")
        if isinstance(exc, sa_exc.IntegrityError):
            return MetadataStoreError(f"{self.display_name}: integrity error: {message}")
        if _is_unavailable(exc):
            return StoreUnavailableError(f"cannot open metadata store {self.display_name}: {message}")
        return MetadataStoreError(f"metadata store {self.display_name}: {message}")

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


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


class _CoreAdapter:
    """A transaction on a SQLAlchemy ``Connection`` (SQLAlchemy handles disconnects itself)."""

    __slots__ = ("_transaction", "connection", "db", "write", "yielded", "yields_session")

    def __init__(self, db: Database, *, write: bool, yields_session: bool) -> None:
        self.db = db
        self.write = write
        self.yields_session = yields_session
        self._transaction: RootTransaction | None = None

    def open(self) -> None:
        self.connection = self.db.engine.connect()
        if not self.write and self.db.autocommit_reads:
            self.connection.execution_options(isolation_level="AUTOCOMMIT")
        self.yielded: Connection | CoreSession = (
            CoreSession(self.connection, self.db.translate_statement_error) if self.yields_session else self.connection
        )

    def begin(self) -> None:
        if self.write:  # a read begins (deferred) at its first statement and is rolled back on close
            self.connection.execution_options(pipeledger_begin="IMMEDIATE")
            self._transaction = self.connection.begin()

    def commit(self) -> None:
        if self._transaction is not None:
            self._transaction.commit()

    def rollback(self) -> None:
        if self._transaction is not None and self._transaction.is_active:
            try:
                self._transaction.rollback()
            except Exception:  # the error that matters is being raised already
                self.connection.invalidate()

    def close(self) -> None:
        self.connection.close()

    def drop_if_disconnected(self, error: BaseException) -> None:
        """Nothing to do: a ``Connection`` invalidates itself and the pool after a disconnect."""


class _DriverAdapter:
    """A transaction on the pooled DBAPI connection itself: SQLAlchemy's ``Connection`` and
    transaction objects cost ~90 µs per transaction, as much as SQLite's commit."""

    __slots__ = ("autocommit", "db", "dbapi_connection", "pooled", "write", "yielded")

    def __init__(self, db: Database, *, write: bool) -> None:
        self.db = db
        self.write = write
        self.autocommit = not write and db.autocommit_reads  # a read outside a transaction (see Database)

    def open(self) -> None:
        """Check out a pooled DBAPI connection; errors translated.

        ``Engine.raw_connection`` raises the driver's own exceptions (a server that is down,
        frozen or refusing connections), unlike ``Engine.connect``.
        """
        self.pooled: PoolProxiedConnection = self._checkout()
        self.dbapi_connection: Any = self.pooled.dbapi_connection
        self._prepare()
        self.yielded = DriverSession(
            self.db.engine.dialect, self.dbapi_connection, self._statement_error, reconnect=self._reconnect
        )

    def _checkout(self) -> PoolProxiedConnection:
        dialect = self.db.engine.dialect
        _driver_checkout.unchecked = True
        try:
            return self.db.engine.raw_connection()
        except dialect.loaded_dbapi.Error as exc:  # connecting failed: the server is unreachable
            wrapped = sa_exc.DBAPIError.instance(None, None, exc, dialect.loaded_dbapi.Error, dialect=dialect)
            assert isinstance(wrapped, sa_exc.DBAPIError)
            raise StoreUnavailableError(
                f"cannot connect to metadata store {self.db.display_name}: {driver_message(wrapped)}"
            ) from exc
        except sa_exc.SQLAlchemyError as exc:  # e.g. the pool's TimeoutError: no free connection
            raise self.db.translate(exc) from exc
        finally:
            _driver_checkout.unchecked = False

    def _prepare(self) -> None:
        if self.autocommit:
            self.dbapi_connection.autocommit = True  # no BEGIN, no ROLLBACK

    def _reconnect(self, error: Exception) -> Any:
        """A new connection in place of this one, which ``error`` found gone (and with it every
        connection pooled before it: the server dropped them all, most likely)."""
        self.db.engine.pool._invalidate(self.pooled, error)
        self.pooled = self._checkout()
        self.dbapi_connection = self.pooled.dbapi_connection
        self._prepare()
        return self.dbapi_connection

    def _statement_error(
        self, exc: sa_exc.DBAPIError, on_duplicate: DuplicateError | None, row: Mapping[str, Any]
    ) -> MetadataStoreError:
        self.drop_if_disconnected(exc)
        return self.db.translate_statement_error(exc, on_duplicate, row)

    def begin(self) -> None:
        if self.write and self.db.dialect == "sqlite":  # the other drivers begin implicitly
            self.dbapi_connection.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        if self.write:  # a read is rolled back by the pool when the connection is returned
            self.dbapi_connection.commit()

    def rollback(self) -> None:
        if not self.pooled.is_valid:  # dropped after a disconnect: nothing to roll back
            return
        try:
            self.dbapi_connection.rollback()
        except Exception:  # the error that matters is being raised already
            self.pooled.invalidate()

    def close(self) -> None:
        """Return the connection to the pool. The pool resets it (rollback) and discards it if that
        fails; a driver error it still raises is not worth more than a dropped connection."""
        if not self.pooled.is_valid:  # dropped after a disconnect, and back in the pool already
            return
        try:
            if self.autocommit:
                self.dbapi_connection.autocommit = False
            self.pooled.close()
        except Exception:
            self.pooled.invalidate()

    def drop_if_disconnected(self, error: BaseException) -> None:
        """After a disconnect, drop this connection and every connection pooled before it (the
        server dropped them all, most likely), as SQLAlchemy does for its own connections."""
        orig = error.orig if isinstance(error, sa_exc.DBAPIError) else error
        if isinstance(orig, Exception) and self.db.engine.dialect.is_disconnect(orig, self.dbapi_connection, None):  # type: ignore[arg-type]
            self.db.engine.pool._invalidate(self.pooled, orig)


_driver_checkout = threading.local()
"""``_driver_checkout.unchecked``: the connection being checked out in this thread is the driver
session's, which reconnects if its first statement finds the connection gone."""


def check_connections(engine: Engine) -> None:
    """Check that a pooled connection is alive when it is checked out (a ``SELECT 1``; a dead one
    is replaced by a new connection), as ``pool_pre_ping`` does, except for the driver session's
    checkouts (:class:`_DriverAdapter`): the driver session reconnects and runs its first statement
    again when that statement finds the connection gone (:class:`~.fastpath.DriverSession`), which
    saves a round trip per transaction."""
    dialect = engine.dialect

    @event.listens_for(engine, "checkout")
    def checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if getattr(_driver_checkout, "unchecked", False):
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if dialect.is_disconnect(exc, dbapi_connection, None):
                raise sa_exc.DisconnectionError(str(exc)) from exc  # the pool reconnects
            raise


WAL_AUTOCHECKPOINT_PAGES = 4000
"""How large SQLite's write-ahead log grows (in pages, 16 MiB with 4 KiB pages) before the
committing connection checkpoints it. A checkpoint is when ``synchronous=NORMAL`` syncs
(the log, then the database file); at SQLite's default of 1,000 pages it was about a third
of the time of recording a step. Checkpointing 4x less often copies each often-rewritten
page (the tail of every table and index) once per 4,000 frames instead of four times:
recording is ~10% faster in interleaved measurements (``benchmarks/RESULTS.md``), for a
``-wal`` file of at most ~16 MiB. A background checkpoint thread was tried and gained nothing
more on two cores."""


def _use_wal(cursor: sqlite3.Cursor, patience: float = 30.0) -> None:
    """Put the database in WAL mode (kept in the file: once done, only read back).

    Switching a new file to WAL takes an exclusive lock, and SQLite may answer ``database is
    locked`` at once instead of calling the busy handler when several processes open the same
    new file together (it does so where waiting could deadlock): retried here for up to
    ``patience`` seconds."""
    deadline = time.monotonic() + patience
    delay = 0.005
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


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
            _use_wal(cursor)
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

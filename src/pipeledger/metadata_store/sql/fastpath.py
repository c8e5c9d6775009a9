"""Prebuilt statements and the two ways to run them: the seam of the fast SQL path.

Recording a step runs a handful of small statements (insert the step run and its
input edges; update it and insert its artifacts and output edges). SQLAlchemy
Core's execution machinery (statement cache look-up, parameter processing, result
set-up, events) costs more than the statements themselves on SQLite, and about a
third of the record path in total (see ``benchmarks/RESULTS.md``).

The statements are still written once, in SQLAlchemy Core, for every database
(:mod:`pipeledger.metadata_store.sql.statements`). A :class:`FastWrite` or
:class:`FastRead` holds one; a :class:`Session` runs it. There are two sessions,
and :class:`~pipeledger.metadata_store.sql.engine.Database` chooses which one a
transaction gets (the store's methods never do)::

    store method ──► Database.run_session(work) / session()     one transaction implementation
                        │ fast path on, SQL not observed        │ fast path off, or observed
                        ▼                                       ▼
                   DriverSession                           CoreSession
                   the pooled DBAPI connection;            a SQLAlchemy Connection;
                   each statement compiled once per        each statement executed by Core
                   dialect and set of columns, run on      (events, echo, tracing see it)
                   the driver's cursor with the column
                   types' own bind/result processors

Either way a driver error is translated at the statement, by the driver's error code
(:mod:`.driver_errors`): a statement says what a duplicate row means
(``on_duplicate``, e.g. :class:`~pipeledger.exceptions.StepRunExistsError`), the
database says the rest (:meth:`~pipeledger.metadata_store.sql.engine.Database.translate`).

The private SQLAlchemy pieces the driver session relies on (``SQLCompiler.positiontup``,
``binds``, ``BindParameter.effective_value``, ``TypeEngine.dialect_impl``,
``DBAPIError.instance``, ``Engine.raw_connection``) are checked by ``tests/test_fastpath.py``.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Insert, Select, Update
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect

from pipeledger.exceptions import MetadataStoreError

_Processor = Callable[[Any], Any] | None
Rows = tuple[list[Sequence[Any]], Sequence[_Processor]]
"""Rows as the driver returned them, and the result processor of each column (None: as it is)."""
Writable = Insert | Update
DuplicateError = Callable[[Mapping[str, Any]], MetadataStoreError]
"""Builds the error a duplicate row means for a statement, from the (first) row given."""


class _Compiled:
    """One statement compiled for one dialect and one set of columns."""

    def __init__(self, statement: Insert | Update | Select[Any], dialect: Dialect, keys: Sequence[str] | None) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys) if keys is not None else None)
        self.sql = compiled.string
        self.positional = compiled.positional
        names = list(compiled.positiontup or []) if compiled.positional else list(compiled.binds)
        # (name in the SQL, key in the given values, processor, value when not given: literals in the statement)
        self.params: list[tuple[str, str, _Processor, Any]] = []
        for name in names:
            bind = compiled.binds[name]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            self.params.append((name, bind.key, processor, bind.effective_value))

    def parameters(self, row: Mapping[str, Any]) -> Any:
        values = []
        for _name, key, processor, default in self.params:
            value = row.get(key, default)
            values.append(value if processor is None else processor(value))
        if self.positional:
            return values
        return {name: value for (name, _key, _processor, _default), value in zip(self.params, values)}


class Translator(Protocol):
    """What a session calls with a driver error (wrapped as SQLAlchemy wraps them)."""

    def __call__(
        self, exc: sa_exc.DBAPIError, on_duplicate: DuplicateError | None, row: Mapping[str, Any]
    ) -> MetadataStoreError: ...


class Session:
    """What prebuilt statements run on: one connection in one transaction (or one read)."""

    dialect: Dialect

    def write(self, statement: FastWrite, rows: Sequence[Mapping[str, Any]]) -> int:  # pragma: no cover - abstract
        """Execute ``statement`` once per row; returns the rows affected."""
        raise NotImplementedError

    def read(self, statement: FastRead, parameters: Mapping[str, Any]) -> list[dict[str, Any]]:  # pragma: no cover
        """Every row of ``statement`` as a dict by column key."""
        raise NotImplementedError

    def read_rows(self, statement: FastRead, parameters: Mapping[str, Any]) -> Rows:  # pragma: no cover
        """Every row of ``statement`` as a tuple of stored values, with each column's result
        processor (None where the value needs no conversion, or is converted already)."""
        raise NotImplementedError


class DriverSession(Session):
    """Prebuilt statements on a pooled DBAPI connection, without a SQLAlchemy ``Connection``
    around it (creating one costs about as much as a small query on SQLite).

    Args:
        reconnect: called when the session's first statement finds the connection gone (the
            database server restarted while it rested in the pool); returns a new DBAPI
            connection, on which the statement runs once more. Nothing ran on the old
            connection's transaction, so nothing is lost or repeated. This replaces a liveness
            check (``pool_pre_ping``) at every checkout, a round trip per transaction.
    """

    __slots__ = ("_reconnect", "_translate", "dbapi_connection", "dialect")

    def __init__(
        self,
        dialect: Dialect,
        dbapi_connection: Any,
        translate: Translator,
        reconnect: Callable[[Exception], Any] | None = None,
    ) -> None:
        self.dialect = dialect
        self.dbapi_connection = dbapi_connection
        self._translate = translate
        self._reconnect = reconnect

    def _run(
        self, compiled: _Compiled, parameters: list[Any], on_duplicate: DuplicateError | None, first: Mapping[str, Any]
    ) -> tuple[int, list[Any]]:
        dialect = self.dialect
        while True:
            cursor = None
            try:
                cursor = self.dbapi_connection.cursor()  # raises too when the connection is gone
                if len(parameters) == 1:
                    cursor.execute(compiled.sql, parameters[0])
                else:
                    cursor.executemany(compiled.sql, parameters)
                found = int(cursor.rowcount), (list(cursor.fetchall()) if cursor.description is not None else [])
                self._reconnect = None
                return found
            except dialect.loaded_dbapi.Error as exc:
                reconnect, self._reconnect = self._reconnect, None
                if reconnect is not None and dialect.is_disconnect(exc, self.dbapi_connection, cursor):
                    self.dbapi_connection = reconnect(exc)
                    continue
                error_class = dialect.loaded_dbapi.Error
                wrapped = sa_exc.DBAPIError.instance(compiled.sql, parameters, exc, error_class, dialect=dialect)
                assert isinstance(wrapped, sa_exc.DBAPIError)
                raise self._translate(wrapped, on_duplicate, first) from wrapped
            finally:
                if cursor is not None:
                    with contextlib.suppress(dialect.loaded_dbapi.Error):  # the error that matters is raised already
                        cursor.close()

    def write(self, statement: FastWrite, rows: Sequence[Mapping[str, Any]]) -> int:
        if not rows:
            return 0
        compiled = statement.compiled(self.dialect, rows[0])
        count, _rows = self._run(compiled, [compiled.parameters(row) for row in rows], statement.on_duplicate, rows[0])
        return count

    def read(self, statement: FastRead, parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
        compiled, columns = statement.compiled(self.dialect)
        _count, rows = self._run(compiled, [compiled.parameters(parameters)], None, parameters)
        return [
            {key: value if proc is None else proc(value) for (key, proc), value in zip(columns, row)} for row in rows
        ]

    def read_rows(self, statement: FastRead, parameters: Mapping[str, Any]) -> Rows:
        compiled, _columns = statement.compiled(self.dialect)
        _count, rows = self._run(compiled, [compiled.parameters(parameters)], None, parameters)
        return rows, statement.processors(self.dialect)


class CoreSession(Session):
    """Prebuilt statements executed by SQLAlchemy Core on a ``Connection``: what a transaction gets
    when the fast path is off, or when someone observes the engine's SQL (cursor-execute
    listeners, ``echo``), so they see every statement."""

    __slots__ = ("_translate", "connection", "dialect")

    def __init__(self, connection: Connection, translate: Translator) -> None:
        self.connection = connection
        self.dialect = connection.dialect
        self._translate = translate

    def write(self, statement: FastWrite, rows: Sequence[Mapping[str, Any]]) -> int:
        if not rows:
            return 0
        try:
            result = self.connection.execute(
                statement.statement_for(self.dialect), rows[0] if len(rows) == 1 else list(rows)
            )
        except sa_exc.DBAPIError as exc:
            raise self._translate(exc, statement.on_duplicate, rows[0]) from exc
        return int(result.rowcount)

    def read(self, statement: FastRead, parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
        try:
            result = self.connection.execute(statement.statement, dict(parameters))
        except sa_exc.DBAPIError as exc:
            raise self._translate(exc, None, parameters) from exc
        return [dict(row) for row in result.mappings()]

    def read_rows(self, statement: FastRead, parameters: Mapping[str, Any]) -> Rows:
        try:
            result = self.connection.execute(statement.statement, dict(parameters))
        except sa_exc.DBAPIError as exc:
            raise self._translate(exc, None, parameters) from exc
        rows: list[Sequence[Any]] = list(result.all())  # rows index like tuples; Core has converted every value
        return rows, (None,) * len(statement.statement.selected_columns)


def observed(target: Connection | Engine) -> bool:
    """Whether someone watches this connection's or engine's SQL (cursor-execute listeners, ``echo``)."""
    dispatch = target.dispatch
    echo = target.echo if isinstance(target, Engine) else target.engine.echo
    return bool(dispatch.before_cursor_execute or dispatch.after_cursor_execute or echo)


class FastWrite:
    """A prebuilt INSERT or UPDATE; see the module docstring.

    Args:
        statement: ``insert(table)`` (columns are taken from the rows), an UPDATE whose values
            and conditions are all ``bindparam`` (rows give their values), or a function of the
            dialect's name that builds one (a dialect's own upsert).
        on_duplicate: the error a unique or primary key refusing a row means for this statement.
    """

    def __init__(
        self, statement: Writable | Callable[[str], Writable], *, on_duplicate: DuplicateError | None = None
    ) -> None:
        self._build = statement if callable(statement) and not isinstance(statement, (Insert, Update)) else None
        self.statement: Writable | None = None if self._build is not None else statement  # type: ignore[assignment]
        self.on_duplicate = on_duplicate
        self._by_dialect: dict[str, Writable] = {}
        # Per dialect instance (it carries the engine's JSON serializer), then per set of columns.
        self._compiled: weakref.WeakKeyDictionary[Dialect, dict[tuple[str, ...] | None, _Compiled]] = (
            weakref.WeakKeyDictionary()
        )

    def statement_for(self, dialect: Dialect) -> Writable:
        """The statement as written for ``dialect``."""
        if self.statement is not None:
            return self.statement
        found = self._by_dialect.get(dialect.name)
        if found is None:
            assert self._build is not None
            found = self._by_dialect[dialect.name] = self._build(dialect.name)
        return found

    def compiled(self, dialect: Dialect, row: Mapping[str, Any]) -> _Compiled:
        """The statement compiled for ``dialect`` and the columns of ``row`` (an INSERT's)."""
        statement = self.statement_for(dialect)
        keys = tuple(row) if isinstance(statement, Insert) and statement.select is None else None
        by_keys = self._compiled.setdefault(dialect, {})
        compiled = by_keys.get(keys)
        if compiled is None:
            compiled = by_keys[keys] = _Compiled(statement, dialect, keys)
        return compiled

    def execute(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> int:
        """Execute once per row (all rows must have the same keys); returns the rows affected."""
        return session.write(self, rows)


class FastRead:
    """A prebuilt SELECT; its rows come back as dicts keyed by column label.

    On the driver session each selected column's value goes through its type's own result
    processor (UTC datetimes, JSON), as Core would. Only plain bind parameters (no expanding ``IN``).
    """

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._compiled: weakref.WeakKeyDictionary[Dialect, tuple[_Compiled, list[tuple[str, _Processor]]]] = (
            weakref.WeakKeyDictionary()
        )
        self._processors: weakref.WeakKeyDictionary[Dialect, tuple[_Processor, ...]] = weakref.WeakKeyDictionary()
        self._keys: list[str] | None = None
        self.shapes: dict[str, Any] = {}
        """How this statement's rows become records, by record kind (kept with the statement: see
        :mod:`.row_shapes`)."""

    def compiled(self, dialect: Dialect) -> tuple[_Compiled, list[tuple[str, _Processor]]]:
        """The statement compiled for ``dialect``, with each column's key and result processor."""
        found = self._compiled.get(dialect)
        if found is None:
            columns: list[tuple[str, _Processor]] = [
                (str(column.key), column.type.dialect_impl(dialect).result_processor(dialect, None))
                for column in self.statement.selected_columns
            ]
            found = (_Compiled(self.statement, dialect, None), columns)
            self._compiled[dialect] = found
        return found

    def processors(self, dialect: Dialect) -> tuple[_Processor, ...]:
        """Each selected column's result processor for ``dialect``, in order."""
        found = self._processors.get(dialect)
        if found is None:
            found = self._processors[dialect] = tuple(proc for _key, proc in self.compiled(dialect)[1])
        return found

    def keys(self) -> list[str]:
        """The selected columns' keys (labels), in order."""
        if self._keys is None:
            self._keys = [str(column.key) for column in self.statement.selected_columns]
        return self._keys

    def all(self, session: Session, parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every row of the statement with ``parameters``."""
        return session.read(self, parameters)

    def rows(self, session: Session, parameters: Mapping[str, Any]) -> Rows:
        """Every row of the statement with ``parameters``, unconverted where the session can (see
        :meth:`Session.read_rows`): for records that decode their fields on first access."""
        return session.read_rows(self, parameters)

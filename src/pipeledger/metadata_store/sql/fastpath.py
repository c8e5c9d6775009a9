"""The per-step writes and the hot reads, run on the driver's cursor.

Recording a step runs a handful of small statements (insert the step run and its
input edges; update it and insert its artifacts and output edges). SQLAlchemy
Core's execution machinery (statement cache look-up, parameter processing, result
set-up, events) costs more than the statements themselves on SQLite, and about a
third of the record path in total (see ``benchmarks/RESULTS.md``).

The statements are still written once, in SQLAlchemy Core, for every database
(:mod:`pipeledger.metadata_store.sql.store`). :class:`FastWrite` compiles one of
them per dialect, once per set of columns, into the driver's SQL and its
parameter order, with the column types' own bind processors (so values are
converted exactly as Core converts them: UTC datetimes, JSON text, JSONB), and
executes it on the DBAPI cursor of the transaction's connection. Driver errors
are wrapped as SQLAlchemy wraps them, so :class:`~pipeledger.metadata_store.sql.engine.Database`
translates and retries them as usual. :class:`FastRead` does the same for the
SELECTs of the cache look-up, the run view and lineage, with the columns' result processors.

When anyone observes the connection's SQL (``before/after_cursor_execute``
listeners such as tracing instrumentation, or ``echo``), the same SQL and
parameters go through ``Connection.exec_driver_sql`` instead, so every statement
is still seen.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Insert, Select, Update
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect

_Processor = Callable[[Any], Any] | None


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


class DriverConnection:
    """A pooled DBAPI connection used without a SQLAlchemy ``Connection`` around it.

    Made by :meth:`~pipeledger.metadata_store.sql.engine.Database.driver_read` and
    :meth:`~pipeledger.metadata_store.sql.engine.Database.driver_transaction` for work made
    only of :class:`FastRead`/:class:`FastWrite` statements, and only when nobody observes
    the engine's SQL (creating a ``Connection`` costs about as much as a small query on SQLite).
    """

    __slots__ = ("dbapi_connection", "dialect")

    def __init__(self, dialect: Dialect, dbapi_connection: Any) -> None:
        self.dialect = dialect
        self.dbapi_connection = dbapi_connection


AnyConnection = Connection | DriverConnection
"""What :class:`FastWrite` and :class:`FastRead` run on."""


def observed(target: Connection | Engine) -> bool:
    """Whether someone watches this connection's or engine's SQL (cursor-execute listeners, ``echo``)."""
    dispatch = target.dispatch
    echo = target.echo if isinstance(target, Engine) else target.engine.echo
    return bool(dispatch.before_cursor_execute or dispatch.after_cursor_execute or echo)


def _run(conn: AnyConnection, compiled: _Compiled, parameters: list[Any], *, fetch: bool) -> tuple[int, list[Any]]:
    """Execute on the driver's cursor, or through ``exec_driver_sql`` when the SQL is observed (so
    logging, tracing and event listeners still see every statement). Returns (rowcount, rows)."""
    if isinstance(conn, DriverConnection):
        dbapi_connection = conn.dbapi_connection
    elif observed(conn):
        as_sets = [tuple(p) if isinstance(p, list) else p for p in parameters]
        result = conn.exec_driver_sql(compiled.sql, as_sets[0] if len(as_sets) == 1 else as_sets)
        return (0, list(result.fetchall())) if fetch else (int(result.rowcount), [])
    else:
        dbapi_connection = conn.connection.dbapi_connection
    dialect = conn.dialect
    assert dbapi_connection is not None
    cursor = None
    try:
        cursor = dbapi_connection.cursor()  # raises too when the connection is gone
        if len(parameters) == 1:
            cursor.execute(compiled.sql, parameters[0])
        else:
            cursor.executemany(compiled.sql, parameters)
        return int(cursor.rowcount), (list(cursor.fetchall()) if fetch else [])
    except dialect.loaded_dbapi.Error as exc:
        error_class = dialect.loaded_dbapi.Error
        raise sa_exc.DBAPIError.instance(compiled.sql, parameters, exc, error_class, dialect=dialect) from exc
    finally:
        if cursor is not None:
            with contextlib.suppress(dialect.loaded_dbapi.Error):  # the error that matters is raised already
                cursor.close()


class FastWrite:
    """An INSERT or UPDATE executed on the DBAPI cursor; see the module docstring.

    Args:
        statement: ``insert(table)`` (columns are taken from the rows) or an UPDATE
            whose values and conditions are all ``bindparam`` (rows give their values).
    """

    def __init__(self, statement: Insert | Update) -> None:
        self.statement = statement
        # Per dialect instance (it carries the engine's JSON serializer), then per set of columns.
        self._compiled: weakref.WeakKeyDictionary[Dialect, dict[tuple[str, ...] | None, _Compiled]] = (
            weakref.WeakKeyDictionary()
        )

    def _compile(self, dialect: Dialect, row: Mapping[str, Any]) -> _Compiled:
        keys = tuple(row) if isinstance(self.statement, Insert) else None
        by_keys = self._compiled.setdefault(dialect, {})
        compiled = by_keys.get(keys)
        if compiled is None:
            compiled = by_keys[keys] = _Compiled(self.statement, dialect, keys)
        return compiled

    def execute(self, conn: AnyConnection, rows: Sequence[Mapping[str, Any]]) -> int:
        """Execute once per row (all rows must have the same keys); returns the rows affected."""
        if not rows:
            return 0
        compiled = self._compile(conn.dialect, rows[0])
        rowcount, _rows = _run(conn, compiled, [compiled.parameters(row) for row in rows], fetch=False)
        return rowcount


class FastRead:
    """A SELECT executed on the DBAPI cursor, its rows returned as dicts keyed by column label.

    Each selected column's value goes through its type's own result processor (UTC
    datetimes, JSON), as Core would. Only plain bind parameters (no expanding ``IN``).
    """

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._compiled: weakref.WeakKeyDictionary[Dialect, tuple[_Compiled, list[tuple[str, _Processor]]]] = (
            weakref.WeakKeyDictionary()
        )

    def _compile(self, dialect: Dialect) -> tuple[_Compiled, list[tuple[str, _Processor]]]:
        found = self._compiled.get(dialect)
        if found is None:
            columns: list[tuple[str, _Processor]] = [
                (str(column.key), column.type.dialect_impl(dialect).result_processor(dialect, None))
                for column in self.statement.selected_columns
            ]
            found = (_Compiled(self.statement, dialect, None), columns)
            self._compiled[dialect] = found
        return found

    def all(self, conn: AnyConnection, parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every row of the statement with ``parameters``."""
        compiled, columns = self._compile(conn.dialect)
        _count, rows = _run(conn, compiled, [compiled.parameters(parameters)], fetch=True)
        return [
            {key: value if proc is None else proc(value) for (key, proc), value in zip(columns, row)} for row in rows
        ]

"""The per-step writes, run on the driver's cursor.

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
translates and retries them as usual.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Insert, Update
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect

_Processor = Callable[[Any], Any] | None


class _Compiled:
    """One statement compiled for one dialect and one set of columns."""

    def __init__(self, statement: Insert | Update, dialect: Dialect, keys: Sequence[str] | None) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys) if keys is not None else None)
        self.sql = compiled.string
        self.positional = compiled.positional
        names = list(compiled.positiontup or []) if compiled.positional else list(compiled.binds)
        self.params: list[tuple[str, str, _Processor]] = []
        for name in names:
            bind = compiled.binds[name]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            self.params.append((name, bind.key, processor))

    def parameters(self, row: Mapping[str, Any]) -> Any:
        if self.positional:
            return [row[key] if proc is None else proc(row[key]) for _name, key, proc in self.params]
        return {name: row[key] if proc is None else proc(row[key]) for name, key, proc in self.params}


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

    def execute(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        """Execute once per row (all rows must have the same keys); returns the rows affected."""
        if not rows:
            return 0
        dialect = conn.dialect
        compiled = self._compile(dialect, rows[0])
        parameters = [compiled.parameters(row) for row in rows]
        dbapi_connection = conn.connection.dbapi_connection
        assert dbapi_connection is not None
        cursor = dbapi_connection.cursor()
        try:
            if len(parameters) == 1:
                cursor.execute(compiled.sql, parameters[0])
            else:
                cursor.executemany(compiled.sql, parameters)
            return int(cursor.rowcount)
        except dialect.loaded_dbapi.Error as exc:
            raise sa_exc.DBAPIError.instance(
                compiled.sql, parameters, exc, dialect.loaded_dbapi.Error, dialect=dialect
            ) from exc
        finally:
            cursor.close()

"""Reading JSON documents in SQL the same way on SQLite, MySQL/MariaDB and PostgreSQL.

A search compares ``params.X`` (a key of a run's or step's parameters) and ``metrics.X`` (a
metadata value) with a literal whose type chooses the comparison: a number compares
numerically with JSON numbers only, text with JSON strings only, true/false with JSON
booleans only. Every function here returns an expression that is NULL or false where the
document has no such value, never an error: numbers are cast inside ``CASE WHEN <is a
number>``, because SQL does not promise to evaluate ``AND`` left to right. Keys are bound
parameters (PostgreSQL) or part of a bound JSON path built from a checked identifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Float, String, Text, bindparam, case, cast, func, literal, type_coerce
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement
from sqlalchemy.types import Float as FloatType

NUMBER_TYPES = {
    "sqlite": ("integer", "real"),
    "mysql": ("INTEGER", "DOUBLE", "DECIMAL", "UNSIGNED INTEGER"),
    "postgresql": ("number",),
}
STRING_TYPE = {"sqlite": "text", "mysql": "STRING", "postgresql": "string"}
NULL_TYPE = {"sqlite": "null", "mysql": "NULL", "postgresql": "null"}


class as_double(FunctionElement[float]):
    """``CAST(x AS <the dialect's double>)``."""

    type = FloatType()
    inherit_cache = True
    name = "as_double"


@compiles(as_double, "sqlite")
def _double_sqlite(element: as_double, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(next(iter(element.clauses)), **kw)} AS REAL)"


@compiles(as_double, "mysql")
def _double_mysql(element: as_double, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(next(iter(element.clauses)), **kw)} AS DOUBLE)"


@compiles(as_double)
def _double_default(element: as_double, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(next(iter(element.clauses)), **kw)} AS DOUBLE PRECISION)"


class as_binary(FunctionElement[str]):
    """MySQL's ``CAST(x AS BINARY)``: compares text byte by byte (no trailing-space padding)."""

    type = String()
    inherit_cache = True
    name = "as_binary"


@compiles(as_binary)
def _binary(element: as_binary, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(next(iter(element.clauses)), **kw)} AS BINARY)"


def _path(keys: Sequence[str]) -> str:
    """A JSON path for SQLite and MySQL; keys are checked identifiers (letters, digits, _)."""
    return "$" + "".join(f'."{k}"' for k in keys)


class JsonReader:
    """Typed reads of a JSON column (``doc``) at ``keys`` (empty: the whole value) on one dialect."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect

    def _element(self, doc: ColumnElement[Any], keys: Sequence[str]) -> ColumnElement[Any]:
        if self.dialect == "postgresql":
            if not keys:
                return doc
            return func.jsonb_extract_path(doc, *[bindparam(None, k, type_=String) for k in keys])
        return func.json_extract(doc, bindparam(None, _path(keys), type_=String))

    def typeof(self, doc: ColumnElement[Any], keys: Sequence[str]) -> ColumnElement[Any]:
        """The JSON type's name at ``keys`` (dialect's spelling), NULL where absent."""
        if self.dialect == "postgresql":
            return func.jsonb_typeof(self._element(doc, keys))
        if self.dialect == "sqlite":
            return func.json_type(doc, bindparam(None, _path(keys), type_=String))
        return func.json_type(self._element(doc, keys))

    def number(self, doc: ColumnElement[Any], keys: Sequence[str]) -> ColumnElement[Any]:
        """The number at ``keys`` as a double, NULL unless it is a JSON number."""
        kind = self.typeof(doc, keys)
        if self.dialect == "postgresql":
            raw: ColumnElement[Any] = self._text(doc, keys)
        elif self.dialect == "sqlite":
            raw = func.json_extract(doc, bindparam(None, _path(keys), type_=String))
        else:
            raw = self._element(doc, keys)
        return case((kind.in_(NUMBER_TYPES[self.dialect]), as_double(raw)), else_=None)

    def _text(self, doc: ColumnElement[Any], keys: Sequence[str]) -> ColumnElement[Any]:
        return type_coerce(self._raw_text(doc, keys), Text)

    def _raw_text(self, doc: ColumnElement[Any], keys: Sequence[str]) -> ColumnElement[Any]:
        if self.dialect == "postgresql":
            if not keys:
                return doc.op("#>>")(cast(literal("{}"), postgresql.ARRAY(Text)))
            return func.jsonb_extract_path_text(doc, *[bindparam(None, k, type_=String) for k in keys])
        if self.dialect == "sqlite":
            return func.json_extract(doc, bindparam(None, _path(keys), type_=String))
        return func.json_unquote(self._element(doc, keys))

    def text(self, doc: ColumnElement[Any], keys: Sequence[str]) -> ColumnElement[Any]:
        """The string at ``keys``, NULL unless it is a JSON string."""
        kind = self.typeof(doc, keys)
        return case((kind == STRING_TYPE[self.dialect], self._text(doc, keys)), else_=None)

    def boolean_is(self, doc: ColumnElement[Any], keys: Sequence[str], value: bool) -> ColumnElement[bool]:
        """True where the value at ``keys`` is the JSON boolean ``value``."""
        kind = self.typeof(doc, keys)
        if self.dialect == "sqlite":
            return kind == ("true" if value else "false")
        wanted = "BOOLEAN" if self.dialect == "mysql" else "boolean"
        return (kind == wanted) & (self._text(doc, keys) == ("true" if value else "false"))

    def present(self, doc: ColumnElement[Any], keys: Sequence[str]) -> ColumnElement[bool]:
        """True where there is a value at ``keys`` and it is not JSON null."""
        kind = self.typeof(doc, keys)
        return kind.is_not(None) & (kind != NULL_TYPE[self.dialect])


_ = Float  # the type as_double results carry

"""Rows of a prebuilt statement turned into records that decode their costly fields on first access.

A run view, a cache look-up or a page of runs reads rows whose JSON columns (parameters,
configuration, cache-key components, environment) and timestamps cost more to decode than
the query costs to run; most callers read none of them (a run view shows step names, statuses
and edges). A :class:`Shape` says, for one record class and one statement's columns, which
fields are set at once (plain strings and numbers, statuses) and which are left as stored and
decoded by the record itself on first read (:class:`~pipeledger.models.LazyFields`).

On the driver session rows come as the driver returned them with each column's result
processor, which becomes the field's decoder; on a Core session (fast path off, SQL observed)
Core has converted every value already and nothing is left to decode.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Generic, TypeVar

from pipeledger.models import Decoder, LazyFields, lazy_record

R = TypeVar("R", bound=LazyFields)
Builder = Callable[..., Any]


def enum_lookup(enum_class: Any) -> Callable[[Any], Any]:
    """The member of ``enum_class`` with a stored value: a dict look-up (a call of the enum class
    costs ~0.5 µs, as much as a small row)."""
    members: Mapping[Any, Any] = enum_class._value2member_map_

    def convert(value: Any) -> Any:
        found = members.get(value)
        return found if found is not None else enum_class(value)

    return convert


def _then(first: Decoder, second: Decoder) -> Decoder:
    if first is None:
        return second
    if second is None:
        return first
    return lambda value: second(first(value))


class Shape(Generic[R]):
    """How a statement's rows become records of ``cls``.

    Args:
        cls: a :class:`~pipeledger.models.LazyFields` dataclass.
        keys: the statement's column keys, in order.
        lazy: fields decoded on first access (none with a plain default: see
            :func:`~pipeledger.models.no_value`).
        convert: a conversion after the column's processor (e.g. a status string to ``Status``).
        prefix: the prefix of the record's columns in ``keys`` (``a_`` for ``a_id``...).
        given: fields not read from the row: the caller passes them to the builder.
    """

    def __init__(
        self,
        cls: type[R],
        keys: Sequence[str],
        *,
        lazy: Collection[str] = (),
        convert: Mapping[str, Decoder] | None = None,
        prefix: str = "",
        given: Collection[str] = (),
    ) -> None:
        self.cls = cls
        index = {key: i for i, key in enumerate(keys)}
        convert = dict(convert or {})
        self._fields: list[tuple[str, int, Decoder, bool]] = []
        for field in dataclasses.fields(cls):  # type: ignore[arg-type]  # a dataclass by contract
            if field.name in given:
                continue
            self._fields.append((field.name, index[prefix + field.name], convert.get(field.name), field.name in lazy))
        self._bound: dict[tuple[Decoder, ...], Builder] = {}
        self._last: tuple[Sequence[Decoder], Builder] | None = None

    def builder(self, processors: Sequence[Decoder]) -> Builder:
        """A function ``build(row, **given) -> record`` for rows with these column processors."""
        last = self._last
        if last is not None and last[0] is processors:  # the driver session's tuple, the same every time
            return last[1]
        key = tuple(processors)
        found = self._bound.get(key)
        if found is None:
            found = self._bound[key] = self._bind(key)
        self._last = (processors, found)
        return found

    def _bind(self, processors: tuple[Decoder, ...]) -> Builder:
        plain: list[tuple[str, int]] = []
        converted: list[tuple[str, int, Callable[[Any], Any]]] = []
        encoded: dict[str, tuple[int, Decoder]] = {}
        for name, index, convert, lazy in self._fields:
            decode = _then(processors[index], convert)
            if lazy:
                encoded[name] = (index, decode)
            elif decode is None:
                plain.append((name, index))
            else:
                converted.append((name, index, decode))
        cls = self.cls

        def build(row: Sequence[Any], **given: Any) -> R:
            values = {name: row[index] for name, index in plain}
            for name, index, decode in converted:
                value = row[index]
                values[name] = None if value is None else decode(value)
            if given:
                values.update(given)
            return lazy_record(cls, values, row, encoded)

        return build


def plain_record(cls: type[Any], values: dict[str, Any]) -> Any:
    """An instance of the frozen dataclass ``cls`` with exactly ``values`` as its fields, without
    its constructor (which sets each field through ``object.__setattr__``)."""
    record = object.__new__(cls)
    object.__setattr__(record, "__dict__", values)
    return record

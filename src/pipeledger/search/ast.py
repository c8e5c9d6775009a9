"""The syntax tree of a search filter, as :mod:`.grammar` parses it and :mod:`.fields` checks it.

Every node keeps ``pos``, the 0-based column in the filter where it starts, so a type error
can put its caret there. After :func:`pipeledger.search.parse_filter` every comparison names a
:class:`Field` of the searched entity and holds values of that field's type.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias


class Entity(str, enum.Enum):
    """What a search returns."""

    RUN = "run"
    STEP = "step"
    ARTIFACT = "artifact"


class FieldKind(str, enum.Enum):
    """Where a field's value lives."""

    ATTRIBUTE = "attribute"  # a column of the entity (or of its run, pipeline, producer)
    PARAM = "param"  # a value in the parameters document (runs, steps)
    METRIC = "metric"  # key/value metadata (runs: of their steps; steps, artifacts: their own)
    TAG = "tag"  # the entity's tags


class ValueType(str, enum.Enum):
    """The type of a field, and so of the values it is compared with."""

    TEXT = "text"
    NUMBER = "number"
    BOOLEAN = "boolean"
    TIME = "time"
    DURATION = "duration"  # seconds, as a number; literals like 90s, 5m, 2h, 7d
    STATUS = "status"  # text from a fixed set
    JSON = "json"  # params.X and metrics.X: text, number or boolean, chosen by the literal


@dataclass(frozen=True)
class Field:
    """A checked identifier: ``name`` as written (canonical case), what it reads, its type.

    ``path`` is the parameter path (``params.opt.name`` -> ``("opt", "name")``) or, for metrics,
    ``(key,)`` or ``(step, key)``. ``nullable``: whether the value can be absent.
    """

    name: str
    kind: FieldKind
    type: ValueType
    path: tuple[str, ...] = ()
    nullable: bool = False


Scalar: TypeAlias = "str | int | float | bool | datetime"


@dataclass(frozen=True)
class Literal:
    """A value in the filter. ``kind`` is the literal's own type (a string literal compared with
    a time field is checked and becomes a datetime, kind ``time``)."""

    value: Scalar
    kind: ValueType
    pos: int


@dataclass(frozen=True)
class Name:
    """An identifier as written (before checking): dotted parts and where it starts."""

    parts: tuple[str, ...]
    pos: int

    @property
    def text(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class Compare:
    """``field op value``: op is one of ``= != < <= > >=``, ``in``/``not in`` (value is a tuple),
    ``like``/``not like``/``ilike``/``not ilike`` (a text pattern), ``is null``/``is not null``
    (value None)."""

    field: Field | Name
    op: str
    value: Literal | tuple[Literal, ...] | None
    pos: int


@dataclass(frozen=True)
class Lineage:
    """``upstream_of('ID')`` / ``downstream_of('ID', depth)``: the entity is reached by walking
    lineage from artifact ``artifact_id`` (at most ``depth`` steps away; None: no limit)."""

    direction: str  # "upstream" | "downstream"
    artifact_id: str
    depth: int | None
    pos: int


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]
    pos: int


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]
    pos: int


@dataclass(frozen=True)
class Not:
    item: Node
    pos: int


Node: TypeAlias = "Compare | Lineage | And | Or | Not"


@dataclass(frozen=True)
class OrderKey:
    """One ``order_by`` item: a checked field and its direction."""

    field: Field
    descending: bool

"""The identifiers each search knows, their types, and the type check of a parsed filter.

Runs: ``id name pipeline project status started ended duration git.sha git.dirty number tag``,
``params.X`` (pipeline parameters, nested: ``params.opt.name``), ``metrics.KEY`` (metadata any
of its steps logged) and ``metrics.STEP.KEY`` (that step's). Step runs: ``id step run pipeline
project status started ended duration cached cache_key tag``, ``params.X`` (the step's parameters) and
``metrics.KEY`` (its own metadata). Artifacts: ``id type data_type size content_hash producer
run pipeline project created uri tag`` and ``metrics.KEY`` (the artifact's metadata).
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timezone

from pipeledger.exceptions import QueryError
from pipeledger.models import Status
from pipeledger.search.ast import (
    And,
    Compare,
    Entity,
    Field,
    FieldKind,
    Lineage,
    Literal,
    Name,
    Node,
    Not,
    Or,
    ValueType,
)

T, N, B, TM, D, S = (
    ValueType.TEXT,
    ValueType.NUMBER,
    ValueType.BOOLEAN,
    ValueType.TIME,
    ValueType.DURATION,
    ValueType.STATUS,
)

#: Attribute fields of each entity: name -> (type, nullable).
ATTRIBUTES: dict[Entity, dict[str, tuple[ValueType, bool]]] = {
    Entity.RUN: {
        "id": (T, False),
        "name": (T, False),
        "pipeline": (T, False),
        "project": (T, False),
        "status": (S, False),
        "started": (TM, False),
        "ended": (TM, True),
        "duration": (D, True),
        "git.sha": (T, True),
        "git.dirty": (B, True),
        "number": (N, False),
    },
    Entity.STEP: {
        "id": (T, False),
        "step": (T, False),
        "run": (T, False),
        "pipeline": (T, False),
        "project": (T, False),
        "status": (S, False),
        "started": (TM, False),
        "ended": (TM, True),
        "duration": (D, True),
        "cached": (B, False),
        "cache_key": (T, True),
    },
    Entity.ARTIFACT: {
        "id": (T, False),
        "type": (T, False),
        "data_type": (T, False),
        "size": (N, False),
        "content_hash": (T, False),
        "producer": (T, True),
        "run": (T, True),
        "pipeline": (T, True),
        "project": (T, True),
        "created": (TM, False),
        "uri": (T, False),
    },
}

HAS_PARAMS = {Entity.RUN, Entity.STEP}
_PARAM_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}\Z")
STATUSES = [s.value for s in Status]

#: Operators each type accepts.
_ORDERED = {"=", "!=", "<", "<=", ">", ">=", "in", "not in", "is null", "is not null"}
_TEXTUAL = _ORDERED | {"like", "not like", "ilike", "not ilike"}
OPERATORS: dict[ValueType, set[str]] = {
    T: _TEXTUAL,
    N: _ORDERED,
    B: {"=", "!=", "is null", "is not null"},
    TM: _ORDERED,
    D: _ORDERED,
    S: {"=", "!=", "in", "not in"},
    ValueType.JSON: _TEXTUAL,
}
TAG_OPERATORS = {"=", "!=", "in", "not in", "like", "not like", "ilike", "not ilike", "is null", "is not null"}


def known_names(entity: Entity) -> str:
    """The identifiers of ``entity``'s search, for error messages."""
    extra = ["tag", "metrics.KEY"]
    if entity is Entity.RUN:
        extra.append("metrics.STEP.KEY")
    if entity in HAS_PARAMS:
        extra.insert(0, "params.NAME")
    return ", ".join([*ATTRIBUTES[entity], *extra])


def resolve(name: Name, entity: Entity, text: str) -> Field:
    """The field ``name`` reads in a search of ``entity``.

    Raises:
        QueryError: an unknown identifier (listing the known ones) or a malformed path.
    """
    parts = name.parts
    dotted = name.text
    head = parts[0].lower()
    attributes = ATTRIBUTES[entity]
    if dotted.lower() in attributes:
        value_type, nullable = attributes[dotted.lower()]
        return Field(dotted.lower(), FieldKind.ATTRIBUTE, value_type, nullable=nullable)
    if head == "tag" and len(parts) == 1:
        return Field("tag", FieldKind.TAG, T, nullable=True)
    if head == "params" and entity in HAS_PARAMS:
        path = parts[1:]
        if not path:
            raise QueryError("expected params.NAME: which parameter?", text, name.pos)
        for part in path:
            if not _PARAM_KEY.match(part):
                raise QueryError(
                    f"parameter name {part!r} is not an identifier (letters, digits and _)", text, name.pos
                )
        return Field(dotted, FieldKind.PARAM, ValueType.JSON, tuple(path), nullable=True)
    if head == "metrics":
        path = parts[1:]
        if not path:
            raise QueryError("expected metrics.KEY: which metric?", text, name.pos)
        if entity is Entity.RUN and len(path) > 2:
            raise QueryError(
                "expected metrics.KEY or metrics.STEP.KEY: back-quote a key with dots (metrics.train.`val.acc`)",
                text,
                name.pos,
            )
        if entity is not Entity.RUN and len(path) > 1:
            raise QueryError(
                f"expected metrics.KEY ({entity.value}s have metrics of their own only): "
                "back-quote a key with dots (metrics.`val.acc`)",
                text,
                name.pos,
            )
        for part in path:
            if not part or len(part) > 255:
                raise QueryError("a metric or step name is 1 to 255 characters", text, name.pos)
        return Field(dotted, FieldKind.METRIC, ValueType.JSON, tuple(path), nullable=True)
    raise QueryError(f"unknown name {dotted[:60]!r} for {entity.value}s; known: {known_names(entity)}", text, name.pos)


def check(node: Node, entity: Entity, text: str) -> Node:
    """``node`` with every name resolved and every value converted to its field's type.

    Raises:
        QueryError: an unknown name, an operator the field's type has not, or a value of the
            wrong type, with a caret under it.
    """
    if isinstance(node, (And, Or)):
        return replace(node, items=tuple(check(item, entity, text) for item in node.items))
    if isinstance(node, Not):
        return replace(node, item=check(node.item, entity, text))
    if isinstance(node, Lineage):
        return node
    assert isinstance(node, Compare) and isinstance(node.field, Name)
    field = resolve(node.field, entity, text)
    allowed = TAG_OPERATORS if field.kind is FieldKind.TAG else OPERATORS[field.type]
    if node.op not in allowed:
        raise QueryError(
            f"{field.name} ({_type_name(field)}) cannot be compared with {node.op!r}; "
            f"it takes {', '.join(sorted(allowed))}",
            text,
            node.pos,
        )
    if node.op in ("is null", "is not null") and not field.nullable:
        raise QueryError(f"{field.name} is never null", text, node.pos)
    value: Literal | tuple[Literal, ...] | None
    if node.value is None:
        value = None
    elif isinstance(node.value, tuple):
        value = tuple(convert(v, field, node.op, text) for v in node.value)
        if field.type is ValueType.JSON and len({v.kind for v in value}) > 1:
            raise QueryError(f"the values of {field.name} in (...) must all be of one type", text, value[0].pos)
    else:
        value = convert(node.value, field, node.op, text)
    return Compare(field, node.op, value, node.pos)


def _type_name(field: Field) -> str:
    return "text" if field.kind is FieldKind.TAG else field.type.value


def convert(literal: Literal, field: Field, op: str, text: str) -> Literal:
    """``literal`` as a value of ``field``'s type.

    Raises:
        QueryError: it cannot be one.
    """
    wanted = field.type
    kind = literal.kind
    if op.endswith("like"):
        return literal  # the parser made sure it is a text pattern
    if wanted is ValueType.JSON:
        if kind in (T, N, B):
            return literal
        if kind is D:
            return replace(literal, kind=N)
        raise QueryError(f"{field.name} is compared with text, a number or true/false", text, literal.pos)
    if field.kind is FieldKind.TAG or wanted is T:
        if kind is not T:
            raise QueryError(f"{field.name} is text: put the value in quotes", text, literal.pos)
        return literal
    if wanted is S:
        if kind is not T or literal.value not in STATUSES:
            raise QueryError(f"status is one of {', '.join(STATUSES)}", text, literal.pos)
        return literal
    if wanted is N:
        if kind is not N:
            raise QueryError(f"{field.name} is a number", text, literal.pos)
        return literal
    if wanted is B:
        if kind is not B:
            raise QueryError(f"{field.name} is true or false", text, literal.pos)
        return literal
    if wanted is D:
        if kind not in (N, D):
            raise QueryError(f"{field.name} is a duration: seconds, or 90s, 5m, 2h, 7d", text, literal.pos)
        return replace(literal, kind=D, value=float(literal.value))  # type: ignore[arg-type]
    if wanted is TM:
        if kind is TM:
            return literal
        if kind is T:
            return replace(literal, kind=TM, value=parse_time(str(literal.value), text, literal.pos))
        raise QueryError(
            f"{field.name} is a time: 'YYYY-MM-DD', 'YYYY-MM-DD HH:MM[:SS]' (UTC unless it has an offset) "
            "or now() - 7d",
            text,
            literal.pos,
        )
    raise AssertionError(wanted)  # pragma: no cover


def parse_time(value: str, text: str, pos: int) -> datetime:
    """A time literal as an aware datetime (UTC when it names no offset).

    Raises:
        QueryError: not an ISO date or date and time.
    """
    try:
        if not re.match(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(value)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise QueryError(
            f"{value[:40]!r} is not a time: write 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM[:SS]' "
            "(UTC unless it has an offset)",
            text,
            pos,
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        raise QueryError(f"{value[:40]!r} is out of range", text, pos) from None

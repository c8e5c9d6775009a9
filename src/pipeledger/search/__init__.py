"""One filter language for runs, step runs and artifacts (see ``docs/searching.md``).

:func:`parse_filter` turns a filter into a checked syntax tree (:mod:`.ast`), :func:`parse_order`
an ``order_by`` list into keys, and :class:`SearchQuery` carries both, with the page size and
the cursor, to a store: the SQL store compiles it into one statement with bound parameters
(:mod:`pipeledger.metadata_store.sql.search_queries`). Nothing here touches a database.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pipeledger.exceptions import QueryError
from pipeledger.models import utcnow
from pipeledger.search.ast import Entity, Field, FieldKind, Node, OrderKey, ValueType
from pipeledger.search.fields import check, resolve
from pipeledger.search.grammar import Parser, tokenize

__all__ = ["Entity", "SearchQuery", "build_query", "parse_filter", "parse_order"]

DEFAULT_LIMIT = 50
MAX_LIMIT = 10_000
DEFAULT_ORDER = {Entity.RUN: "started desc", Entity.STEP: "started desc", Entity.ARTIFACT: "created desc"}


def parse_filter(text: str | None, entity: Entity | str, *, now: datetime | None = None) -> Node | None:
    """The checked syntax tree of ``text`` for a search of ``entity``; None for no filter.

    ``now`` is what ``now()`` means (default: the current time).

    Raises:
        QueryError: a syntax or type error, with the filter and a caret under it.
    """
    if text is None:
        return None
    if not isinstance(text, str):
        raise QueryError(f"a filter is text, not {type(text).__name__}")
    node = Parser(text, now=now or utcnow()).parse()
    return None if node is None else check(node, Entity(entity), text)


def parse_order(order_by: Sequence[str] | str | None, entity: Entity | str) -> list[OrderKey]:
    """``["metrics.accuracy desc", "started"]`` as order keys (ascending unless ``desc``).

    Raises:
        QueryError: an unknown or unorderable field, or a malformed item.
    """
    entity = Entity(entity)
    items = [order_by] if isinstance(order_by, str) else list(order_by or [DEFAULT_ORDER[entity]])
    if len(items) > 5:
        raise QueryError("order_by has at most 5 fields")
    keys: list[OrderKey] = []
    for item in items:
        if not isinstance(item, str):
            raise QueryError(f"an order_by item is text such as 'started desc', not {type(item).__name__}")
        parser = Parser(item, now=utcnow())
        token = parser.token
        if token.kind not in ("ident", "quoted"):
            raise parser.error("a field to order by, such as started or metrics.accuracy")
        name = parser.name()
        descending = False
        if parser.token.kind == "ident" and parser.token.text.lower() in ("asc", "desc"):
            descending = parser.advance().text.lower() == "desc"
        if parser.token.kind != "end":
            raise parser.error("'asc', 'desc' or the end of the item")
        field = resolve(name, entity, item)
        if field.kind is FieldKind.TAG:
            raise QueryError("cannot order by tag (a run has many)", item, name.pos)
        if field.kind is FieldKind.PARAM or field.kind is FieldKind.METRIC:
            field = Field(field.name, field.kind, ValueType.NUMBER, field.path, nullable=True)
        keys.append(OrderKey(field, descending))
    return keys


@dataclass(frozen=True)
class SearchQuery:
    """A checked search: what to return, the filter, the order, the page size and the cursor
    (the sort values and id of the last row of the previous page, or None for the first)."""

    entity: Entity
    filter: Node | None
    order: tuple[OrderKey, ...]
    limit: int
    after: tuple[tuple[Any, ...], str] | None
    fingerprint: str
    projects: frozenset[str] | None = None
    """Only records of these projects (the server's restriction to what its caller may read);
    None: every project. Not part of the fingerprint: a page token stays valid."""

    def page_token(self, values: Sequence[Any], last_id: str) -> str:
        """The token of the page after a row with these sort ``values`` and id."""
        encoded = [v.isoformat() if isinstance(v, datetime) else v for v in values]
        raw = json.dumps({"q": self.fingerprint, "v": encoded, "id": last_id}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def build_query(
    entity: Entity | str,
    filter: str | None = None,
    order_by: Sequence[str] | str | None = None,
    limit: int | None = None,
    page_token: str | None = None,
    *,
    now: datetime | None = None,
) -> SearchQuery:
    """Check every argument of a search and bundle them.

    Raises:
        QueryError: a bad filter, order, limit or page token.
    """
    entity = Entity(entity)
    node = parse_filter(filter, entity, now=now)
    order = tuple(parse_order(order_by, entity))
    if limit is None:
        limit = DEFAULT_LIMIT
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"limit is a whole number from 1 to {MAX_LIMIT}, not {limit!r}")
    order_text = [f"{k.field.name} {'desc' if k.descending else 'asc'}" for k in order]
    fingerprint = hashlib.sha256(json.dumps([entity.value, filter or "", order_text]).encode()).hexdigest()[:16]
    after = None if page_token is None else _decode_token(page_token, fingerprint, order)
    return SearchQuery(entity, node, order, limit, after, fingerprint)


def _decode_token(token: str, fingerprint: str, order: Sequence[OrderKey]) -> tuple[tuple[Any, ...], str]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
        if raw["q"] != fingerprint:
            raise QueryError(
                "this page token belongs to another search (other filter or order): start again without it"
            )
        values = list(raw["v"])
        last_id = raw["id"]
        if len(values) != len(order) or not isinstance(last_id, str):
            raise ValueError(token)
        decoded: list[Any] = []
        for key, value in zip(order, values):
            if value is None:
                decoded.append(None)
            elif key.field.type is ValueType.TIME:
                decoded.append(datetime.fromisoformat(value).astimezone(timezone.utc))
            elif key.field.type in (ValueType.NUMBER, ValueType.DURATION):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(value)
                decoded.append(value)
            elif key.field.type is ValueType.BOOLEAN:
                decoded.append(bool(value))
            else:
                decoded.append(str(value))
        return tuple(decoded), last_id
    except QueryError:
        raise
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise QueryError("malformed page token: pass next_page_token of the previous page as it was") from None


_ = tokenize  # re-exported for tools that highlight filters

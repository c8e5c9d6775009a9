"""``search`` of the SQL store: one statement per page (see :mod:`.search_compile`).

The query language and its compiler are imported on the first search, not with the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeledger.metadata_store.sql import records
from pipeledger.metadata_store.sql.common import SqlQueries
from pipeledger.metadata_store.sql.tag_queries import tags_of
from pipeledger.models import EntityKind, SearchPage

if TYPE_CHECKING:
    from pipeledger.search import SearchQuery


class SearchQueries(SqlQueries):
    """``_search`` of :class:`SqlMetadataStore`."""

    def _search(self, query: SearchQuery) -> SearchPage:
        from pipeledger.metadata_store.sql.search_compile import SearchCompiler
        from pipeledger.search.ast import Entity

        statement, _keys = SearchCompiler(query, self.db.dialect).statement()
        width = len(query.order)
        with self.db.read() as conn:
            rows = conn.execute(statement).all()
            more = len(rows) > query.limit
            rows = rows[: query.limit]
            items: list[Any]
            if query.entity is Entity.RUN:
                tags = tags_of(conn, EntityKind.RUN, [r.id for r in rows])
                items = [records.run(r, tags.get(r.id, ())) for r in rows]
            elif query.entity is Entity.STEP:
                items = [records.step_run(r) for r in rows]
            else:
                items = [records.artifact(r) for r in rows]
        token = None
        if more and rows:
            last = rows[-1]._mapping
            token = query.page_token([_plain(last[f"k{i}"]) for i in range(width)], last["id"])
        return SearchPage(items, token)


def _plain(value: Any) -> Any:
    """A sort value as JSON can carry it (drivers may hand back Decimal)."""
    from decimal import Decimal

    return float(value) if isinstance(value, Decimal) else value

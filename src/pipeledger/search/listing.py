"""Search for stores without a query engine of their own: what ``list_runs`` can answer.

ML Metadata (the ``kubeflow`` store) and custom stores get this through
:meth:`MetadataStore._search`'s default: runs only, a filter made of ``pipeline = '...'``,
``status = '...'`` and ``started >= TIME`` joined with ``and``, ordered by ``started`` (either
way). Each condition becomes an argument of ``list_runs``, which such a store runs itself (ML
Metadata: its ``filter_query``). Everything else raises
:class:`~pipeledger.exceptions.UnsupportedOperationError` naming what it cannot run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeledger.exceptions import UnsupportedOperationError
from pipeledger.models import SearchPage
from pipeledger.search import SearchQuery
from pipeledger.search.ast import And, Compare, Entity, Field, FieldKind, Literal, Node

if TYPE_CHECKING:
    from pipeledger.metadata_store.base import MetadataStore

SUPPORTED = (
    "runs filtered by pipeline = '...', status = '...' and started >= TIME (joined with and), ordered by started"
)


def _refuse(store: MetadataStore, what: str) -> UnsupportedOperationError:
    return UnsupportedOperationError(
        f"the {store.flavor} metadata store cannot search {what}; it can search {SUPPORTED}"
    )


def _arguments(store: MetadataStore, node: Node | None) -> dict[str, Any]:
    if node is None:
        return {}
    items = node.items if isinstance(node, And) else (node,)
    found: dict[str, Any] = {}
    for item in items:
        if (
            not isinstance(item, Compare)
            or not isinstance(item.field, Field)
            or item.field.kind is not FieldKind.ATTRIBUTE
        ):
            raise _refuse(store, "with or, not, tags, params, metrics or lineage")
        key = {("pipeline", "="): "pipeline", ("status", "="): "status", ("started", ">="): "since"}.get(
            (item.field.name, item.op)
        )
        if key is None or key in found or not isinstance(item.value, Literal):
            raise _refuse(store, f"by {item.field.name} {item.op}")
        found[key] = item.value.value
    return found


def search_by_listing(store: MetadataStore, query: SearchQuery) -> SearchPage:
    """One page of ``query`` through ``store.list_runs``.

    Raises:
        UnsupportedOperationError: the query asks for more than ``list_runs`` can do.
    """
    if query.entity is not Entity.RUN:
        raise _refuse(store, f"{query.entity.value}s")
    if len(query.order) != 1 or query.order[0].field.name != "started":
        raise _refuse(store, "in another order")
    arguments = _arguments(store, query.filter)
    if query.projects is not None:
        arguments["projects"] = query.projects
    newest_first = query.order[0].descending
    offset = 0
    if query.after is not None:  # the cursor's place among the runs (stores without keyset reads)
        (after_start,), after_id = query.after
        before = store.list_runs(**arguments, newest_first=newest_first)
        ids = [run.id for run in before]
        if after_id in ids:
            offset = ids.index(after_id) + 1
        else:
            offset = sum(
                1 for r in before if (r.start_time > after_start if newest_first else r.start_time < after_start)
            )
    runs = store.list_runs(**arguments, newest_first=newest_first, limit=query.limit + 1, offset=offset)
    more = len(runs) > query.limit
    runs = runs[: query.limit]
    token = query.page_token([runs[-1].start_time], runs[-1].id) if more and runs else None
    return SearchPage(list(runs), token)

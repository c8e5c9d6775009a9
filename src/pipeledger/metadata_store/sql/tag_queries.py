"""Tag queries of the SQL store: the ``tags`` table (one row per entity and tag)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from pipeledger.exceptions import NotFoundError
from pipeledger.metadata_store.sql.common import SqlQueries, chunks
from pipeledger.metadata_store.sql.schema import artifacts, entity_tags, pipeline_runs, step_runs
from pipeledger.models import EntityKind

_TABLES = {EntityKind.RUN: pipeline_runs, EntityKind.STEP_RUN: step_runs, EntityKind.ARTIFACT: artifacts}
_TIMES = {
    EntityKind.RUN: pipeline_runs.c.start_time,
    EntityKind.STEP_RUN: step_runs.c.start_time,
    EntityKind.ARTIFACT: artifacts.c.created_at,
}
"""The time each kind's ``tags.entity_time`` copies (its default search order)."""


def tag_values(kind: EntityKind, entity_id: str, entity_time: datetime, tags: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of ``tags`` for one entity's (distinct) tags; ``entity_time`` is the entity's
    ``start_time`` (runs, step runs) or ``created_at`` (artifacts)."""
    return [
        {"entity_kind": kind.value, "entity_id": entity_id, "tag": tag, "entity_time": entity_time}
        for tag in dict.fromkeys(tags)
    ]


def tags_of(conn: Connection, kind: EntityKind, ids: Sequence[str]) -> dict[str, list[str]]:
    """The tags of these entities, sorted: ``{entity_id: [tag, ...]}`` (untagged ones absent)."""
    found: dict[str, list[str]] = {}
    t = entity_tags.c
    for chunk in chunks(ids):
        query = (
            select(t.entity_id, t.tag)
            .where(t.entity_kind == kind.value, t.entity_id.in_(chunk))
            .order_by(t.entity_id, t.tag)
        )
        for entity_id, tag in conn.execute(query):
            found.setdefault(entity_id, []).append(tag)
    return found


class TagQueries(SqlQueries):
    """``add_tags``, ``remove_tags`` and ``get_tags`` of :class:`SqlMetadataStore`."""

    def _change_tags(self, kind: EntityKind, entity_id: str, add: Sequence[str], remove: Sequence[str]) -> None:
        table = _TABLES[kind]
        t = entity_tags.c

        def work(conn: Connection) -> None:
            # Lock the entity's row: a concurrent deletion of its run waits or wins (NotFoundError).
            locked = select(table.c.id, _TIMES[kind]).where(table.c.id == entity_id)
            if conn.dialect.name != "sqlite":
                locked = locked.with_for_update()
            row = conn.execute(locked).first()
            if row is None:
                raise NotFoundError(f"no {kind.value.replace('_', ' ')} with id {entity_id!r}")
            if remove:
                conn.execute(
                    delete(entity_tags).where(
                        t.entity_kind == kind.value, t.entity_id == entity_id, t.tag.in_(list(remove))
                    )
                )
            if add:
                present = set(
                    conn.execute(
                        select(t.tag).where(t.entity_kind == kind.value, t.entity_id == entity_id, t.tag.in_(list(add)))
                    ).scalars()
                )
                new = [tag for tag in dict.fromkeys(add) if tag not in present]
                if new:
                    conn.execute(insert(entity_tags), tag_values(kind, entity_id, row[1], new))

        self.db.run_transaction(work)

    def _get_tags(self, kind: EntityKind, entity_ids: Sequence[str]) -> dict[str, list[str]]:
        with self.db.read() as conn:
            return tags_of(conn, kind, entity_ids)

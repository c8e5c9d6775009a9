"""The server's audit log in SQL (table ``audit_events``): append in batches, list with filters,
prune by age. Used by :mod:`pipeledger.server.security.audit` (the server's writer and its
admin route) and by ``pipeledger audit`` on a machine that reaches the database itself."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from pipeledger.metadata_store.sql.engine import Database
from pipeledger.metadata_store.sql.schema import audit_events
from pipeledger.models import AuditEvent, AuditFilter

#: Longest ``detail`` and ``target`` kept (longer ones are cut, with an ellipsis).
MAX_DETAIL = 2000
MAX_TARGET = 1024


def append_events(db: Database, events: Sequence[AuditEvent]) -> None:
    """Insert ``events`` (their ``id`` is ignored) in one transaction."""
    if not events:
        return
    rows = [_row(event) for event in events]
    db.run_transaction(lambda conn: conn.execute(insert(audit_events), rows))


def list_events(db: Database, where: AuditFilter) -> list[AuditEvent]:
    """The events matching ``where``, newest first, at most ``where.limit``."""
    query = select(audit_events)
    c = audit_events.c
    if where.principal is not None:
        query = query.where(c.principal == where.principal)
    if where.action is not None:
        if where.action.endswith("*"):
            prefix = where.action[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(c.action.like(prefix + "%", escape="\\"))
        else:
            query = query.where(c.action == where.action)
    if where.outcome is not None:
        query = query.where(c.outcome == where.outcome)
    if where.project is not None:
        query = query.where(c.project == where.project)
    if where.since is not None:
        query = query.where(c.at >= where.since)
    if where.until is not None:
        query = query.where(c.at < where.until)
    query = query.order_by(c.at.desc(), c.id.desc()).limit(where.limit)
    with db.read() as conn:
        return [_event(row._mapping) for row in conn.execute(query)]


def prune_events(db: Database, before: datetime) -> int:
    """Delete the events older than ``before``; how many went."""

    def work(conn: Connection) -> int:
        return int(conn.execute(delete(audit_events).where(audit_events.c.at < before)).rowcount or 0)

    return db.run_transaction(work)


def _cut(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def _row(event: AuditEvent) -> dict[str, Any]:
    row = asdict(event)
    row.pop("id")
    row["detail"] = _cut(event.detail, MAX_DETAIL)
    row["target"] = _cut(event.target, MAX_TARGET)
    for key in ("principal", "project", "remote", "action"):
        row[key] = _cut(row[key], 255)
    return row


def _event(row: Any) -> AuditEvent:
    return AuditEvent(**{key: row[key] for key in AuditEvent.__dataclass_fields__})

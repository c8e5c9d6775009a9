"""Reading and pruning a server's audit log from a stack's metadata store, whichever side of
the server it is on: a ``rest`` store asks the server (its admin routes, server administrators
only); a SQL store (on the server's machine, holding the database's credentials) reads the
``audit_events`` table itself. ``pipeledger audit list|prune`` use these."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import TypeAdapter

from pipeledger.exceptions import UnsupportedOperationError
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import AuditEvent, AuditFilter, utcnow

_EVENTS = TypeAdapter(list[AuditEvent])


def audit_events(store: MetadataStore, where: AuditFilter) -> list[AuditEvent]:
    """The audit events matching ``where``, newest first.

    Raises:
        UnsupportedOperationError: the store keeps no audit log (neither SQL nor a server).
        the server's error through a ``rest`` store (403: not a server administrator).
    """
    from pipeledger.metadata_store.rest.store import RestMetadataStore
    from pipeledger.metadata_store.sql.store import SqlMetadataStore

    if isinstance(store, RestMetadataStore):
        params: dict[str, Any] = {"limit": where.limit}
        for key in ("principal", "action", "outcome", "project"):
            if getattr(where, key) is not None:
                params[key] = getattr(where, key)
        for key in ("since", "until"):
            moment: datetime | None = getattr(where, key)
            if moment is not None:
                params[key] = moment.astimezone(timezone.utc).isoformat()
        return _EVENTS.validate_python(store.transport.request("GET", "/audit/events", params=params))
    if isinstance(store, SqlMetadataStore):
        from pipeledger.metadata_store.sql.audit_queries import list_events

        return list_events(store.db, where)
    raise _unsupported(store)


def prune_audit(store: MetadataStore, older_than: timedelta) -> int:
    """Delete the audit events older than ``older_than`` now; how many went (errors as
    :func:`audit_events`)."""
    from pipeledger.metadata_store.rest.store import RestMetadataStore
    from pipeledger.metadata_store.sql.store import SqlMetadataStore

    if isinstance(store, RestMetadataStore):
        days = int(older_than.total_seconds() // 86400)
        answer = store.transport.request("POST", "/audit/prune", {"older_than_days": days})
        return int(answer["deleted"])
    if isinstance(store, SqlMetadataStore):
        from pipeledger.metadata_store.sql.audit_queries import prune_events

        return prune_events(store.db, utcnow() - older_than)
    raise _unsupported(store)


def _unsupported(store: MetadataStore) -> UnsupportedOperationError:
    return UnsupportedOperationError(
        f"{type(store).__name__} keeps no audit log: use a stack whose metadata store is the server "
        "(rest) or its database"
    )

"""What the janitor asks the SQL store before it removes files: the store's identity, the
state of the step runs whose directories it finds, and what deleting a run would remove."""

from __future__ import annotations

import secrets
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import Connection, insert, select

from pipeledger.metadata_store.sql.common import SqlQueries, chunks
from pipeledger.metadata_store.sql.maintenance_queries import deletion_plan
from pipeledger.metadata_store.sql.schema import pipeline_runs, step_runs, store_identity
from pipeledger.models import RunDeletion, Status, StoreIdentity, new_id, utcnow


class OwnershipQueries(SqlQueries):
    """The store's id, step run states and deletion previews."""

    _identity: StoreIdentity | None = None

    def store_identity(self) -> StoreIdentity | None:
        if self._identity is None:
            with self.db.read() as conn:
                found = _read_identity(conn)
            self._identity = found or self.db.run_transaction(_identity)
        return self._identity

    def step_run_statuses(self, ids: Sequence[str], *, heartbeat_before: datetime | None = None) -> dict[str, Status]:
        found: dict[str, Status] = {}
        query = select(step_runs.c.id, step_runs.c.status, pipeline_runs.c.heartbeat_at).join(
            pipeline_runs, pipeline_runs.c.id == step_runs.c.run_id
        )
        with self.db.read() as conn:
            for chunk in chunks(ids):
                for step_run_id, status, heartbeat in conn.execute(query.where(step_runs.c.id.in_(chunk))):
                    stale = heartbeat_before is not None and heartbeat is not None and heartbeat < heartbeat_before
                    running = status == Status.RUNNING.value
                    found[step_run_id] = Status.CRASHED if running and stale else Status(status)
        return found

    def deletion_preview(self, run_id: str, *, also_deleted: Collection[str] = ()) -> RunDeletion:
        with self.db.read() as conn:
            return deletion_plan(conn, run_id, frozenset(also_deleted))


def _read_identity(conn: Connection) -> StoreIdentity | None:
    """The row of ``store_identity`` (the oldest, should there be several)."""
    columns = (store_identity.c.id, store_identity.c.token)
    row = conn.execute(select(*columns).order_by(store_identity.c.created_at).limit(1)).first()
    return None if row is None else StoreIdentity(str(row[0]), str(row[1]))


def _identity(conn: Connection) -> StoreIdentity:
    """The row of ``store_identity``, made if it is gone (migration 0004 makes it)."""
    found = _read_identity(conn)
    if found is not None:
        return found
    made = StoreIdentity(new_id(), secrets.token_hex(32))
    conn.execute(insert(store_identity).values(id=made.id, token=made.token, created_at=utcnow()))
    return made

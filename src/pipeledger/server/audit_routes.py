"""The audit log's routes, for server administrators only (``pipeledger audit list|prune``):

* ``GET /api/v1/audit/events?principal=&action=&outcome=&project=&since=&until=&limit=``: the
  events matching every filter given, newest first (``action`` may end with ``*``);
* ``POST /api/v1/audit/prune`` ``{"older_than_days": N}``: delete older events now (the server
  also does so on its own, see :mod:`pipeledger.server.security.audit`).

Anyone else gets 403, which is itself audited.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from pipeledger.exceptions import AccessDeniedError
from pipeledger.models import AuditEvent, AuditFilter
from pipeledger.server.auth import authorize, principal_of
from pipeledger.server.security.audit import AuditLog
from pipeledger.server.security.policy import Rule

#: Most events one listing returns.
MAX_LIMIT = 10_000


class Prune(BaseModel):
    """``POST /api/v1/audit/prune``: delete the events older than ``older_than_days`` days."""

    older_than_days: int = Field(ge=0, le=36_500)


class Pruned(BaseModel):
    """How many events a prune deleted."""

    deleted: int


def require_server_admin(request: Request) -> None:
    """Refuse a caller who is not a server administrator.

    Raises:
        AccessDeniedError: (403) naming what the caller lacks.
    """
    principal = principal_of(request)
    if not principal.server_admin:
        raise AccessDeniedError("only a server administrator may read or prune the audit log")


def audit_log_of(request: Request) -> AuditLog:
    """The server's audit log (made when the application starts)."""
    found: AuditLog = request.app.state.audit_log
    return found


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


def audit_router() -> APIRouter:
    """The audit log's routes (through :func:`authorize`, then server administrators only)."""
    router = APIRouter(prefix="/audit", tags=["audit"], dependencies=[Depends(authorize)])

    @router.get(
        "/events",
        name="audit.list",
        summary="Audit events, newest first (server administrators).",
        openapi_extra=Rule(None, "server", "reading the audit log").operation(),
    )
    async def events(
        request: Request,
        principal: str | None = None,
        action: str | None = Query(None, description="A route's name; a trailing * matches a prefix."),
        outcome: Literal["allowed", "denied", "failed"] | None = None,
        project: str | None = None,
        since: datetime | None = Query(None, description="Inclusive (UTC when no offset is given)."),
        until: datetime | None = Query(None, description="Exclusive (UTC when no offset is given)."),
        limit: int = Query(100, ge=1, le=MAX_LIMIT),
    ) -> list[AuditEvent]:
        require_server_admin(request)
        where = AuditFilter(principal, action, outcome, project, _utc(since), _utc(until), limit)
        log = audit_log_of(request)
        await run_in_threadpool(log.flush, 5.0)
        return await run_in_threadpool(log.sink.read, where)

    @router.post(
        "/prune",
        name="audit.prune",
        summary="Delete audit events older than N days (server administrators).",
        openapi_extra=Rule(None, "server", "pruning the audit log").operation(),
    )
    async def prune(request: Request, body: Prune) -> Pruned:
        require_server_admin(request)
        log = audit_log_of(request)
        before = log.clock().timestamp() - body.older_than_days * 86400.0
        deleted = await run_in_threadpool(log.sink.prune, datetime.fromtimestamp(before, timezone.utc))
        return Pruned(deleted=deleted)

    return router

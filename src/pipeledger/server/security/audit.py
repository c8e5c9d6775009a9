"""The audit log: who did what, when, from where, for every write and every denied request.

:class:`AuditMiddleware` sees every request under ``/api/v1`` once it is answered and records an
:class:`~pipeledger.models.AuditEvent` when the request was a write (:func:`is_write`) or was
refused: a 401 or 403, or any answer of a request that authorization marked as denied
(:func:`note_denied`: a 404 that hides an object in a project the caller cannot read). The
event names the caller (``request.state.principal``), the route (``store.create_run``), the
project and object the route or its rule noted (:func:`note`), the outcome (``allowed``,
``denied``, ``failed``), the HTTP status, the client's address and one line of detail (the
error's message). Never a secret: no header, no body, no query string goes into an event.

Events are not written on the request's path: :meth:`AuditLog.record` puts them on a queue that a
background thread writes in batches (one transaction per batch) into the store's
``audit_events`` table; :meth:`AuditLog.close` (the application's shutdown) writes what is left,
so a clean stop loses nothing. The same thread deletes events older than the retention setting
(``--audit-retention-days``, ``$PIPELEDGER_SERVER_AUDIT_RETENTION_DAYS``; 0 keeps everything)
when the server starts and then every :data:`PRUNE_INTERVAL` seconds. A store that is not SQL
(no ``audit_events`` table) gets its events as log lines of the ``pipeledger.audit`` logger.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, is_dataclass
from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeledger.metadata_store.base import MetadataStore
from pipeledger.metadata_store.rest.protocol import API_PREFIX
from pipeledger.models import AuditEvent, AuditFilter, utcnow

log = logging.getLogger("pipeledger.audit")

#: The environment variable of the retention setting, in days (0: keep every event).
RETENTION_VARIABLE = "PIPELEDGER_SERVER_AUDIT_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 90
#: Seconds between two prunings of old events (the first runs when the server starts).
PRUNE_INTERVAL = 3600.0
#: Most events written in one transaction, and the longest an event waits in the queue (s).
BATCH_SIZE = 500
BATCH_WAIT = 0.2
#: Events queued beyond this are dropped (and counted in the log): a store that cannot keep up
#: must not take the server's memory with it.
QUEUE_LIMIT = 100_000

#: Contract methods that only read (every other one, and every non-GET route, is a write).
#: tests/test_audit.py checks that every contract method is listed here or in WRITE_METHODS.
READ_METHODS = frozenset(
    {
        "list_cache_entries",
        "get_tags",
        "search",
        "get_pipeline",
        "list_pipelines",
        "get_run",
        "list_runs",
        "list_run_names",
        "count_runs",
        "get_run_steps",
        "list_step_runs",
        "get_step_run",
        "list_step_io",
        "find_cached_step",
        "latest_step_run",
        "lineage",
        "metric_history",
        "get_artifact",
        "get_metadata",
        "recorded_artifact_ids",
        "iter_artifacts",
        "integrity_problems",
        "store_identity",
        "step_run_statuses",
        "deletion_preview",
    }
)
WRITE_METHODS = frozenset(
    {
        "create_run",
        "finish_run",
        "heartbeat",
        "start_step",
        "finish_step",
        "finish_and_start",
        "record_cached_step",
        "invalidate_cache",
        "register_artifact",
        "put_metadata",
        "add_tags",
        "remove_tags",
        "change_tags",
        "mark_crashed",
        "delete_run",
    }
)
#: Argument names whose values name the object a store call touches (its audit ``target``).
_TARGET_ARGUMENTS = ("run_id", "step_run_id", "artifact_id", "entity_id", "name_or_id", "name", "pipeline")
_READ_HTTP_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def retention_days() -> int:
    """The retention setting, in days (0: keep every event)."""
    raw = os.environ.get(RETENTION_VARIABLE, "").strip()
    return int(raw) if raw.isdigit() else DEFAULT_RETENTION_DAYS


# ----------------------------------------------------------------------- what routes note


@dataclass
class AuditNote:
    """What a request's route and rule tell the audit log (``request.state.audit``)."""

    project: str | None = None
    target: str | None = None
    denied: bool = False
    detail: str | None = None


def note_of(request: Request) -> AuditNote:
    """The request's note, made on first use."""
    state = request.scope.setdefault("state", {})
    found = state.get("audit")
    if not isinstance(found, AuditNote):
        found = state["audit"] = AuditNote()
    return found


def note(request: Request, *, project: str | None = None, target: str | None = None) -> None:
    """Record the project and object the request touches (the latest value of each wins)."""
    found = note_of(request)
    if project is not None:
        found.project = project
    if target is not None:
        found.target = target


def note_denied(request: Request, reason: str, *, project: str | None = None, target: str | None = None) -> None:
    """Mark the request as denied by authorization, whatever status it is answered with (a 404
    that hides an object the caller may not read is a denial); ``reason`` is the event's detail
    (one line, no secret: the audit log is read by administrators, not by the caller)."""
    note(request, project=project, target=target)
    found = note_of(request)
    found.denied = True
    found.detail = reason


def target_of(arguments: Mapping[str, Any]) -> str | None:
    """The object a store call's ``arguments`` name: its ids and names only, never other values
    (parameters and metadata may hold anything)."""
    parts: list[str] = []
    for key, value in arguments.items():
        if isinstance(value, str) and key in _TARGET_ARGUMENTS:
            parts.append(f"{key}={value}")
        elif is_dataclass(value) and not isinstance(value, type):
            for name in ("id", "name", "run_id", "pipeline"):
                found = getattr(value, name, None)
                if isinstance(found, str) and name in {f.name for f in fields(value)}:
                    parts.append(f"{key}.{name}={found}")
    return " ".join(parts) or None


def is_write(http_method: str, action: str) -> bool:
    """Whether a request changes something: a store call of a method not in
    :data:`READ_METHODS`, or any other route called with a method other than GET/HEAD/OPTIONS."""
    if action.startswith("store."):
        return action.removeprefix("store.") not in READ_METHODS
    return http_method.upper() not in _READ_HTTP_METHODS


def action_of(scope: Scope) -> str:
    """The name of the route a request reached: ``<group>.<route name>``, e.g.
    ``store.create_run``, ``artifacts.upload``, ``audit.list``; or the path when no route
    matched."""
    path: str = scope.get("path", "")
    rest = path.removeprefix(API_PREFIX).strip("/")
    group = rest.split("/", 1)[0] or "api"
    route = scope.get("route")
    name = getattr(route, "name", None)
    if not name:
        return f"{group}.unrouted"
    return name if name.startswith(f"{group}.") else f"{group}.{name}"


# ----------------------------------------------------------------------- the writer


class AuditSink:
    """Where events go: the store's ``audit_events`` table, or the log."""

    def write(self, events: Sequence[AuditEvent]) -> None:
        """Append ``events``."""
        for event in events:
            log.info("audit %s", json.dumps(asdict(event), default=str, sort_keys=True))

    def prune(self, before: datetime) -> int:
        """Delete events older than ``before``; how many went."""
        return 0

    def read(self, where: AuditFilter) -> list[AuditEvent]:
        """The events matching ``where``, newest first."""
        from pipeledger.exceptions import UnsupportedOperationError

        raise UnsupportedOperationError(
            "this server's metadata store keeps no audit log (it is not a SQL database); "
            "its events are lines of the server's log (logger pipeledger.audit)"
        )


class SqlAuditSink(AuditSink):
    """The ``audit_events`` table of a SQL store's database."""

    def __init__(self, db: Any) -> None:
        self.db = db

    def write(self, events: Sequence[AuditEvent]) -> None:
        from pipeledger.metadata_store.sql.audit_queries import append_events

        append_events(self.db, events)

    def prune(self, before: datetime) -> int:
        from pipeledger.metadata_store.sql.audit_queries import prune_events

        return prune_events(self.db, before)

    def read(self, where: AuditFilter) -> list[AuditEvent]:
        from pipeledger.metadata_store.sql.audit_queries import list_events

        return list_events(self.db, where)


def sink_for(store: MetadataStore) -> AuditSink:
    """The sink of ``store``: its database when it is a SQL store, else the log."""
    from pipeledger.metadata_store.sql.store import SqlMetadataStore

    if isinstance(store, SqlMetadataStore):
        return SqlAuditSink(store.db)
    return AuditSink()


class AuditLog:
    """Events queued by requests, written by one background thread (see the module docstring).

    Args:
        sink: where events go.
        retention_days: events older than this are deleted (0: never).
        clock: the current time (tests move it).
    """

    def __init__(self, sink: AuditSink, *, retention_days: int = 0, clock: Callable[[], datetime] = utcnow) -> None:
        self.sink = sink
        self.retention_days = retention_days
        self.clock = clock
        self.dropped = 0
        self._queue: queue.Queue[AuditEvent | None] = queue.Queue(QUEUE_LIMIT)
        self._idle = threading.Condition()
        self._pending = 0
        self._thread = threading.Thread(target=self._run, name="pipeledger-audit", daemon=True)
        self._thread.start()

    def record(self, event: AuditEvent) -> None:
        """Queue ``event`` (never blocks; dropped with a log line when the queue is full)."""
        with self._idle:
            self._pending += 1
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()
            self.dropped += 1
            log.error("audit queue full: event %s by %s dropped", event.action, event.principal)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued event is written (or failed to be); whether that happened
        within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued and stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def prune(self) -> int:
        """Delete the events older than the retention setting now; how many went (0 when the
        setting keeps everything)."""
        if self.retention_days <= 0:
            return 0
        removed = self.sink.prune(self.clock() - timedelta(days=self.retention_days))
        if removed:
            log.info("audit log: %d event(s) older than %d days deleted", removed, self.retention_days)
        return removed

    def _run(self) -> None:
        next_prune = 0.0
        stopping = False
        while not stopping:
            if time.monotonic() >= next_prune:
                self._safely(self.prune)
                next_prune = time.monotonic() + PRUNE_INTERVAL
            batch: list[AuditEvent] = []
            try:
                first = self._queue.get(timeout=min(PRUNE_INTERVAL, max(0.0, next_prune - time.monotonic())))
            except queue.Empty:
                continue
            if first is None:
                stopping = True
            else:
                batch.append(first)
            deadline = time.monotonic() + BATCH_WAIT
            while not stopping and len(batch) < BATCH_SIZE:
                try:
                    found = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if found is None:
                    stopping = True
                else:
                    batch.append(found)
            if stopping:  # drain what came before the stop
                while True:
                    try:
                        found = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if found is not None:
                        batch.append(found)
            self._write(batch)

    def _write(self, batch: list[AuditEvent]) -> None:
        for start in range(0, len(batch), BATCH_SIZE):
            part = batch[start : start + BATCH_SIZE]
            if not self._safely(lambda part=part: self.sink.write(part)):  # type: ignore[misc]
                for event in part:  # not lost: in the server's log at least
                    log.error("audit event not stored: %s", json.dumps(asdict(event), default=str, sort_keys=True))
        with self._idle:
            self._pending -= len(batch)
            self._idle.notify_all()

    def _safely(self, work: Callable[[], Any]) -> bool:
        try:
            work()
        except Exception as exc:  # the writer must outlive a store that is down for a while
            log.error("audit log: %s: %s", type(exc).__name__, exc)
            return False
        return True


# ----------------------------------------------------------------------- the middleware


class AuditMiddleware:
    """Records an event for every audited request under ``/api/v1`` (see the module docstring)
    into ``audit_log()`` (None: the application has not started; nothing is recorded)."""

    def __init__(self, app: ASGIApp, audit_log: Callable[[], AuditLog | None]) -> None:
        self.app = app
        self.audit_log = audit_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(API_PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        answer: dict[str, Any] = {"status": 500, "body": b""}

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = int(message["status"])
            elif message["type"] == "http.response.body" and answer["status"] >= 400 and len(answer["body"]) < 4096:
                answer["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            self._record(scope, answer["status"], answer["body"])

    def _record(self, scope: Scope, status: int, body: bytes) -> None:
        audit_log = self.audit_log()
        if audit_log is None:
            return
        state = scope["state"]
        found = state.get("audit")
        audit_note = found if isinstance(found, AuditNote) else AuditNote()
        action = action_of(scope)
        denied = audit_note.denied or status in (401, 403)
        if not denied and not is_write(scope.get("method", "GET"), action):
            return
        principal = state.get("principal")
        client = scope.get("client")
        outcome = "denied" if denied else ("allowed" if status < 400 else "failed")
        audit_log.record(
            AuditEvent(
                at=utcnow(),
                principal=getattr(principal, "name", None) if status != 401 else None,
                action=action,
                outcome=outcome,
                status=status,
                project=audit_note.project,
                target=audit_note.target or _query_path(scope),
                remote=str(client[0]) if client else None,
                detail=audit_note.detail or _error_message(body),
            )
        )


def _query_path(scope: Scope) -> str | None:
    """``path=...`` of an artifact route's query (a file's path in the store, not a secret)."""
    from urllib.parse import parse_qs

    query = scope.get("query_string", b"").decode("latin-1")
    paths = parse_qs(query).get("path")
    return f"path={paths[0]}" if paths else None


def _error_message(body: bytes) -> str | None:
    """The message of an error answer (``{"error": {"message": ...}}``), first line only."""
    if not body:
        return None
    try:
        message = json.loads(body).get("error", {}).get("message")
    except (ValueError, AttributeError):
        return None
    return str(message).splitlines()[0] if message else None

"""The ASGI application of ``pipeledger server``.

Routes:

* ``GET /health``: the process answers (200), with pipeledger's and the API's versions;
* ``GET /ready``: the metadata store answers too (200), else 503 with the store's error;
* ``GET /api/v1/info``: versions and the (non-secret) description of the store;
* ``/api/v1/auth/...``, ``/api/v1/users``, ``/api/v1/keys``, ``/api/v1/projects``: identities
  (:mod:`.identity_routes`);
* ``POST /api/v1/store/<method>``: the metadata store contract (:mod:`.store_routes`);
* ``GET /api/v1/audit/events``, ``POST /api/v1/audit/prune``: the audit log (:mod:`.audit_routes`);
* ``GET /api/v1/openapi.json`` (and ``/api/v1/docs``): the OpenAPI document;
* ``GET /ui/...``: the web UI (:mod:`pipeledger.ui`; its routes go through
  :func:`pipeledger.ui.ui_reader`), ``/ui/static/...`` its files; ``GET /`` redirects to ``/ui/``.

Every route under ``/api/v1`` goes through :func:`pipeledger.server.auth.authorize` (who calls)
and :func:`pipeledger.server.security.policy.require_rule` (the route declares its access rule
in its OpenAPI operation, ``x-access``; a route without one is refused). Every
request first passes :class:`~pipeledger.server.security.http.HardeningMiddleware` (Host
header, credentials in URLs, body size) and, under ``/api/v1``, the audit log's middleware
(:mod:`pipeledger.server.security.audit`); CORS only when origins are configured. ``POST
/api/v1/auth/login`` is outside: it authenticates by its body
(:data:`pipeledger.server.auth.PUBLIC_ROUTES`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from pipeledger import __version__
from pipeledger.artifacts.store import ArtifactStore
from pipeledger.exceptions import ConfigError, PipeledgerError
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.metadata_store.rest.protocol import API_PREFIX, API_VERSION
from pipeledger.server.artifact_routes import artifact_router
from pipeledger.server.audit_routes import audit_router
from pipeledger.server.auth import authorize
from pipeledger.server.errors import error_response, install_handlers
from pipeledger.server.identity_routes import identity_router, login_router
from pipeledger.server.security.audit import AuditLog, AuditMiddleware, retention_days, sink_for
from pipeledger.server.security.directory import Directory
from pipeledger.server.security.http import HardeningMiddleware, HttpSettings, cors_headers
from pipeledger.server.security.policy import Rule, authenticated, custom, public, require_rule, rule_of
from pipeledger.server.security.sessions import session_authenticator
from pipeledger.server.store_routes import add_schemas, store_of, store_router
from pipeledger.server.ui_access import INDEX_RULE, PAGE_RULE, sign_in_router, ui_gate
from pipeledger.ui import mount_ui

if TYPE_CHECKING:
    from pipeledger.stack.stack import Stack

#: The environment variable naming the stack a server process serves (set by ``server start``,
#: read by each uvicorn worker in :func:`app_from_environment`).
STACK_VARIABLE = "PIPELEDGER_SERVER_STACK"


def create_app(
    open_store: Callable[[], MetadataStore],
    artifact_store: ArtifactStore | None = None,
    *,
    settings: HttpSettings | None = None,
    audit_retention_days: int | None = None,
) -> FastAPI:
    """The application serving the store ``open_store()`` opens when the application starts
    (and closes when it stops), and the files of ``artifact_store`` when it is local
    (:mod:`.artifact_routes`), with the HTTP ``settings`` (default: loopback names only, no
    CORS, the default body limit) and the audit log's retention (default:
    :func:`~pipeledger.server.security.audit.retention_days`). The audit log's writer starts
    with the application and writes every queued event before the store closes."""
    settings = settings or HttpSettings()
    retention = retention_days() if audit_retention_days is None else audit_retention_days

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.artifact_store = artifact_store
        app.state.store = await run_in_threadpool(open_store)
        app.state.audit_log = AuditLog(sink_for(app.state.store), retention_days=retention)
        app.state.directory = directory_for(app.state.store)
        if app.state.directory is not None:
            app.state.session_authenticator = session_authenticator(app.state.directory)
        try:
            yield
        finally:
            await run_in_threadpool(app.state.audit_log.close)
            app.state.store.close()

    app = FastAPI(
        title="pipeledger server",
        version=__version__,
        summary=f"The metadata store contract over HTTP/JSON (API version {API_VERSION}).",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    install_handlers(app)
    schemas: dict[str, Any] = {}
    api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(authorize), Depends(require_rule)])
    api.include_router(store_router(schemas))
    api.include_router(artifact_router())
    api.include_router(audit_router())
    api.include_router(with_rules(identity_router(), custom("managing identities")))
    api.add_api_route(
        "/info",
        info,
        methods=["GET"],
        summary="Versions, and where the store keeps its data.",
        openapi_extra=authenticated("reading the server's versions").operation(),
    )
    app.include_router(api)
    app.include_router(with_rules(login_router(), public("logging in with a password")), prefix=API_PREFIX)
    app.add_api_route(
        "/health",
        health,
        methods=["GET"],
        summary="The server process answers.",
        openapi_extra=public("checking the server answers").operation(),
    )
    app.add_api_route(
        "/ready",
        ready,
        methods=["GET"],
        summary="The server and its metadata store answer.",
        openapi_extra=public("checking the server is ready").operation(),
    )
    add_schemas(app, schemas)
    app.state.ui_gate = ui_gate  # pages only for signed-in users, once the server has users
    app.include_router(sign_in_router())
    mount_ui(app, page_extra=PAGE_RULE, index_extra=INDEX_RULE)
    app.add_middleware(AuditMiddleware, audit_log=lambda: getattr(app.state, "audit_log", None))
    app.add_middleware(HardeningMiddleware, settings=settings)
    if settings.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT"],
            allow_headers=list(cors_headers()),
        )
    return app


def with_rules(router: APIRouter, rule: Rule) -> APIRouter:
    """``router`` with ``rule`` on each route that declares none: the identity routes, whose
    endpoints check the caller themselves (``custom``: server administrators, the caller's own
    keys, a project's admins; see :mod:`.identity_routes`), and the login route (``public``: it
    authenticates by its body).

    TODO(access-identity): declare each identity route's rule where the route is defined, then
    drop this: a route added there without a rule should be refused, not given a rule here."""
    for route in router.routes:
        if isinstance(route, APIRoute) and rule_of(route.openapi_extra) is None:
            route.openapi_extra = {**(route.openapi_extra or {}), **rule.operation()}
    return router


def directory_for(store: MetadataStore) -> Directory | None:
    """The identity store of ``store`` (None when it is not SQL: the server then has no users,
    and every caller is anonymous)."""
    try:
        return Directory.of_store(store)
    except ConfigError:
        return None


def versions() -> dict[str, str]:
    """pipeledger's version and the API's."""
    return {"pipeledger": __version__, "api_version": API_VERSION}


async def health() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok", **versions()}


async def ready(request: Request) -> JSONResponse:
    """The metadata store answers a read (503 with its error otherwise)."""
    try:
        await run_in_threadpool(store_of(request).list_pipelines, limit=1)
    except PipeledgerError as exc:
        return error_response(503, type(exc).__name__, str(exc))
    return JSONResponse({"status": "ready", **versions()})


async def info(request: Request) -> dict[str, Any]:
    """Versions and the store's non-secret description."""
    return {**versions(), "metadata_store": store_of(request).describe()}


def open_stack(stack: str | None) -> Stack:
    """The registered stack ``stack`` (default: the active one), its metadata store not opened.

    Raises:
        ConfigError: the stack's metadata store is itself a ``rest`` store (a server must front a
            database, not another server).
    """
    from pipeledger.stack.stack import build_stack

    built = build_stack(stack)
    flavor = built.snapshot().get("metadata_store", {}).get("flavor")
    if flavor == "rest":
        raise ConfigError(
            f"stack {built.name!r} keeps its metadata in a rest store (another server); start the server "
            "on a stack whose metadata store is a database (sqlite, mysql, postgresql...)"
        )
    return built


def app_from_environment() -> FastAPI:
    """The application of a ``pipeledger server start`` process (uvicorn's factory): the stores
    of the stack named by ``$PIPELEDGER_SERVER_STACK`` (the active stack if unset)."""
    built = open_stack(os.environ.get(STACK_VARIABLE) or None)
    return create_app(lambda: built.metadata_store, built.artifact_store, settings=HttpSettings.from_environment())

"""The ASGI application of ``pipeledger server``.

Routes:

* ``GET /health``: the process answers (200), with pipeledger's and the API's versions;
* ``GET /ready``: the metadata store answers too (200), else 503 with the store's error;
* ``GET /api/v1/info``: versions and the (non-secret) description of the store;
* ``POST /api/v1/store/<method>``: the metadata store contract (:mod:`.store_routes`);
* ``GET /api/v1/openapi.json`` (and ``/api/v1/docs``): the OpenAPI document.

Every route under ``/api/v1`` goes through :func:`pipeledger.server.auth.authorize` (who calls)
and :func:`pipeledger.server.security.policy.require_rule` (the route declares its access rule
in its OpenAPI operation, ``x-access``; a route without one is refused).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from pipeledger import __version__
from pipeledger.artifacts.store import ArtifactStore
from pipeledger.exceptions import ConfigError, PipeledgerError
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.metadata_store.rest.protocol import API_PREFIX, API_VERSION
from pipeledger.server.artifact_routes import artifact_router
from pipeledger.server.auth import authorize
from pipeledger.server.errors import error_response, install_handlers
from pipeledger.server.security.policy import authenticated, public, require_rule
from pipeledger.server.store_routes import add_schemas, store_of, store_router

if TYPE_CHECKING:
    from pipeledger.stack.stack import Stack

#: The environment variable naming the stack a server process serves (set by ``server start``,
#: read by each uvicorn worker in :func:`app_from_environment`).
STACK_VARIABLE = "PIPELEDGER_SERVER_STACK"


def create_app(open_store: Callable[[], MetadataStore], artifact_store: ArtifactStore | None = None) -> FastAPI:
    """The application serving the store ``open_store()`` opens when the application starts
    (and closes when it stops), and the files of ``artifact_store`` when it is local
    (:mod:`.artifact_routes`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.artifact_store = artifact_store
        app.state.store = await run_in_threadpool(open_store)
        try:
            yield
        finally:
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
    api.add_api_route(
        "/info",
        info,
        methods=["GET"],
        summary="Versions, and where the store keeps its data.",
        openapi_extra=authenticated("reading the server's versions").operation(),
    )
    app.include_router(api)
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
    return app


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
    return create_app(lambda: built.metadata_store, built.artifact_store)

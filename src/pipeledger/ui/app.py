"""The UI's plumbing: the access dependency, the template environment, the router and its mount.

See the package docstring (:mod:`pipeledger.ui`) for the conventions pages follow.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote as quote_url
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from pipeledger.client import Client
from pipeledger.client.client import quote
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.ui import formatting

HERE = Path(__file__).parent

#: The page modules :func:`ui_router` includes (each holds ``router = APIRouter()``).
PAGE_MODULES = [
    "pipeledger.ui.runs_page",
    "pipeledger.ui.run_page",
    "pipeledger.ui.step_page",
    "pipeledger.ui.artifact_page",
    "pipeledger.ui.compare_page",
]

#: Sent with every page: scripts and styles only from this server, nothing inline, no frames, no
#: plugins. A second line of defence behind escaping.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@dataclass(frozen=True)
class UiReader:
    """What a page may read: the post-execution :class:`~pipeledger.Client` on the served store,
    as the signed-in user may see it (``user`` None: a server without users, or ``pipeledger ui``)."""

    client: Client
    user: str | None = None

    @property
    def store(self) -> MetadataStore:
        """The metadata store the client reads."""
        return self.client.store


class SignInRequired(Exception):
    """The page needs a signed-in user: the browser is sent to the sign-in page
    (:func:`mount_ui` installs the redirect)."""


#: ``app.state.ui_gate``, set by a server that authenticates: the store a request may read (the
#: server's, seen with the signed-in user's roles) and the user's name; raises
#: :class:`SignInRequired` without a valid session. The server also leaves the session's CSRF
#: token in ``request.state.ui_csrf`` (the sign-out form sends it).
UiGate = Callable[[Request], Awaitable[tuple[MetadataStore, str | None]]]


async def ui_reader(request: Request) -> UiReader:
    """The one dependency every UI route goes through: a reader of the store the application
    serves (``app.state.store``), through the application's gate (``app.state.ui_gate``) when
    it has one: then only what the signed-in user may read, and :class:`SignInRequired` when
    nobody is signed in. (A coroutine: a plain function would cost a thread hop per request.)"""
    gate: UiGate | None = getattr(request.app.state, "ui_gate", None)
    if gate is None:
        return UiReader(Client(store=request.app.state.store))
    store, user = await gate(request)
    request.state.ui_user = user
    return UiReader(Client(store=store), user)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html", "svg", "xml"], default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(formatting.FILTERS)
    env.globals["url_with"] = url_with
    env.globals["quote_filter"] = quote
    return env


def url_with(request: Request, path: str | None = None, **changes: Any) -> str:
    """The URL of ``path`` (default: this page's) with this request's query parameters, changed by
    ``changes``: a value of None removes the parameter, a list repeats it. Keeps all view state."""
    items: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        items.setdefault(key, []).append(value)
    for key, value in changes.items():
        if value is None or value == "" or value == []:
            items.pop(key, None)
        elif isinstance(value, (list, tuple)):
            items[key] = [str(v) for v in value]
        else:
            items[key] = [str(value)]
    query = urlencode([(k, v) for k, values in items.items() for v in values])
    base = request.url.path if path is None else path
    return f"{base}?{query}" if query else base


ENVIRONMENT = _environment()


def render(request: Request, template: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    """The page ``template`` rendered with ``context`` (and ``request``), with the security headers."""
    signed_in = {"signed_in": getattr(request.state, "ui_user", None), "csrf": getattr(request.state, "ui_csrf", "")}
    html = ENVIRONMENT.get_template(template).render(request=request, **signed_in, **context)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def error_page(request: Request, status_code: int, message: str) -> HTMLResponse:
    """A page saying what went wrong (``message`` shown as text), with ``status_code``."""
    return render(request, "error.html", {"status_code": status_code, "message": message}, status_code)


def index() -> RedirectResponse:
    """``/ui/`` opens the runs table."""
    return RedirectResponse("/ui/runs", status_code=307)


def ui_router(page_extra: dict[str, Any] | None = None, index_extra: dict[str, Any] | None = None) -> APIRouter:
    """Every page of :data:`PAGE_MODULES` under ``/ui`` (static files are mounted by :func:`mount_ui`).
    ``page_extra`` and ``index_extra`` join the OpenAPI operation of each page and of the
    redirects to the runs page (a server puts its access rule there)."""
    router = APIRouter(prefix="/ui", include_in_schema=False)
    router.add_api_route("/", index, methods=["GET"], openapi_extra=index_extra)
    router.add_api_route("", index, methods=["GET"], openapi_extra=index_extra)
    for name in PAGE_MODULES:
        pages: APIRouter = importlib.import_module(name).router
        if page_extra:
            for route in pages.routes:
                if isinstance(route, APIRoute):
                    route.openapi_extra = {**(route.openapi_extra or {}), **page_extra}
        router.include_router(pages)
    return router


def mount_ui(app: FastAPI, page_extra: dict[str, Any] | None = None, index_extra: dict[str, Any] | None = None) -> None:
    """Serve the UI from ``app`` (whose ``app.state.store`` is the store to show): the pages under
    ``/ui``, their static files under ``/ui/static``, and ``/`` redirecting to ``/ui/``
    (``page_extra``, ``index_extra``: see :func:`ui_router`)."""
    app.include_router(ui_router(page_extra, index_extra))
    app.add_exception_handler(SignInRequired, _to_sign_in)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    app.add_api_route("/", index, methods=["GET"], include_in_schema=False, openapi_extra=index_extra)


async def _to_sign_in(request: Request, exc: Exception) -> Response:
    """Send the browser to the sign-in page, which brings it back here afterwards."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/login?next={quote_url(here, safe='')}", status_code=303)


def no_store(response: Response) -> Response:
    """``response`` marked never to be cached (live JSON)."""
    response.headers["Cache-Control"] = "no-store"
    return response

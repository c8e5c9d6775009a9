"""The web UI behind the server's sign-in: who may see which pages, and the sign-in pages.

On a server with users (``pipeledger server init`` ran), every page of the UI needs a session:
:func:`ui_gate` (installed as ``app.state.ui_gate``, see :func:`pipeledger.ui.app.ui_reader`)
finds the session's user from its cookie (:mod:`.security.sessions`) and hands the page the
server's store as that user may see it (:class:`~.security.guarded.GuardedStore`: the API's
rules, so a page shows only the projects the user may read). Without a valid session the
browser is sent to ``/ui/login``, which takes an API key or a user name and password, opens a
session (a login token kept as a hash, in an ``HttpOnly``, ``SameSite=Strict`` cookie) and goes
back to the page asked for. ``POST /ui/logout`` needs the session's CSRF token and revokes the
session's token. Failed sign-ins are rate-limited per client address, like the API's login.

On a server without users every page is open, as the API is (such a server listens only on
loopback unless started with ``--insecure-no-auth``).
"""

from __future__ import annotations

import contextlib
import hmac
from datetime import timedelta
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from pipeledger.exceptions import AuthenticationError, PipeledgerError
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.server.auth import directory_of, session_principal
from pipeledger.server.security.guarded import guarded
from pipeledger.server.security.keys import parse_key
from pipeledger.server.security.limits import FailureLimiter
from pipeledger.server.security.policy import public, session
from pipeledger.server.security.sessions import (
    CSRF_COOKIE,
    DEFAULT_MAX_AGE,
    csrf_token_for,
    end_session,
    is_https,
    open_session,
    session_token,
    start_session,
)
from pipeledger.server.store_routes import store_of
from pipeledger.ui.app import SignInRequired, render

#: The largest sign-in form accepted (bytes): a key, a name and a password fit many times over.
MAX_FORM = 8 << 10
SIGN_IN_FAILED = "wrong API key, or wrong user name or password"


async def authentication_required(request: Request) -> bool:
    """Whether the server has users (and so pages need a session)."""
    directory = directory_of(request)
    if directory is None:
        return False
    return directory.authentication_known or await run_in_threadpool(directory.authentication_required)


async def ui_gate(request: Request) -> tuple[MetadataStore, str | None]:
    """The store a UI request may read and who reads it (see the module docstring).

    Raises:
        SignInRequired: the server has users and the request has no valid session (none, expired,
            revoked, its user disabled).
    """
    store = store_of(request)
    if not await authentication_required(request):
        return store, None
    try:
        principal = await session_principal(request)
    except PipeledgerError:  # an expired or revoked session, a disabled user, a bad CSRF token
        principal = None
    if principal is None:
        raise SignInRequired
    request.state.ui_csrf = request.cookies.get(CSRF_COOKIE, "")
    return guarded(store, principal), principal.name


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a page of the UI, never another site."""
    if not target or not target.startswith("/ui/") or target.startswith("//") or "\\" in target:
        return "/ui/runs"
    return target


def sign_in_router(limiter: FailureLimiter | None = None) -> APIRouter:
    """``GET``/``POST /ui/login`` and ``POST /ui/logout``."""
    limiter = limiter or FailureLimiter()
    router = APIRouter(prefix="/ui", include_in_schema=False)

    signing_in = public("signing in to the web UI").operation()

    @router.get("/login", openapi_extra=signing_in)
    async def sign_in_page(request: Request, next: str | None = None) -> Response:
        if not await authentication_required(request):
            return RedirectResponse(safe_next(next), status_code=303)
        return render(request, "login.html", {"next": safe_next(next), "error": None, "user": None})

    @router.post("/login", openapi_extra=signing_in)
    async def sign_in(request: Request) -> Response:
        directory = directory_of(request)
        body = await request.body()
        if directory is None or not await authentication_required(request):
            return RedirectResponse("/ui/runs", status_code=303)
        if len(body) > MAX_FORM:
            return _page(request, "/ui/runs", None, "the sign-in form is too large", 413)
        form = {key: values[0] for key, values in parse_qs(body.decode("utf-8", "replace")).items()}
        target = safe_next(form.get("next"))
        user = form.get("user", "").strip() or None
        if not _same_origin(request):
            return _page(request, target, user, "refusing a sign-in sent from another site", 403)
        address = request.client.host if request.client else "unknown"
        wait = limiter.retry_after(address)
        if wait is not None:
            message = f"too many failed sign-ins from your address; try again in {int(wait) + 1} s"
            return _page(request, target, user, message, 429)
        response = RedirectResponse(target, status_code=303)
        secure = is_https(request)
        key, password = form.get("api_key", "").strip(), form.get("password", "")
        try:
            if key:
                principal = await run_in_threadpool(directory.authenticate, key)
                await run_in_threadpool(open_session, directory, response, principal.name, secure=secure)
            elif user and password:
                lifetime = timedelta(seconds=DEFAULT_MAX_AGE)
                issued = await run_in_threadpool(directory.login, user, password, lifetime=lifetime)
                start_session(response, issued.key, secure=secure)
            else:
                return _page(request, target, user, "give an API key, or a user name and a password", 400)
        except AuthenticationError as exc:
            limiter.failed(address)
            # Locked accounts and the like say so; anything else is one message for every cause.
            message = str(exc) if "try again" in str(exc) else SIGN_IN_FAILED
            return _page(request, target, user, message, 401)
        return response

    @router.post("/logout", openapi_extra=signing_in)
    async def sign_out(request: Request) -> Response:
        directory = directory_of(request)
        token = session_token(request)
        body = await request.body()
        form = {key: values[0] for key, values in parse_qs(body[:MAX_FORM].decode("utf-8", "replace")).items()}
        response = RedirectResponse("/ui/login", status_code=303)
        if token is None or directory is None:
            return response
        sent = form.get("csrf_token", "")
        if not _same_origin(request) or not hmac.compare_digest(sent.encode(), csrf_token_for(token).encode()):
            return HTMLResponse("refusing a sign-out without this session's CSRF token", status_code=403)
        parsed = parse_key(token)
        if parsed is not None:
            with contextlib.suppress(PipeledgerError):  # already revoked or gone: the cookie goes anyway
                await run_in_threadpool(directory.revoke_key, parsed.key_id)
        end_session(response, secure=is_https(request))
        return response

    return router


#: The access rules of the UI's pages and of its redirects to the runs page (``/``, ``/ui``), as
#: :func:`pipeledger.ui.app.mount_ui` puts them on the routes: pages read through
#: :func:`pipeledger.ui.app.ui_reader`, i.e. :func:`ui_gate`. The route enumeration test checks
#: that each page really sends a browser without a session to sign in.
PAGE_RULE = session("reading the web UI").operation()
INDEX_RULE = public("opening the web UI").operation()


def _page(request: Request, target: str, user: str | None, error: str, status: int) -> HTMLResponse:
    return render(request, "login.html", {"next": target, "error": error, "user": user}, status)


def _same_origin(request: Request) -> bool:
    """A form post from this server's own pages (browsers send ``Origin`` on POST)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1].lower() == host.lower()

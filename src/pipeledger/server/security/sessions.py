"""Browser sessions of the web UI: a cookie holding a login token, and CSRF protection.

A session is a login token like the ones ``pipeledger login`` stores: an API key with an expiry,
kept server-side as a hash only (see the identity module); the browser holds it in the
``pipeledger_session`` cookie, ``HttpOnly`` (scripts cannot read it), ``SameSite=Strict`` (other
sites' pages do not send it) and ``Secure`` when the server is reached over HTTPS.

CSRF: every state-changing request (not GET/HEAD/OPTIONS) authenticated by the cookie must carry
the header ``X-CSRF-Token`` whose value is the session's CSRF token (a signed double-submit
token): ``HMAC-SHA256(session token, "pipeledger-csrf-v1")``, handed to the page in the
``pipeledger_csrf`` cookie (readable by the page's scripts, ``SameSite=Strict`` too). Another
site can neither read that cookie nor compute the token without the session's secret, and a
token does not reveal the secret. It is compared in constant time. A cross-site ``Origin``
header on such a request is refused as well. Requests with an ``Authorization`` header (the
CLI, the ``rest`` flavor) carry no cookie and need no CSRF token.

The UI uses :func:`start_session` after a login, :func:`end_session` at logout; authentication
calls :func:`session_principal` when a request has no ``Authorization`` header.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from pipeledger.exceptions import AccessDeniedError
from pipeledger.server.security.principal import Principal

if TYPE_CHECKING:
    from pipeledger.server.security.directory import Directory

SESSION_COOKIE = "pipeledger_session"
CSRF_COOKIE = "pipeledger_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: A session's default lifetime (seconds): the login token's expiry should be the same.
DEFAULT_MAX_AGE = 8 * 3600
_CSRF_CONTEXT = b"pipeledger-csrf-v1"


def csrf_token_for(session_token: str) -> str:
    """The CSRF token of the session whose token is ``session_token``."""
    return hmac.new(session_token.encode(), _CSRF_CONTEXT, hashlib.sha256).hexdigest()


def is_https(request: Request) -> bool:
    """Whether the client reached the server over HTTPS (directly, or through a proxy that says
    so and that uvicorn trusts for ``X-Forwarded-Proto``)."""
    return request.url.scheme == "https"


def start_session(response: Response, token: str, *, secure: bool, max_age: int = DEFAULT_MAX_AGE) -> str:
    """Set the session cookie holding ``token`` (a login token just issued for the user) and its
    CSRF cookie on ``response``; returns the CSRF token (for a page that embeds it)."""
    csrf = csrf_token_for(token)
    common = {"max_age": max_age, "path": "/", "secure": secure, "samesite": "strict"}
    response.set_cookie(SESSION_COOKIE, token, httponly=True, **common)  # type: ignore[arg-type]
    response.set_cookie(CSRF_COOKIE, csrf, httponly=False, **common)  # type: ignore[arg-type]
    return csrf


def end_session(response: Response, *, secure: bool) -> None:
    """Clear both cookies (the caller also revokes the session's token)."""
    for name, httponly in ((SESSION_COOKIE, True), (CSRF_COOKIE, False)):
        response.delete_cookie(name, path="/", secure=secure, httponly=httponly, samesite="strict")


def session_token(request: Request) -> str | None:
    """The session token the request's cookie carries, or None."""
    return request.cookies.get(SESSION_COOKIE) or None


def require_csrf(request: Request) -> None:
    """Refuse a state-changing request authenticated by the session cookie without the right
    CSRF token, or from another origin (safe methods pass).

    Raises:
        AccessDeniedError: (403) naming what is missing.
    """
    if request.method.upper() in SAFE_METHODS:
        return
    token = session_token(request)
    if token is None:
        raise AccessDeniedError("no session: log in again")
    origin = request.headers.get("origin")
    if origin is not None and not _same_origin(origin, request):
        raise AccessDeniedError("refusing a cross-site request made with a session cookie")
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent or not hmac.compare_digest(sent.encode(), csrf_token_for(token).encode()):
        raise AccessDeniedError(
            f"missing or wrong CSRF token: send the {CSRF_HEADER} header with the value of the {CSRF_COOKIE} cookie",
        )


Authenticate = Callable[[str], "Principal | Awaitable[Principal | None] | None"]


async def session_principal(request: Request, authenticate: Authenticate) -> Principal | None:
    """Who the request's session cookie belongs to (None: no cookie), its CSRF token checked
    first (:func:`require_csrf`). ``authenticate(token)`` checks the token as it would an API
    key (expired, revoked, disabled: None or its own error)."""
    token = session_token(request)
    if token is None:
        return None
    require_csrf(request)
    found = authenticate(token)
    if inspect.isawaitable(found):
        found = await found
    return found


def _same_origin(origin: str, request: Request) -> bool:
    parts = urlsplit(origin)
    host = request.headers.get("host", "")
    return bool(parts.netloc) and parts.netloc.lower() == host.lower() and parts.scheme == request.url.scheme


def open_session(
    directory: Directory, response: Response, principal: str, *, secure: bool, max_age: int = DEFAULT_MAX_AGE
) -> str:
    """Issue a login token for ``principal`` (an API key labelled ``session`` expiring with the
    session; only its hash is stored) and start the session on ``response``; returns the CSRF
    token. (The UI calls this after it has checked the user's password or key.)"""
    expires_at = directory.clock() + timedelta(seconds=max_age)
    issued = directory.issue_key(principal, label="session", expires_at=expires_at)
    return start_session(response, issued.key, secure=secure, max_age=max_age)


def session_authenticator(directory: Directory) -> Callable[[Request], Awaitable[Principal | None]]:
    """The server's ``app.state.session_authenticator`` (see :mod:`pipeledger.server.auth`): the
    principal of a request's session cookie, checked by ``directory`` as an API key, its CSRF
    token checked first; None without a cookie."""

    async def authenticate(request: Request) -> Principal | None:
        return await session_principal(request, lambda token: run_in_threadpool(directory.authenticate, token))

    return authenticate

"""Who is calling: the one dependency every route of the API goes through.

:func:`authorize` checks the client's API version, authenticates the caller and leaves the
:class:`~pipeledger.server.security.Principal` in ``request.state.principal``, where the
routes' authorization rules (:mod:`pipeledger.server.security.policy`) and the audit log find
it.

How a caller is authenticated (:func:`authenticate`):

* ``Authorization: Bearer <API key>``: the key is checked by the server's
  :class:`~pipeledger.server.security.directory.Directory` (its revocation and expiry and its
  principal's state are read from the database on every request);
* no ``Authorization`` header: a web UI session, if the application has a session
  authenticator (``app.state.session_authenticator``, an async function of the request returning
  a principal or None; see :func:`session_principal`);
* neither: 401.

A server whose store has no principal yet (``pipeledger server init`` never ran), or is not SQL,
treats every caller as :data:`~pipeledger.server.security.ANONYMOUS`, a server administrator,
whatever the request carries (as before authentication existed: a proxy in front may check a
token of its own); such a server listens only on loopback unless started with
``--insecure-no-auth`` (:func:`pipeledger.server.process.check_bind`).

Every refusal is a 401 :class:`~pipeledger.exceptions.AuthenticationError` whose message is one
line naming the fix; a key's secret is never in a message or a log line.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from pipeledger.exceptions import AuthenticationError
from pipeledger.metadata_store.rest.protocol import API_VERSION, VERSION_HEADER
from pipeledger.server.errors import ApiError
from pipeledger.server.security import ANONYMOUS, Principal
from pipeledger.server.security.directory import Directory

#: What ``app.state.session_authenticator`` is: the principal of a request's session, or None.
SessionAuthenticator = Callable[[Request], Awaitable[Principal | None]]

#: Routes under ``/api/v1`` that do not go through :func:`authorize` (they check the version
#: with :func:`check_version` and authenticate by their body).
PUBLIC_ROUTES = frozenset({"/api/v1/auth/login"})


async def authorize(request: Request) -> Principal:
    """Check the caller of ``request`` and its API version; return who it is (also left in
    ``request.state.principal``). (A coroutine: FastAPI would run a plain function in its
    thread pool; the directory's reads run there only when there is something to read.)

    Raises:
        ApiError: (400) the client speaks another version of the API than this server; the
            message names both.
        AuthenticationError: (401) see :func:`authenticate`.
    """
    check_version(request)
    principal = await authenticate(request)
    request.state.principal = principal
    return principal


def check_version(request: Request) -> None:
    """Refuse a client of another API version.

    Raises:
        ApiError: (400) naming both versions.
    """
    version = request.headers.get(VERSION_HEADER)
    if version is not None and version != API_VERSION:
        raise ApiError(
            400,
            "ApiVersionError",
            f"this pipeledger server speaks API version {API_VERSION}, the client API version {version}; "
            "install the same pipeledger release on both sides",
        )


async def authenticate(request: Request) -> Principal:
    """The principal of ``request`` (see the module docstring).

    Raises:
        AuthenticationError: on a server with principals: no credentials, a malformed
            ``Authorization`` header, a malformed, unknown, expired or revoked key, a disabled
            principal.
    """
    header = request.headers.get("Authorization")
    directory = directory_of(request)
    required = directory is not None and (
        directory.authentication_known or await run_in_threadpool(directory.authentication_required)
    )
    if not required:
        # No principals: today's behaviour, whatever the request carries (a proxy in front may
        # check its own token and pass the header on).
        return ANONYMOUS
    assert directory is not None
    if header is None:
        session = await session_principal(request)
        if session is not None:
            return session
        raise AuthenticationError(
            "this server needs an API key: log in with `pipeledger login URL` "
            "(or send 'Authorization: Bearer <API key>')"
        )
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("malformed Authorization header: send 'Authorization: Bearer <API key>'")
    return await run_in_threadpool(directory.authenticate, token.strip())


async def session_principal(request: Request) -> Principal | None:
    """The principal of the request's web UI session, when the application has a session
    authenticator (``app.state.session_authenticator``) and it recognises one; else None."""
    authenticator: SessionAuthenticator | None = getattr(request.app.state, "session_authenticator", None)
    if authenticator is None:
        return None
    return await authenticator(request)


def directory_of(request: Request) -> Directory | None:
    """The server's identity store (None when its metadata store is not SQL: no principals)."""
    directory: Directory | None = getattr(request.app.state, "directory", None)
    return directory


def principal_of(request: Request) -> Principal:
    """The caller :func:`authorize` found for ``request``."""
    principal: Principal = request.state.principal
    return principal

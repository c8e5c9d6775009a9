"""Who is calling: the one dependency every route of the API goes through.

:func:`authorize` checks the client's API version, authenticates the caller and leaves the
:class:`~pipeledger.server.security.Principal` in ``request.state.principal``, where the
routes' authorization rules (:mod:`pipeledger.server.security.policy`) and the audit log find
it. A server whose store has no principal yet (``pipeledger server init`` never ran) treats
every caller as :data:`~pipeledger.server.security.ANONYMOUS`, a server administrator; such a
server listens only on loopback unless started with ``--insecure-no-auth``
(:func:`pipeledger.server.process.check_bind`).
"""

from __future__ import annotations

from fastapi import Request

from pipeledger.metadata_store.rest.protocol import API_VERSION, VERSION_HEADER
from pipeledger.server.errors import ApiError
from pipeledger.server.security import ANONYMOUS, Principal


async def authorize(request: Request) -> Principal:
    """Check the caller of ``request`` and its API version; return who it is (also left in
    ``request.state.principal``). (A coroutine: FastAPI would run a plain function in its
    thread pool, a thread hop on every request.)

    Raises:
        ApiError: (400) the client speaks another version of the API than this server; the
            message names both.
    """
    version = request.headers.get(VERSION_HEADER)
    if version is not None and version != API_VERSION:
        raise ApiError(
            400,
            "ApiVersionError",
            f"this pipeledger server speaks API version {API_VERSION}, the client API version {version}; "
            "install the same pipeledger release on both sides",
        )
    principal = ANONYMOUS
    request.state.principal = principal
    return principal


def principal_of(request: Request) -> Principal:
    """The caller :func:`authorize` found for ``request``."""
    principal: Principal = request.state.principal
    return principal

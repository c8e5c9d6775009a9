"""Who is calling: the one dependency every route of the API goes through.

Authentication is not implemented yet (the next issue): :func:`authorize` accepts every caller
as anonymous, and the server refuses to listen on anything but a loopback address unless it is
started with ``--insecure-no-auth`` (:func:`pipeledger.server.process.check_bind`). When tokens
land, only this function changes: it will read the ``Authorization`` header and refuse.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from pipeledger.metadata_store.rest.protocol import API_VERSION, VERSION_HEADER
from pipeledger.server.errors import ApiError


@dataclass(frozen=True)
class Caller:
    """Who made a request (``anonymous`` until authentication exists)."""

    name: str


ANONYMOUS = Caller("anonymous")


async def authorize(request: Request) -> Caller:
    """Check the caller of ``request`` and its API version; return who it is. (A coroutine:
    FastAPI would run a plain function in its thread pool, a thread hop on every request.)

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
    return ANONYMOUS

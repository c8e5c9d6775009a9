"""Hardened HTTP: what every request must satisfy before a route sees it.

:class:`HardeningMiddleware` (outermost but CORS) answers, in the server's JSON error shape:

* **400** a ``Host`` header that is not one of the server's names (``--server-name``, repeated;
  ``$PIPELEDGER_SERVER_NAMES``, comma-separated), so that a DNS-rebinding page cannot reach a
  server on a developer's machine. Loopback names (``localhost``, ``127.0.0.1``, ``::1``) are
  always accepted; ``*`` accepts any name. ``/health`` and ``/ready`` are exempt (probes use
  the pod's address);
* **400** a query string that carries a credential (``token``, ``api_key``, ``key``,
  ``password``, ``access_token``...): credentials go in the ``Authorization`` header only,
  never in a URL (URLs end up in proxies' and browsers' logs);
* **413** a request body larger than the limit (``--max-request-bytes``,
  ``$PIPELEDGER_SERVER_MAX_REQUEST_BYTES``, default 64 MiB), by its ``Content-Length`` or as it
  arrives; artifact uploads (``PUT /api/v1/artifacts/file``) keep their own limit
  (:func:`pipeledger.server.artifact_routes.max_upload`).

and adds ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``, ``Referrer-Policy:
no-referrer`` and (API answers) ``Cache-Control: no-store`` to every answer.

CORS is off (no ``Access-Control-*`` header, so browsers refuse cross-origin reads) unless
origins are configured (``--cors-origin``, ``$PIPELEDGER_SERVER_CORS_ORIGINS``).
:class:`QuerylessAccessLog` keeps query strings out of uvicorn's access log.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeledger.metadata_store.rest.protocol import API_PREFIX
from pipeledger.server.errors import ApiError

NAMES_VARIABLE = "PIPELEDGER_SERVER_NAMES"
CORS_VARIABLE = "PIPELEDGER_SERVER_CORS_ORIGINS"
MAX_REQUEST_VARIABLE = "PIPELEDGER_SERVER_MAX_REQUEST_BYTES"
DEFAULT_MAX_REQUEST = 64 << 20
#: Host names a server always answers to.
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
#: Query parameters that would carry a credential in a URL (compared lower-case).
CREDENTIAL_PARAMETERS = frozenset(
    {"token", "access_token", "api_key", "apikey", "key", "password", "secret", "session", "auth", "authorization"}
)
#: Routes exempt from the Host check (health probes).
_PROBES = frozenset({"/health", "/ready"})
_UPLOAD = ("PUT", f"{API_PREFIX}/artifacts/file")
_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


@dataclass(frozen=True)
class HttpSettings:
    """The server's HTTP settings (see the module docstring)."""

    server_names: frozenset[str] = field(default_factory=frozenset)
    cors_origins: tuple[str, ...] = ()
    max_request_bytes: int = DEFAULT_MAX_REQUEST

    @classmethod
    def from_environment(cls) -> HttpSettings:
        """The settings ``pipeledger server start`` passed to its workers in the environment."""
        names = frozenset(n.strip().lower() for n in os.environ.get(NAMES_VARIABLE, "").split(",") if n.strip())
        origins = tuple(o.strip() for o in os.environ.get(CORS_VARIABLE, "").split(",") if o.strip())
        raw = os.environ.get(MAX_REQUEST_VARIABLE, "").strip()
        limit = int(raw) if raw.isdigit() else DEFAULT_MAX_REQUEST
        return cls(names, origins, limit)

    def environment(self) -> dict[str, str]:
        """The environment variables that carry these settings to the workers."""
        return {
            NAMES_VARIABLE: ",".join(sorted(self.server_names)),
            CORS_VARIABLE: ",".join(self.cors_origins),
            MAX_REQUEST_VARIABLE: str(self.max_request_bytes),
        }

    def host_allowed(self, host: str) -> bool:
        """Whether a ``Host`` header (with or without a port) names this server."""
        name = host_name(host)
        return "*" in self.server_names or name in LOOPBACK_NAMES or name in self.server_names


def host_name(host: str) -> str:
    """The name of a ``Host`` header, lower-case, without its port or an IPv6 address's brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class TooLarge(ApiError):
    """A request body went over the limit while it arrived (answered 413 by the application's
    error handler, or by the middleware if it reaches it)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, "ValueError", _too_large(limit))


class HardeningMiddleware:
    """Checks every request against ``settings`` (see the module docstring)."""

    def __init__(self, app: ASGIApp, settings: HttpSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        if path not in _PROBES and not self.settings.host_allowed(host):
            await _refuse(
                send,
                400,
                "ValueError",
                f"host {host_name(host)!r} is not a name of this server; start it with --server-name "
                f"{host_name(host) or 'NAME'} if clients reach it by that name",
            )
            return
        query = scope.get("query_string", b"").decode("latin-1")
        named = sorted({k for k, _ in parse_qsl(query, keep_blank_values=True) if k.lower() in CREDENTIAL_PARAMETERS})
        if named:
            await _refuse(
                send,
                400,
                "ValueError",
                f"refusing a credential in the URL (query parameter {named[0]!r}): send it in the "
                "Authorization header; treat the credential as leaked and revoke it",
            )
            return
        limit = None if (scope.get("method"), path) == _UPLOAD else self.settings.max_request_bytes
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if limit is not None and declared.isdigit() and int(declared) > limit:
            await _refuse(send, 413, "ValueError", _too_large(limit))
            return
        await self._serve(scope, receive, send, limit, path.startswith(API_PREFIX))

    async def _serve(self, scope: Scope, receive: Receive, send: Send, limit: int | None, api: bool) -> None:
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if limit is not None and message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise TooLarge(limit)
            return message

        async def headed(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                extra = list(_HEADERS) + ([(b"cache-control", b"no-store")] if api else [])
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [h for h in extra if h[0] not in present]
            await send(message)

        try:
            await self.app(scope, counted, headed)
        except TooLarge:
            if not started:
                await _refuse(send, 413, "ValueError", _too_large(limit or 0))


def _too_large(limit: int) -> str:
    return f"the request body exceeds the server's limit of {limit} bytes (--max-request-bytes)"


async def _refuse(send: Send, status: int, type_: str, message: str) -> None:
    body = json.dumps({"error": {"type": type_, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *_HEADERS]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def cors_headers() -> Sequence[str]:
    """The request headers a browser client of the API may send cross-origin."""
    return ["Authorization", "Content-Type", "Content-SHA256", "Pipeledger-Api-Version", "X-CSRF-Token"]


class QuerylessAccessLog(logging.Filter):
    """Drops the query string from uvicorn's access log lines (``GET /path?x=y`` is logged as
    ``GET /path?…``): a query may name artifact paths, and a client that put a credential in a
    URL (refused, see :class:`HardeningMiddleware`) must not have it written to the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], args[2].split("?", 1)[0] + "?…", *args[3:])
        return True


def access_log_config() -> dict[str, object]:
    """uvicorn's logging configuration with :class:`QuerylessAccessLog` on its access log."""
    from uvicorn.config import LOGGING_CONFIG

    config = json.loads(json.dumps(LOGGING_CONFIG))
    config.setdefault("filters", {})["queryless"] = {"()": f"{__name__}.QuerylessAccessLog"}
    config["handlers"]["access"]["filters"] = ["queryless"]
    return dict(config)

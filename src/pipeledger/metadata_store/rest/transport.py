"""HTTP calls of the ``rest`` flavor: one keep-alive connection pool, errors as pipeledger's,
retries that never duplicate a record.

A call that could not be sent (connection refused, connect timeout) is sent again until the
retry window closes. A call that may have reached the server (a read timeout, a dropped
connection, 502/503/504) is sent again only when that is safe: reads and idempotent writes
(``heartbeat``, ``finish_run``, ``put_metadata``...) are; a write that inserts records with
client-made ids first asks whether its first attempt was recorded (``recover``: the record of
that id) and returns it instead; a write that is neither (``delete_run``) is not repeated.
"""

from __future__ import annotations

import logging
import random
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from pipeledger import __version__
from pipeledger.exceptions import ApiVersionError, MetadataStoreError, StoreUnavailableError
from pipeledger.metadata_store.rest.protocol import API_PREFIX, API_VERSION, VERSION_HEADER, rebuild_error

log = logging.getLogger("pipeledger.rest")
# httpx logs every request at INFO: inside a step that would fill the step's captured logs with
# the store's calls. Quiet unless the application configured httpx's logger itself.
if logging.getLogger("httpx").level == logging.NOTSET:
    logging.getLogger("httpx").setLevel(logging.WARNING)

#: Statuses meaning "the server (or what is in front of it) could not answer now".
RETRIED_STATUSES = frozenset({502, 503, 504})
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class Transport:
    """Calls the API of the pipeledger server at ``url``.

    Args:
        url: the server's base URL (``https://host:8237``), without credentials.
        token: sent as ``Authorization: Bearer``; never part of a URL or a log line.
        timeout: seconds a request may take.
        retry_window: seconds during which a failed call is retried (see the module docstring).
        verify: check the server's TLS certificate (a CA bundle's path, or False).
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        retry_window: float = 30.0,
        verify: bool | str = True,
    ) -> None:
        self.url = url.rstrip("/")
        self.retry_window = retry_window
        headers = {VERSION_HEADER: API_VERSION, "User-Agent": f"pipeledger/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        # TCP_NODELAY: a request's headers and body are two writes; with Nagle's algorithm the
        # body waits for the server's delayed ACK of the headers (40 ms on Linux) on every call.
        self.http = httpx.Client(
            base_url=self.url + API_PREFIX,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            transport=httpx.HTTPTransport(
                verify=ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify,
                limits=httpx.Limits(max_keepalive_connections=8, keepalive_expiry=25.0),
                socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            ),
        )

    def close(self) -> None:
        """Close the connections."""
        self.http.close()

    # ------------------------------------------------------------------- calls

    def info(self) -> dict[str, Any]:
        """``GET /api/v1/info`` once, without retries (opening a store fails fast), checking the
        server's API version.

        Raises:
            StoreUnavailableError: the server cannot be reached (the message names the URL).
            ApiVersionError: it speaks another API version (the message names both).
        """
        try:
            response = self.http.get("/info")
        except httpx.TransportError as exc:
            raise self._unavailable(exc) from None
        if response.status_code == 404:
            raise self._version_mismatch()
        found: dict[str, Any] = self._checked(response).json()
        if str(found.get("api_version")) != API_VERSION:
            raise self._version_mismatch(found)
        return found

    def call(
        self,
        path: str,
        body: bytes,
        *,
        resend: bool = True,
        recover: Callable[[], Any] | None = None,
    ) -> tuple[bytes, Any]:
        """POST ``body`` to ``path``; the response body, or ``(b"", recovered)`` when a retry found
        that the first attempt had been recorded (``recover()`` returned a value).

        Args:
            resend: whether sending the request twice is harmless.
            recover: for a write that is not harmless twice: returns what the write recorded,
                or None if it was not recorded (then it is sent again).

        Raises:
            StoreUnavailableError: still failing when the retry window closed (names the URL).
            the error the server answered with (its class from :mod:`pipeledger.exceptions`).
        """
        deadline = time.monotonic() + self.retry_window
        delay = 0.05
        maybe_sent = False
        while True:
            if maybe_sent and recover is not None:
                found = recover()
                if found is not None:
                    return b"", found
            try:
                response = self.http.post(path, content=body, headers={"Content-Type": "application/json"})
            except httpx.TransportError as exc:
                failure: Exception = exc
                sent = not isinstance(exc, NOT_SENT)
            else:
                if response.status_code not in RETRIED_STATUSES:
                    return self._checked(response).content, None
                failure = self._error(response)
                sent = True
            if sent and not resend and recover is None:
                raise self._unavailable(failure, tried=" (not retried: the call may have been applied)") from None
            maybe_sent = maybe_sent or sent
            if time.monotonic() + delay > deadline:
                raise self._unavailable(failure, tried=f" (retried for {self.retry_window:.0f} s)") from None
            log.warning("pipeledger server at %s: %s; retrying", self.url, _reason(failure))
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)

    def request(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        """One JSON call (``method`` on ``path`` under ``/api/v1``, ``body`` as JSON) without
        retries: the identity commands are run by a person, who sees the failure at once. The
        decoded answer.

        Raises:
            StoreUnavailableError: the server cannot be reached (the message names the URL).
            the error the server answered with (its class from :mod:`pipeledger.exceptions`).
        """
        try:
            response = self.http.request(method, path, json=body, params=params)
        except httpx.TransportError as exc:
            raise self._unavailable(exc) from None
        return self._checked(response).json()

    def stream(self, path: str, body: bytes) -> Iterator[bytes]:
        """POST ``body`` and yield the response's lines (no retries once lines arrived)."""
        try:
            with self.http.stream("POST", path, content=body, headers={"Content-Type": "application/json"}) as answer:
                if answer.status_code >= 400:
                    answer.read()
                    self._checked(answer)
                for line in answer.iter_lines():
                    if line:
                        yield line.encode()
        except httpx.TransportError as exc:
            raise self._unavailable(exc) from None

    # ------------------------------------------------------------------ errors

    def _checked(self, response: httpx.Response) -> httpx.Response:
        if response.status_code < 400:
            return response
        raise self._error(response)

    def _error(self, response: httpx.Response) -> Exception:
        """The exception of an error response: the class the server named, with its message."""
        try:
            error = response.json()["error"]
            name, message = str(error["type"]), str(error["message"])
            detail = error.get("detail") if isinstance(error.get("detail"), dict) else None
        except (ValueError, KeyError, TypeError):
            text = response.text.strip().splitlines()[0][:200] if response.text.strip() else response.reason_phrase
            return StoreUnavailableError(
                f"the pipeledger server at {self.url} answered HTTP {response.status_code} ({text}); "
                "is the URL a pipeledger server?"
            )
        if name == "ApiVersionError":
            return ApiVersionError(message)
        rebuilt = rebuild_error(name, message, detail)
        if rebuilt is None:
            return MetadataStoreError(f"the pipeledger server at {self.url} failed: {message}")
        return rebuilt

    def _unavailable(self, failure: Exception, *, tried: str = "") -> Exception:
        """The error raised when ``failure`` persists: the server's own error when it answered
        (e.g. its database is unavailable), else a :class:`StoreUnavailableError` naming the URL
        (and ``tried``: how it was retried)."""
        if not isinstance(failure, httpx.TransportError):
            return failure
        return StoreUnavailableError(
            f"cannot reach the pipeledger server at {self.url}: {_reason(failure)}{tried}; "
            "start it (`pipeledger server start`) or check the metadata store's url"
        )

    def _version_mismatch(self, found: dict[str, Any] | None = None) -> ApiVersionError:
        if found is None:
            try:
                found = self.http.get(self.url + "/health").json()
            except (httpx.HTTPError, ValueError):
                found = {}
        theirs = (found or {}).get("api_version", "unknown (no /api/v1 there)")
        server = (found or {}).get("pipeledger", "?")
        return ApiVersionError(
            f"the pipeledger server at {self.url} speaks API version {theirs} (pipeledger {server}), "
            f"this client API version {API_VERSION} (pipeledger {__version__}); install the same release on both sides"
        )


def _reason(failure: Exception) -> str:
    if isinstance(failure, httpx.ConnectError):
        return f"connection failed ({str(failure) or 'refused'})"
    if isinstance(failure, httpx.TimeoutException):
        return f"timed out ({type(failure).__name__})"
    if isinstance(failure, httpx.TransportError):
        return f"{type(failure).__name__}: {failure}"
    return str(failure)

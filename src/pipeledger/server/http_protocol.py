"""uvicorn's HTTP/1.1 protocol with ``TCP_NODELAY`` on every connection.

With ``--workers`` > 1, uvicorn binds the listening socket itself, without naming TCP as its
protocol, and asyncio then leaves Nagle's algorithm on for the connections it accepts: every
response, written as headers then body, waited for the client's delayed ACK (40 ms on Linux).
Measured: a cache look-up through a 2-worker server took 46 ms, 5 ms with this protocol.

:class:`NoDelayProtocol` extends uvicorn's ``httptools`` protocol (its C parser, llhttp) when the
package is installed (``pipeledger[server]`` installs it), else its pure-Python ``h11`` one. (A
module-level class: uvicorn pickles it for its worker processes.)
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Protocol
except ImportError:  # pragma: no cover - httptools is a dependency of pipeledger[server]
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Protocol  # type: ignore[assignment]


class NoDelayProtocol(_Protocol):
    """uvicorn's HTTP protocol that turns Nagle's algorithm off on its connection."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)

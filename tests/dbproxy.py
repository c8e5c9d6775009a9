"""A TCP proxy in front of a database server, to lose the server without touching it.

The test servers are shared: tests must not stop, kill or freeze them. A store connected
through :class:`TcpProxy` sees the server vanish when :meth:`TcpProxy.cut` closes every
connection and the listening socket (new connections are refused, as by a stopped server),
sees it restart when :meth:`TcpProxy.drop_connections` only closes the open connections, or
sees it hang when :meth:`TcpProxy.freeze` closes them and holds new ones without an answer.
"""

from __future__ import annotations

import socket
import threading
from contextlib import suppress


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``host:target_port`` until cut."""

    def __init__(self, host: str, target_port: int) -> None:
        self.target = (host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._open = True
        self._frozen = False
        threading.Thread(target=self._accept, name="tcp-proxy", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed
            if self._frozen:  # accepted, never answered
                with self._lock:
                    self._sockets.append(client)
                continue
            try:
                server = socket.create_connection(self.target, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if not self._open:
                    client.close()
                    server.close()
                    return
                self._sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def drop_connections(self) -> int:
        """Close every open connection (a server restart); new ones are still accepted."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for s in sockets:
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        return len(sockets) // 2

    def freeze(self) -> None:
        """Close the open connections and accept new ones without ever answering (a hung server)."""
        self._frozen = True
        self.drop_connections()

    def cut(self) -> None:
        """Refuse new connections and close the open ones (a stopped server)."""
        with self._lock:
            self._open = False
        self._listener.close()
        self.drop_connections()

"""A local port relayed to a pod's port, for clients outside the cluster (``kubectl port-forward``).

:class:`PortForwarder` listens on ``127.0.0.1`` on a free port; each accepted connection
gets its own remote connection (for a pod: one port-forward websocket through the API
server, :func:`pod_port_opener`) and bytes are copied both ways until either side
closes. It runs in daemon threads and stops with :meth:`PortForwarder.close`.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
from collections.abc import Callable
from typing import Any

from pipeledger.integrations.kubernetes.cluster import Cluster

logger = logging.getLogger(__name__)

#: Opens one connection to the remote port: a socket-like object (``fileno``, ``recv``,
#: ``sendall``) and the function that closes it.
RemoteOpener = Callable[[], tuple[Any, Callable[[], None]]]

_POLL = 0.25  # seconds between checks of the stop flag
_CHUNK = 65536


def pod_port_opener(cluster: Cluster, namespace: str, pod: str, port: int) -> RemoteOpener:
    """A :data:`RemoteOpener` that opens a port-forward websocket to ``pod``'s ``port``."""

    lock = threading.Lock()

    def open_remote() -> tuple[Any, Callable[[], None]]:
        from kubernetes.stream import portforward

        # ``portforward`` swaps the client's ``call_api`` while it connects: one at a time.
        with lock:
            forward = portforward(
                cluster.core().connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port)
            )
        return forward.socket(port), forward.close

    return open_remote


class PortForwarder:
    """Relays every connection to ``127.0.0.1:<port>`` to a new remote connection.

    Args:
        open_remote: opens one remote connection per local one.
        description: what the log calls the remote end, e.g. ``pod pipeledger/mysql-0:3306``.
    """

    def __init__(self, open_remote: RemoteOpener, description: str) -> None:
        self._open_remote = open_remote
        self.description = description
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(_POLL)
        self.host, self.port = self._listener.getsockname()[:2]
        #: The last failure to open a remote connection (shown when the database is unreachable).
        self.last_error: str | None = None
        threading.Thread(target=self._accept_loop, name=f"port-forward {description}", daemon=True).start()

    def __repr__(self) -> str:
        return f"<PortForwarder {self.host}:{self.port} -> {self.description}>"

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                local, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:  # the listener was closed
                return
            threading.Thread(target=self._serve, args=(local,), daemon=True).start()

    def _serve(self, local: socket.socket) -> None:
        try:
            remote, close_remote = self._open_remote()
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            logger.warning("port-forward to %s failed: %s", self.description, self.last_error)
            local.close()
            return
        try:
            relay(local, remote, self._stop)
        finally:
            local.close()
            close_remote()

    def close(self) -> None:
        """Stop accepting and end the open relays (within a fraction of a second)."""
        self._stop.set()
        self._listener.close()


def relay(local: Any, remote: Any, stop: threading.Event) -> None:
    """Copy bytes between two connected sockets until one closes, fails, or ``stop`` is set."""
    peers = {local.fileno(): remote, remote.fileno(): local}
    with selectors.DefaultSelector() as selector:
        selector.register(local, selectors.EVENT_READ)
        selector.register(remote, selectors.EVENT_READ)
        while not stop.is_set():
            for key, _ in selector.select(_POLL):
                source = key.fileobj
                try:
                    data = source.recv(_CHUNK)  # type: ignore[union-attr]
                    if not data:
                        return
                    peers[key.fd].sendall(data)
                except OSError:
                    return

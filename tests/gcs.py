"""A GCS endpoint for the tests: ``gcp-storage-emulator`` (a stub of the GCS JSON API, in this
process, objects in memory) on 127.0.0.1. gcsfs talks HTTP to it as to Google's endpoint.

What the emulator lacks (so what is not tested on it): authentication (any caller is let in,
so refused credentials cannot be shown), resumable uploads' chunk-by-chunk behaviour under
faults, and generation preconditions.
"""

from __future__ import annotations

import logging
import secrets
import socket
from typing import Any


class GcsEmulator:
    """The emulator on a free loopback port, for a test session."""

    def __init__(self) -> None:
        from gcp_storage_emulator.server import create_server

        logging.getLogger("gcp_storage_emulator").setLevel(logging.ERROR)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._server = create_server("127.0.0.1", self.port, in_memory=True)
        self._server.start()
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def filesystem(self) -> Any:
        from gcsfs.core import GCSFileSystem

        return GCSFileSystem(token="anon", endpoint_url=self.endpoint, skip_instance_cache=True)

    def new_bucket(self) -> str:
        name = f"pl-{secrets.token_hex(6)}"
        self.filesystem().mkdir(name)
        return name

    def stop(self) -> None:
        self._server.stop()

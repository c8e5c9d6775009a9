"""``pipeledger server start`` as a real process, for the tests of the ``rest`` flavor.

:class:`ServerProcess` registers a stack in its own ``PIPELEDGER_HOME`` whose metadata store
is a SQLite file or a PostgreSQL/MySQL database, starts the server on a free loopback port,
waits for ``/ready`` and stops (or kills) it. No in-process test client: the store contract
and the end-to-end tests talk to the real process over TCP.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import URL

if TYPE_CHECKING:
    from pipeledger.metadata_store.rest import RestMetadataStore

from tests.servers import server_config

#: Seconds a server may take to become ready.
READY_TIMEOUT = 60.0
CLI = "from pipeledger.cli.main import main; main()"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pipeledger(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the ``pipeledger`` command in ``home``; the result, checked by the caller."""
    return subprocess.run(
        [sys.executable, "-c", CLI, *args],
        env={**os.environ, "PIPELEDGER_HOME": str(home), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


class ServerProcess:
    """A ``pipeledger server start`` process serving the store of ``backend`` (``sqlite``, or
    ``postgresql``/``mysql`` at ``url``) from its own home under ``directory``."""

    def __init__(
        self,
        backend: str,
        directory: Path,
        url: URL | None = None,
        env: dict[str, str] | None = None,
        tls: tuple[Path, Path] | None = None,
        workers: int = 1,
        artifact_store: list[str] | None = None,
    ) -> None:
        """``artifact_store``: the options registering the server's artifact store (default: a
        local one at :attr:`artifacts`)."""
        self.workers = workers
        self.backend = backend
        self.env = env or {}
        self.tls = tls
        self.artifacts = directory / "server-artifacts"
        self.home = directory / "server-home"
        self.log = directory / "server.log"
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.database_url = url
        self.process: subprocess.Popen[bytes] | None = None
        if backend == "sqlite":
            self.sqlite_path = directory / "server.db"
            args = [f"--path={self.sqlite_path}"]
        else:
            assert url is not None
            values = server_config(backend, url)
            args = [f"--{k}={v}" for k, v in values.items() if k != "password"]
        files = artifact_store or ["--flavor=local", f"--path={self.artifacts}"]
        for command in (
            ["metadata-store", "register", "served", f"--flavor={backend}", *args],
            ["artifact-store", "register", "served", *files],
            ["stack", "register", "served", "-m", "served", "-a", "served"],
        ):
            result = pipeledger(self.home, *command, env=self.env)
            assert result.returncode == 0, result.stderr

    def start(self) -> ServerProcess:
        """Start the server and wait until ``/ready`` answers."""
        with open(self.log, "ab") as log:
            tls = ["--ssl-certfile", str(self.tls[0]), "--ssl-keyfile", str(self.tls[1])] if self.tls else []
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    CLI,
                    "server",
                    "start",
                    "--stack",
                    "served",
                    "--port",
                    str(self.port),
                    *tls,
                    "--workers",
                    str(self.workers),
                ],
                env={**os.environ, "PIPELEDGER_HOME": str(self.home), **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited: {self.log.read_text()[-2000:]}")
            if self.ready():
                return self
            time.sleep(0.05)
        raise AssertionError(f"the server was not ready in {READY_TIMEOUT} s: {self.log.read_text()[-2000:]}")

    def ready(self) -> bool:
        """Whether ``/ready`` answers 200."""
        import ssl

        context = ssl.create_default_context(cafile=str(self.tls[0])) if self.tls else None
        try:
            with urllib.request.urlopen(self.url + "/ready", timeout=1, context=context) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server (SIGTERM; SIGKILL after 10 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def client(self, *, retry_window: float = 10.0, timeout: float = 30.0) -> RestMetadataStore:
        """A ``rest`` store talking to this server."""
        from pipeledger.metadata_store.rest import RestMetadataStore
        from pipeledger.metadata_store.rest.transport import Transport

        return RestMetadataStore(Transport(self.url, retry_window=retry_window, timeout=timeout))

    def empty(self) -> None:
        """Delete every record of the served database (its store identity stays: the server keeps it)."""
        from sqlalchemy import create_engine

        from pipeledger.metadata_store.sql.schema import metadata

        target = f"sqlite:///{self.sqlite_path}" if self.backend == "sqlite" else self.database_url
        assert target is not None
        engine = create_engine(target)
        try:
            with engine.begin() as conn:
                conn.execute(text("UPDATE step_runs SET cached_from_id = NULL"))
                for table in reversed(metadata.sorted_tables):
                    if table.name != "store_identity":
                        conn.execute(text(f"DELETE FROM {table.name}"))
        finally:
            engine.dispose()

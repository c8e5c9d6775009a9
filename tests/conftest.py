"""Shared fixtures: every test runs with its own PIPELEDGER_HOME and quiet progress."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.engine import URL

from pipeledger.stack.registry import close_stacks
from tests.servers import cannot_run, check_backends_variable, enabled_backends, mlmd_enabled, scratch_database

if TYPE_CHECKING:
    from tests.gcs import GcsEmulator
    from tests.mlmd_service import MlmdTestService
    from tests.rest_server import ServerProcess
    from tests.s3 import MotoS3


def pytest_configure(config: pytest.Config) -> None:
    """Refuse an unknown name in ``$PIPELEDGER_TEST_BACKENDS`` before collecting anything."""
    check_backends_variable()


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh ``$PIPELEDGER_HOME`` for each test; progress display off."""
    path = tmp_path / "home"
    monkeypatch.setenv("PIPELEDGER_HOME", str(path))
    monkeypatch.setenv("PIPELEDGER_QUIET", "1")
    yield path
    close_stacks()


@pytest.fixture(scope="session")
def server_urls() -> Iterator[dict[str, URL]]:
    """One scratch database per enabled server backend for the whole session (dropped at the end)."""
    with ExitStack() as stack:
        yield {
            backend: stack.enter_context(scratch_database(backend))
            for backend in enabled_backends()
            if backend != "sqlite"
        }


@pytest.fixture(scope="session")
def rest_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestServers]:
    """``pipeledger server start`` processes for the whole session, one per database behind it,
    started on first use (see tests/rest_server.py); ``rest_servers.get("sqlite")``."""
    servers = RestServers(tmp_path_factory)
    yield servers
    servers.stop()


class RestServers:
    """Server processes started on demand, by the database behind them."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._factory = tmp_path_factory
        self._running: dict[str, ServerProcess] = {}
        self._databases = ExitStack()

    def get(self, backend: str) -> ServerProcess:
        """The running server in front of ``backend`` (``sqlite``, ``postgresql``, ``mysql``)."""
        from tests.rest_server import ServerProcess

        if backend not in self._running:
            url = None if backend == "sqlite" else self._databases.enter_context(scratch_database(backend))
            directory = self._factory.mktemp(f"rest-{backend}")
            self._running[backend] = ServerProcess(backend, directory, url).start()
        return self._running[backend]

    def stop(self) -> None:
        """Stop every server, then drop their databases."""
        for server in self._running.values():
            server.stop()
        self._databases.close()


@pytest.fixture(scope="session")
def mlmd_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlmdTestService]:
    """ML Metadata's gRPC service on a loopback port, for the whole session (see tests/mlmd_service.py).

    Tests call ``mlmd_service.reset(path)`` to start from an empty database.
    """
    if not mlmd_enabled():
        pytest.skip("kubeflow is not among PIPELEDGER_TEST_BACKENDS, or ml-metadata has no wheel for this Python")
    try:
        from tests.mlmd_service import MlmdTestService
    except ImportError as error:
        missing = f"ml-metadata cannot be imported ({error})"
    else:
        missing = ""
    if missing:  # outside the except block: one line, no chained traceback
        cannot_run("kubeflow", missing, "pip install 'pipeledger[kubeflow]' (Python <= 3.11)")

    service = MlmdTestService(tmp_path_factory.mktemp("mlmd") / "first.db")
    yield service
    service.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoS3]:
    """moto's S3 server on a loopback port for the whole session (see tests/s3.py)."""
    from tests.s3 import MotoS3

    server = MotoS3()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server: MotoS3) -> str:
    """A new, empty bucket on the session's S3 server."""
    return s3_server.new_bucket()


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GcsEmulator]:
    """gcp-storage-emulator on a loopback port for the whole session (see tests/gcs.py)."""
    from tests.gcs import GcsEmulator

    server = GcsEmulator()
    yield server
    server.stop()

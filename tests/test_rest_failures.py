"""The ``rest`` flavor when the server fails: killed in the middle of a run (restarted within the
retry window, or not), and responses lost after the server applied a write (retries must not
record anything twice).

Real processes throughout: the server is ``pipeledger server start`` (tests/rest_server.py), the
run a Python process of its own; a TCP proxy between client and server loses responses.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from pipeledger.metadata_store.rest import RestMetadataStore
from pipeledger.metadata_store.rest.transport import Transport
from pipeledger.models import RunCreate, Status, StepRunCreate
from pipeledger.testing.helpers import artifact, at
from tests.rest_server import ServerProcess, pipeledger
from tests.servers import rest_enabled

#: Heartbeats every second; a run without one for 3 s shows crashed.
HEARTBEAT = {"PIPELEDGER_HEARTBEAT_INTERVAL": "1", "PIPELEDGER_HEARTBEAT_TIMEOUT": "3"}

pytestmark = pytest.mark.skipif(not rest_enabled(), reason="rest is not among PIPELEDGER_TEST_BACKENDS")

SCRIPT = """
import time
from pipeledger import pipeline, step

@step
def slow() -> int:
    print("slow started", flush=True)
    time.sleep(4)
    return 1

@step
def after(value: int) -> int:
    return value + 1

@pipeline
def killed():
    after(slow())

killed.with_options(enable_cache=False)()
print("run finished")
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of this test's own (it gets killed), in front of SQLite."""
    (tmp_path / "server").mkdir()
    started = ServerProcess("sqlite", tmp_path / "server").start()
    yield started
    started.stop()


def client_home(tmp_path: Path, server: ServerProcess, retry_window: float) -> Path:
    home = tmp_path / "client-home"
    for args in (
        [
            "metadata-store",
            "register",
            "team",
            "--flavor=rest",
            f"--url={server.url}",
            f"--retry-window={retry_window}",
        ],
        ["stack", "register", "team", "-m", "team"],
        ["stack", "set", "team"],
    ):
        result = pipeledger(home, *args)
        assert result.returncode == 0, result.stderr
    return home


def start_run(tmp_path: Path, home: Path) -> subprocess.Popen[str]:
    script = tmp_path / "killed_pipeline.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PIPELEDGER_HOME": str(home), "PIPELEDGER_QUIET": "1", **HEARTBEAT}
    return subprocess.Popen(
        [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )


def wait_for_running_step(server: ServerProcess, name: str) -> None:
    store = server.client()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for run in store.list_runs(pipeline="killed"):
                if any(s.name == name and s.status is Status.RUNNING for s in store.list_step_runs(run.id)):
                    return
            time.sleep(0.1)
        raise AssertionError(f"step {name} never ran")
    finally:
        store.close()


def test_killed_server_restarted_within_the_retry_window_the_run_completes(
    tmp_path: Path, server: ServerProcess
) -> None:
    home = client_home(tmp_path, server, retry_window=60)
    run = start_run(tmp_path, home)
    wait_for_running_step(server, "slow")
    server.kill()
    time.sleep(1.5)
    server.start()
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert "run finished" in out
    store = server.client()
    (recorded,) = store.list_runs(pipeline="killed")
    assert recorded.status is Status.COMPLETED
    steps = store.list_step_runs(recorded.id)
    assert sorted((s.name, s.status.value) for s in steps) == [("after", "completed"), ("slow", "completed")]
    store.close()
    checked = pipeledger(home, "metadata-store", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_killed_server_not_back_in_time_the_run_fails_naming_the_url(tmp_path: Path, server: ServerProcess) -> None:
    home = client_home(tmp_path, server, retry_window=2)
    run = start_run(tmp_path, home)
    wait_for_running_step(server, "slow")
    server.kill()
    _out, err = run.communicate(timeout=120)
    assert run.returncode != 0
    assert f"StoreUnavailableError: cannot reach the pipeledger server at {server.url}" in err
    server.start()
    time.sleep(3.5)  # the heartbeat timeout: the run shows crashed, and gc records it so
    collected = pipeledger(home, "gc", "--yes", env=HEARTBEAT)
    assert collected.returncode == 0, collected.stderr
    store = server.client()
    (recorded,) = store.list_runs(pipeline="killed")
    assert recorded.status is Status.CRASHED
    store.close()
    checked = pipeledger(home, "metadata-store", "check", env=HEARTBEAT)
    assert checked.returncode == 0, checked.stdout + checked.stderr


# --------------------------------------------------------------- lost responses


class LosingProxy:
    """Forwards 127.0.0.1:<port> to the server; :meth:`lose_next_response` makes it drop the next
    response the server sends and close that connection (the server applied the request, the
    client never hears so)."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._lose = threading.Event()
        self.lost = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def lose_next_response(self) -> None:
        self._lose.set()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, responses: bool) -> None:
        try:
            while data := source.recv(65536):
                if responses and self._lose.is_set():
                    self._lose.clear()
                    self.lost += 1
                    break
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


@pytest.fixture
def through_proxy(rest_servers: object) -> Iterator[tuple[RestMetadataStore, LosingProxy]]:
    server: ServerProcess = rest_servers.get("sqlite")  # type: ignore[attr-defined]
    server.empty()
    proxy = LosingProxy(server.port)
    store = RestMetadataStore(Transport(f"http://127.0.0.1:{proxy.port}", retry_window=10))
    yield store, proxy
    store.close()
    proxy.close()


def test_lost_responses_of_writes_never_record_twice(through_proxy: tuple[RestMetadataStore, LosingProxy]) -> None:
    store, proxy = through_proxy
    proxy.lose_next_response()
    run = store.create_run(RunCreate(pipeline_name="lossy", name="lossy-{n}"))
    proxy.lose_next_response()
    step = store.start_step(StepRunCreate(run_id=run.id, name="load", start_time=at(1)))
    proxy.lose_next_response()
    outputs = store.finish_step(step.id, Status.COMPLETED, end_time=at(2), outputs=[artifact("data")])
    proxy.lose_next_response()
    store.heartbeat(run.id, at(3))
    proxy.lose_next_response()
    store.finish_run(run.id, Status.COMPLETED, end_time=at(4))
    assert proxy.lost == 5
    assert [r.id for r in store.list_runs(pipeline="lossy")] == [run.id]
    assert run.name == "lossy-1" and store.get_run(run.id).status is Status.COMPLETED
    assert [s.id for s in store.list_step_runs(run.id)] == [step.id]
    assert [a.id for a in outputs] == [io.artifact.id for io in store.list_step_io([step.id])]
    assert store.integrity_problems() == []


def test_a_lost_delete_is_not_sent_twice(through_proxy: tuple[RestMetadataStore, LosingProxy]) -> None:
    from pipeledger.exceptions import StoreUnavailableError

    store, proxy = through_proxy
    run = store.create_run(RunCreate(pipeline_name="lossy", name="lossy-{n}"))
    proxy.lose_next_response()
    with pytest.raises(StoreUnavailableError, match="not retried: the call may have been applied"):
        store.delete_run(run.id)
    assert store.list_runs(pipeline="lossy") == []

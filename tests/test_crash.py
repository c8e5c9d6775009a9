"""A run whose process is killed (SIGKILL) while a step writes its output.

The store stays consistent (``metadata-store check`` passes: no artifact recorded without its
files, no half-written step), the run reads ``crashed`` once its heartbeat is older than the
timeout, ``run list`` marks it (and its running step) crashed in the database, the temporary
files the killed write left are collected by ``gc``, and a rerun recomputes only the steps
that did not finish. On SQLite, MariaDB and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeledger import Client, Status, pipeline, step
from pipeledger.artifacts.materializers import Materializer, register_materializer
from pipeledger.cli.main import cli
from pipeledger.maintenance import find_orphans
from pipeledger.models import JSON
from pipeledger.stack.registry import get_stack
from tests.servers import enabled_backends
from tests.test_concurrency import REPO, python_env, use_backend

INTERVAL, TIMEOUT = "0.2", "1"


# --- a pipeline whose second step blocks while saving its output -----------------------------


class Total:
    """A step output whose materializer waits for the file ``release`` before it finishes saving."""

    def __init__(self, value: int, release: str = "", saving: str = "") -> None:
        self.value = value
        self.release = release
        self.saving = saving


class BlockingMaterializer(Materializer):
    """Writes the first half of a ``Total``, touches ``saving``, waits for ``release``, writes the rest."""

    handled_types = (Total,)

    def save(self, value: Any, fs: Any, path: str) -> dict[str, JSON]:
        with fs.open(f"{path}/part-1.json", "w") as f:
            json.dump({"value": value.value}, f)
        Path(value.saving).touch()
        while not Path(value.release).exists():
            time.sleep(0.02)
        with fs.open(f"{path}/part-2.json", "w") as f:
            json.dump({"done": True}, f)
        return {}

    def load(self, fs: Any, path: str, data_type: type | None) -> Any:
        with fs.open(f"{path}/part-1.json") as f:
            return Total(json.load(f)["value"])


register_materializer(BlockingMaterializer())


@step
def prepare(n: int = 4) -> list:
    return list(range(n))


@step
def slow_total(numbers: list, release: str = "", saving: str = "") -> Total:
    return Total(sum(numbers), release, saving)


@step
def report(total: Total) -> str:
    return f"total={total.value}"


@pipeline(name="crashy")
def crashy(release: str = "", saving: str = ""):
    report(slow_total(prepare(), release=release, saving=saving))


WORKER = """
import sys
from tests.test_crash import crashy
crashy(release=sys.argv[1], saving=sys.argv[2])
"""


# --- the test -----------------------------------------------------------------------------------


@pytest.fixture(params=enabled_backends())
def backend(request: pytest.FixtureRequest, home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("PIPELEDGER_HEARTBEAT_INTERVAL", INTERVAL)
    monkeypatch.setenv("PIPELEDGER_HEARTBEAT_TIMEOUT", TIMEOUT)
    with use_backend(request.param, monkeypatch):
        yield request.param


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def wait_for(condition: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_killed_run_is_consistent_reads_crashed_and_reruns_only_unfinished_steps(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release, saving = tmp_path / "release", tmp_path / "saving"
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(release), str(saving)],
        cwd=REPO,
        env=python_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: saving.exists() or proc.poll() is not None, "the second step to save its output")
        assert proc.poll() is None, proc.communicate()[1]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    client = Client()
    store = client.store
    (run,) = client.list_runs(pipeline="crashy")
    steps = run.steps
    assert list(steps) == ["prepare", "slow_total"]  # report never started
    recorded = {s.name: s.status for s in store.list_step_runs(run.id)}
    assert recorded == {"prepare": Status.COMPLETED, "slow_total": Status.RUNNING}
    assert dict(steps["slow_total"].outputs) == {}  # nothing recorded for the interrupted write
    artifact_store = get_stack().artifact_store
    root = Path(artifact_store.root)
    (step_dir,) = root.glob(f"stores/*/crashy/*-{run.id}/slow_total-*")
    (leftover,) = step_dir.iterdir()  # the half-written output ...
    assert leftover.name.startswith(".tmp-")  # ... never reached its final place
    assert (leftover / "part-1.json").exists() and not (leftover / "part-2.json").exists()

    # Right after the crash (heartbeat still fresh): consistent.
    monkeypatch.setenv("PIPELEDGER_HEARTBEAT_TIMEOUT", "600")
    code, out, err = invoke("metadata-store", "check")
    assert (code, err) == (0, ""), out + err
    assert "no problem found (1 artifact checked)" in out
    monkeypatch.setenv("PIPELEDGER_HEARTBEAT_TIMEOUT", TIMEOUT)

    # Once the heartbeat is older than the timeout, the run and its running step read crashed.
    wait_for(lambda: client.get_run(run.id).status is Status.CRASHED, "the run to read crashed", timeout=10)
    view = client.get_run(run.id)
    assert view.record.status is Status.RUNNING  # not yet marked in the database
    assert view.steps["slow_total"].status is Status.CRASHED
    assert view.steps["prepare"].status is Status.COMPLETED

    # `run list` marks it crashed in the database, the running step too.
    code, out, _ = invoke("run", "list")
    assert code == 0 and run.name in out and "crashed" in out
    marked = store.get_run(run.id)
    assert marked.status is Status.CRASHED and marked.end_time is not None
    assert "heartbeat" in (marked.error or "")
    by_name = {s.name: s for s in store.list_step_runs(run.id)}
    assert by_name["slow_total"].status is Status.CRASHED and by_name["slow_total"].end_time is not None
    assert by_name["prepare"].status is Status.COMPLETED
    code, out, err = invoke("metadata-store", "check")
    assert (code, err) == (0, ""), out + err

    # The temporary files of the killed write (its step run is no longer running): young ones
    # are left alone (the grace period), old ones are collected by gc.
    assert find_orphans(store, artifact_store).temporary == []
    assert find_orphans(store, artifact_store, grace=0).temporary == [str(leftover)]
    two_hours_ago = time.time() - 2 * 3600
    for path in (leftover, *leftover.iterdir()):
        os.utime(path, (two_hours_ago, two_hours_ago))
    code, out, err = invoke("gc", "--yes")
    assert code == 0, out + err
    assert f"orphaned: {leftover}" in out and "Removed 1 orphaned path." in out
    assert not leftover.exists()
    assert client.get_run(run.id).status is Status.CRASHED  # gc without a retention policy keeps runs

    # A rerun recomputes only what did not finish.
    release.touch()
    rerun = crashy(release=str(release), saving=str(saving))
    assert rerun.status is Status.COMPLETED
    assert {n: s.status for n, s in rerun.steps.items()} == {
        "prepare": Status.CACHED,
        "slow_total": Status.COMPLETED,
        "report": Status.COMPLETED,
    }
    assert rerun.steps["prepare"].cached_from.id == steps["prepare"].id  # type: ignore[union-attr]
    assert "crashed" in rerun.steps["slow_total"].cache_explanation
    assert rerun.steps["report"].output.read() == "total=6"
    assert rerun.steps["slow_total"].output.read().value == 6
    assert not list(root.rglob(".tmp*"))
    code, out, err = invoke("metadata-store", "check", "--deep")
    assert (code, err) == (0, ""), out + err

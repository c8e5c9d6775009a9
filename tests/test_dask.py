"""The ``dask`` orchestrator on real clusters: a LocalCluster of worker processes talking TCP on
loopback, and separately started ``dask scheduler`` / ``dask worker`` processes.

Faults are real too: a step SIGKILLs its own worker process, the scheduler process is killed,
a client is interrupted with SIGINT; a worker "on another machine" runs in its own UTS and
mount namespaces (another hostname, another view of the filesystem) when the tests run as root.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeledger import Client, RunFailedError, Status
from pipeledger.exceptions import ConfigError, OrchestratorUnavailableError
from pipeledger.stack.flavor import ComponentType
from pipeledger.stack.manager import StackManager
from tests import parallel_pipelines as P

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[1]
DASK = str(Path(sys.executable).with_name("dask"))


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A LocalCluster of two single-threaded worker processes on loopback, for the module."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as local:
        yield local


def use_dask(**config: Any) -> None:
    manager = StackManager()
    manager.register_component(ComponentType.ORCHESTRATOR, "dk", "dask", {k: str(v) for k, v in config.items()})
    manager.register_stack("dk", "dk", "default", "default")
    manager.set_active_stack("dk")


def when_a_step_runs(action: Any) -> None:
    """Call ``action`` in a background thread once a step of the latest run is recorded running."""

    def wait_then_act() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            runs = Client().list_runs()
            if runs and any(s.status is Status.RUNNING for s in Client().get_run(runs[0].id).steps.values()):
                break
            time.sleep(0.2)
        action()

    threading.Thread(target=wait_then_act, daemon=True).start()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_local_cluster_it_starts_runs_the_steps_in_worker_processes() -> None:
    use_dask(n_workers=2, threads_per_worker=1)
    run = P.naps(width=2, seconds=0.3)
    assert run.status is Status.COMPLETED
    pids = {run.steps[f"nap_{i}"].metadata["pid"] for i in range(2)}
    assert os.getpid() not in pids
    assert run.steps["gather"].output.read() == 2
    assert run.steps["nap_1"].logs.startswith("nap 1 in process")
    assert run.stack["orchestrator"]["flavor"] == "dask"
    # Its workers are not daemonic: a step may start processes of its own.
    assert P.child_processes().steps["uses_processes"].output.read() == [0, 1, 4, 9]


def test_a_failing_branch_and_a_cached_second_run(cluster: Any) -> None:
    use_dask(address=cluster.scheduler_address)
    with pytest.raises(RunFailedError, match="failed in step 'explode'"):
        P.failing_branch()
    run = Client().get_run("failing_branch-1")
    assert {n: s.status for n, s in run.steps.items()} == {
        "source": Status.COMPLETED,
        "left": Status.COMPLETED,
        "explode": Status.FAILED,
        "combine": Status.SKIPPED,
        "after_left": Status.COMPLETED,
    }
    assert "ValueError: this branch fails" in (run.steps["explode"].error or "")
    again = P.diamond()
    assert again.steps["source"].status is Status.CACHED  # reused from the failing run's source
    assert again.steps["combine"].output.read() == {"sum": 15, "n": 6}


def test_a_step_whose_resources_no_worker_has_is_refused(cluster: Any) -> None:
    use_dask(address=cluster.scheduler_address)
    with pytest.raises(ConfigError, match=r"step 'needs_gpu' needs resources GPU=1, which no Dask worker has"):
        P.gpu_pipeline()
    assert Client().list_runs() == []  # refused before anything was recorded


def test_a_step_the_workers_cannot_import_is_refused(cluster: Any, tmp_path: Path) -> None:
    (tmp_path / "only_here.py").write_text(
        textwrap.dedent(
            """
            from pipeledger import pipeline, step

            @step
            def private() -> int:
                return 1

            @pipeline
            def lonely():
                private()
            """
        )
    )
    sys.path.insert(0, str(tmp_path))
    try:
        import only_here  # type: ignore[import-not-found]

        use_dask(address=cluster.scheduler_address)
        with pytest.raises(ConfigError, match=r"step 'private' \(only_here.private\) cannot be loaded on Dask worker"):
            only_here.lonely()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("only_here", None)


def test_a_worker_killed_during_a_step_is_retried_in_the_same_step_record(tmp_path: Path) -> None:
    use_dask(n_workers=2, retries=2)
    marker = tmp_path / "killed-once"
    run = P.killed_once(marker=str(marker))
    assert marker.exists()  # the first attempt ran and killed its worker
    step = run.steps["kill_worker_once"]
    assert step.status is Status.COMPLETED and step.output.read() == 3
    assert step.metadata["pipeledger.attempts"] == 2
    assert "attempt 2: the worker running the previous attempt was lost" in step.logs
    names = [s.name for s in Client().get_run(run.name)._store.list_step_runs(run.id)]
    assert names.count("kill_worker_once") == 1  # one record, however many attempts


def test_a_worker_killed_at_every_attempt_fails_the_step_clearly() -> None:
    use_dask(n_workers=2, retries=1)
    with pytest.raises(RunFailedError, match="the worker running it was lost") as caught:
        P.killed_always()
    run = Client().get_run(caught.value.run_name)
    assert run.status is Status.FAILED
    step = run.steps["kill_worker_always"]
    assert step.status is Status.FAILED
    assert "killed, or out of memory" in (step.error or "")


@pytest.fixture
def cli_cluster(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], subprocess.Popen[bytes]]]:
    """``dask scheduler`` and one ``dask worker``, started as separate processes."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    log = (tmp_path / "dask.log").open("wb")
    scheduler = subprocess.Popen(
        [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    worker = subprocess.Popen(
        [DASK, "worker", address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard", "--host", "127.0.0.1"],
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        with distributed.Client(address, timeout=30) as client:
            client.wait_for_workers(1, timeout=30)
        yield address, scheduler, worker
    finally:
        for process in (worker, scheduler):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def test_separately_started_scheduler_and_worker(
    cli_cluster: tuple[str, subprocess.Popen[bytes], subprocess.Popen[bytes]],
) -> None:
    address, scheduler, _worker = cli_cluster
    use_dask(address=address, connect_timeout=3)
    run = P.diamond()
    assert run.status is Status.COMPLETED
    assert run.steps["combine"].output.read() == {"sum": 15, "n": 6}

    # The scheduler is killed while a step runs: the run fails with one clear line.
    when_a_step_runs(lambda: os.killpg(scheduler.pid, signal.SIGKILL))
    started = time.monotonic()
    with pytest.raises(OrchestratorUnavailableError, match=r"lost the Dask scheduler at tcp://127\.0\.0\.1") as caught:
        P.naps(width=2, seconds=30)
    assert time.monotonic() - started < 25
    assert "\n" not in str(caught.value) and "scheduler-connection-lost" in str(caught.value)
    run = Client().get_run("naps-1")
    assert run.status is Status.FAILED
    assert not [s for s in run.steps.values() if s.status is Status.RUNNING]


needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="a worker 'on another machine' needs unshare (root)"
)


def start_cluster(tmp_path: Path, worker_prefix: list[str]) -> tuple[str, list[subprocess.Popen[bytes]]]:
    """A ``dask scheduler`` and one ``dask worker`` run through ``worker_prefix`` (e.g. in other
    namespaces); returns the address and the processes."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    log = (tmp_path / "dask.log").open("ab")
    scheduler = subprocess.Popen(
        [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    worker_cmd = f"{DASK} worker {address} --nthreads 1 --nworkers 1 --no-dashboard --host 127.0.0.1"
    worker = subprocess.Popen(
        [*worker_prefix, "sh", "-c", worker_cmd], env=env, stdout=log, stderr=log, start_new_session=True
    )
    with distributed.Client(address, timeout=30) as client:
        client.wait_for_workers(1, timeout=30)
    return address, [worker, scheduler]


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@needs_root
def test_a_worker_on_another_machine_cannot_record_into_sqlite(tmp_path: Path) -> None:
    prefix = ["unshare", "--uts", "sh", "-c", 'hostname worker-elsewhere && exec "$@"', "-"]
    address, processes = start_cluster(tmp_path, prefix)
    try:
        use_dask(address=address)
        with pytest.raises(ConfigError) as caught:
            P.diamond()
    finally:
        stop(processes)
    message = str(caught.value)
    assert "metadata store 'default' (flavor sqlite) is a file on this machine" in message
    assert "on worker-elsewhere" in message and "postgresql, mysql, or a rest store" in message
    assert Client().list_runs() == []


@needs_root
def test_an_artifact_store_the_workers_do_not_see_is_refused(tmp_path: Path, home: Path) -> None:
    # The worker's view of the filesystem has an empty directory where this process's home is.
    prefix = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        f'mount -t tmpfs none {home.parent} && exec "$@"',
        "-",
    ]
    home.mkdir(parents=True, exist_ok=True)
    address, processes = start_cluster(tmp_path, prefix)
    try:
        use_dask(address=address)
        with pytest.raises(ConfigError) as caught:
            P.diamond()
    finally:
        stop(processes)
    message = str(caught.value)
    assert f"artifact store 'default' (flavor local) at {home / 'artifacts'} is not visible from Dask worker" in message
    assert "object store" in message
    assert Client().list_runs() == []
    assert not list((home / "artifacts").glob(".pipeledger-probe-*"))  # the probe file is removed


NO_GUARD_SCRIPT = """
import sys

from pipeledger import pipeline, step
from pipeledger.stack.flavor import ComponentType
from pipeledger.stack.manager import StackManager


@step
def one() -> int:
    print("one speaks")
    return 1


@step
def two(x: int) -> int:
    return x + 1


@pipeline
def script_pipeline():
    two(one())


# No `if __name__ == "__main__":` guard, on purpose: the workers must not run this again.
manager = StackManager()
manager.register_component(ComponentType.ORCHESTRATOR, sys.argv[1], sys.argv[1], {})
manager.register_stack(sys.argv[1], sys.argv[1], "default", "default")
manager.set_active_stack(sys.argv[1])
run = script_pipeline()
print("RESULT", run.steps["two"].output.read(), run.steps["one"].entrypoint, run.steps["one"].status.value)
"""


def test_a_script_without_a_main_guard_runs_its_own_steps_on_a_local_cluster(tmp_path: Path, home: Path) -> None:
    script = tmp_path / "no_guard.py"
    script.write_text(NO_GUARD_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    outputs = []
    for flavor in ("local", "dask"):
        done = subprocess.run(
            [sys.executable, str(script), flavor], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-3000:]
        outputs.append(next(line for line in done.stdout.splitlines() if line.startswith("RESULT")))
    assert outputs[0] == "RESULT 2 no_guard.one completed"
    # The same entrypoint and cache key on the workers: the dask run reuses the local run's results.
    assert outputs[1] == "RESULT 2 no_guard.one cached"
    assert [r.name for r in Client().list_runs()] == ["script_pipeline-2", "script_pipeline-1"]


@needs_root
@pytest.mark.server
def test_a_worker_on_another_machine_records_into_a_server_database(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from tests.servers import enabled_backends, open_empty_store, server_config

    if "postgresql" not in enabled_backends():
        pytest.skip("postgresql is not among PIPELEDGER_TEST_BACKENDS")
    open_empty_store("postgresql", tmp_path, request).close()
    url = request.getfixturevalue("server_urls")["postgresql"]
    prefix = ["unshare", "--uts", "sh", "-c", 'hostname worker-elsewhere && exec "$@"', "-"]
    address, processes = start_cluster(tmp_path, prefix)
    try:
        manager = StackManager()
        manager.register_component(ComponentType.METADATA_STORE, "pg", "postgresql", server_config("postgresql", url))
        manager.register_component(ComponentType.ORCHESTRATOR, "far", "dask", {"address": address})
        manager.register_stack("far", "far", "default", "pg")
        manager.set_active_stack("far")
        run = P.diamond()
    finally:
        stop(processes)
    assert run.status is Status.COMPLETED
    assert run.steps["combine"].output.read() == {"sum": 15, "n": 6}
    assert run.stack["metadata_store"]["flavor"] == "postgresql"


def test_configuration_mistakes_are_refused_in_one_line() -> None:
    from click.testing import CliRunner

    from pipeledger.cli.main import cli

    result = CliRunner().invoke(
        cli, ["orchestrator", "register", "x", "--flavor=dask", "--address=tcp://a:1", "--n-workers=2"]
    )
    assert result.exit_code != 0
    assert result.output.strip() == (
        "Error: orchestrator 'x' (flavor dask): give either address (an existing cluster) or n_workers "
        "(a LocalCluster), not both"
    )


def test_a_scheduler_that_cannot_be_reached_is_named_before_anything_is_recorded() -> None:
    use_dask(address=f"tcp://127.0.0.1:{free_port()}", connect_timeout=1)
    with pytest.raises(
        OrchestratorUnavailableError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:\d+"
    ):
        P.diamond()
    assert Client().list_runs() == []


def test_a_cluster_left_without_workers_fails_the_run_instead_of_waiting(tmp_path: Path) -> None:
    address, processes = start_cluster(tmp_path, [])
    worker = processes[0]

    try:
        use_dask(address=address, connect_timeout=4)
        when_a_step_runs(lambda: os.killpg(worker.pid, signal.SIGKILL))  # the worker and its nanny
        started = time.monotonic()
        with pytest.raises(OrchestratorUnavailableError, match="has had no worker for 4 s during run 'naps-1'"):
            P.naps(width=2, seconds=30)
        assert time.monotonic() - started < 40
    finally:
        stop(processes)
    run = Client().get_run("naps-1")
    assert run.status is Status.FAILED
    assert not [s for s in run.steps.values() if s.status is Status.RUNNING]


@needs_root
def test_a_worker_on_another_machine_records_through_a_rest_store_into_s3(
    tmp_path: Path, home: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker has another hostname and sees none of this process's files: it records
    through `pipeledger server` (the rest flavor) and writes artifacts to S3 (moto)."""
    from tests.s3 import register_s3_stack
    from tests.servers import rest_enabled
    from tests.test_rest_flavor import register_rest_stack

    if not rest_enabled():
        pytest.skip("rest is not among PIPELEDGER_TEST_BACKENDS")
    server = request.getfixturevalue("rest_servers").get("sqlite")
    s3_server = request.getfixturevalue("s3_server")
    register_rest_stack(server.url, monkeypatch)  # metadata store "team"
    register_s3_stack(monkeypatch, s3_server.endpoint, s3_server.new_bucket(), name="bucket")
    home.mkdir(parents=True, exist_ok=True)
    hide = f'hostname worker-elsewhere && mount -t tmpfs none {home.parent} && exec "$@"'
    address, processes = start_cluster(
        tmp_path, ["unshare", "--uts", "--mount", "--propagation", "private", "sh", "-c", hide, "-"]
    )
    try:
        manager = StackManager()
        manager.register_component(ComponentType.ORCHESTRATOR, "far", "dask", {"address": address})
        manager.register_stack("far", "far", "bucket", "team")
        manager.set_active_stack("far")
        run = P.diamond()
    finally:
        stop(processes)
    assert run.status is Status.COMPLETED
    assert run.steps["combine"].output.read() == {"sum": 15, "n": 6}
    assert run.steps["combine"].output.uri.startswith("s3://")
    assert run.stack["metadata_store"]["flavor"] == "rest"

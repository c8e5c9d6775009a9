"""The local orchestrator with ``max_parallelism``: independent steps at once in worker
processes (or threads), each recorded on its own, failures handled as configured."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pipeledger import Client, RunFailedError, Status
from pipeledger.exceptions import ConfigError
from pipeledger.stack.flavor import ComponentType
from pipeledger.stack.manager import StackManager
from tests import parallel_pipelines as P


def use_local(**config: Any) -> None:
    """Register a local orchestrator with ``config`` and make it the active stack's."""
    manager = StackManager()
    manager.register_component(ComponentType.ORCHESTRATOR, "par", "local", {k: str(v) for k, v in config.items()})
    manager.register_stack("par", "par", "default", "default")
    manager.set_active_stack("par")


def overlapping(run: Any, names: list[str]) -> bool:
    """Whether some two of the named steps ran at the same time (from their recorded metadata)."""
    spans = sorted((run.steps[n].metadata["started"], run.steps[n].metadata["ended"]) for n in names)
    return any(b[0] < a[1] for a, b in itertools.pairwise(spans))


@pytest.mark.parametrize("workers", ["processes", "threads"])
def test_independent_steps_run_at_once_each_recorded(workers: str) -> None:
    use_local(max_parallelism=4, workers=workers)
    run = P.naps(width=4, seconds=0.6)
    assert run.status is Status.COMPLETED
    naps = [f"nap_{i}" for i in range(4)]
    assert overlapping(run, naps)
    span = max(run.steps[n].metadata["ended"] for n in naps) - min(run.steps[n].metadata["started"] for n in naps)
    assert span < 4 * 0.6  # one after another, the naps alone would take 2.4 s
    pids = {run.steps[n].metadata["pid"] for n in naps}
    assert (len(pids) > 1) == (workers == "processes")
    for i, name in enumerate(naps):  # each step's own output in its own logs
        assert run.steps[name].logs.startswith(f"nap {i} in process")
        assert run.steps[name].outputs["napped"].read()["index"] == i
    assert run.steps["gather"].output.read() == 2
    assert run.stack["orchestrator"]["config"]["max_parallelism"] == 4


def test_logs_are_captured_per_step_in_threads() -> None:
    use_local(max_parallelism=4, workers="threads")
    run = P.fan_out(width=8)
    for i in range(8):
        logs = run.steps[f"scale_{i}"].logs
        assert logs.count("scaling by") == 1 and f"scaling by {i}\n" in logs
        assert logs.count("scaled 4 values") == 1


@pytest.mark.parametrize("max_parallelism", [1, 3])
def test_failure_skips_dependents_and_fails_the_run(max_parallelism: int) -> None:
    use_local(max_parallelism=max_parallelism)
    with pytest.raises(RunFailedError, match=r"failed in step 'explode'.*this branch fails"):
        P.failing_branch()
    run = Client().get_run("failing_branch-1")
    statuses = {name: s.status for name, s in run.steps.items()}
    assert statuses == {
        "source": Status.COMPLETED,
        "left": Status.COMPLETED,
        "explode": Status.FAILED,
        "combine": Status.SKIPPED,
        "after_left": Status.COMPLETED,
    }
    assert run.status is Status.FAILED


def test_on_failure_stop_starts_no_more_steps() -> None:
    use_local(max_parallelism=2, on_failure="stop")
    with pytest.raises(RunFailedError):
        P.failing_branch()
    run = Client().get_run("failing_branch-1")
    assert run.steps["explode"].status is Status.FAILED
    assert run.steps["combine"].status is Status.SKIPPED
    assert run.steps["after_left"].status is Status.SKIPPED  # independent, but started after the failure
    assert not any(s.status is Status.RUNNING for s in run.steps.values())


def test_on_failure_cancel_kills_running_steps() -> None:
    use_local(max_parallelism=3, on_failure="cancel")

    started = time.monotonic()
    with pytest.raises(RunFailedError):
        P.failing_branch_with_naps()
    assert time.monotonic() - started < 20  # the 30 s nap was cancelled
    run = Client().get_run("failing_branch_with_naps-1")
    assert run.steps["explode"].status is Status.FAILED
    slow = run.steps["slow"]
    assert slow.status is Status.FAILED and "cancelled: step explode failed" in (slow.error or "")
    assert run.status is Status.FAILED


def test_cancel_needs_worker_processes() -> None:
    with pytest.raises(ConfigError, match="on_failure=cancel needs worker processes"):
        use_local(max_parallelism=2, workers="threads", on_failure="cancel")


INTERRUPTED_SCRIPT = """
import sys

from pipeledger.stack.flavor import ComponentType
from pipeledger.stack.manager import StackManager
from tests import parallel_pipelines as P

if __name__ == "__main__":
    manager = StackManager()
    flavor, values = sys.argv[1], dict(arg.split("=", 1) for arg in sys.argv[2:])
    manager.register_component(ComponentType.ORCHESTRATOR, "o", flavor, values)
    manager.register_stack("o", "o", "default", "default")
    manager.set_active_stack("o")
    P.naps(width=2, seconds=60)
"""


@pytest.mark.parametrize(
    "orchestrator", [["local", "max_parallelism=2"], ["dask", "n_workers=2"]], ids=["local-parallel", "dask"]
)
def test_ctrl_c_stops_the_steps_and_records_them_failed(orchestrator: list[str], tmp_path: Path, home: Path) -> None:
    if orchestrator[0] == "dask":
        pytest.importorskip("distributed")
    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED_SCRIPT)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root / 'src'}{os.pathsep}{root}"}
    process = subprocess.Popen(
        [sys.executable, str(script), *orchestrator],
        env=env,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until both naps are recorded running
            runs = Client().list_runs() if (home / "metadata.db").exists() else []
            if runs and sum(s.status is Status.RUNNING for s in Client().get_run(runs[0].id).steps.values()) == 2:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the naps did not start")
        started = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole process group
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode != 0
    assert time.monotonic() - started < 30
    assert b"KeyboardInterrupt" in output
    run = Client().get_run("naps-1")
    assert run.status is Status.FAILED
    statuses = {name: step.status for name, step in run.steps.items()}
    assert statuses["nap_0"] is Status.FAILED and statuses["nap_1"] is Status.FAILED
    assert "gather" not in statuses or statuses["gather"] is not Status.RUNNING
    assert "interrupted" in (run.steps["nap_0"].error or "")
    time.sleep(1)  # nothing of the run is left running (zombies aside: a container's init may not reap them)
    listed = subprocess.run(["ps", "-o", "stat=,args=", "-g", str(process.pid)], capture_output=True, text=True)
    assert [line for line in listed.stdout.splitlines() if not line.strip().startswith("Z")] == []


def test_a_worker_process_killed_during_a_step_fails_that_step_clearly() -> None:
    use_local(max_parallelism=2)
    with pytest.raises(RunFailedError, match=r"the worker process running step '\w+' was lost \(it, or another"):
        P.killed_among_others()
    run = Client().get_run("killed_among_others-1")
    assert run.status is Status.FAILED
    assert run.steps["kill_worker_always"].status is Status.FAILED
    assert "BrokenProcessPool" in (run.steps["kill_worker_always"].error or "")
    # A dead worker process breaks the pool: a step running beside it then may fail too; the
    # steps submitted after run in a new pool.
    assert run.steps["nap_2"].status is Status.COMPLETED and run.steps["nap_3"].status is Status.COMPLETED
    assert not any(s.status is Status.RUNNING for s in run.steps.values())

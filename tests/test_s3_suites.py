"""Tests of other suites run again with the ``s3`` artifact store (moto's server, tests/s3.py):
the quickstart as a script and its rerun from the cache, caching, lineage and OpenLineage, run
deletion and ``gc``, and a run killed while a step writes its output.

The imported test functions are collected here too and run with this module's fixtures: the
autouse ``s3_artifacts`` makes the active stack's artifact store an ``s3`` store on a new
bucket, and ``backend`` is the default SQLite metadata store (their own modules run them on
every database backend with the local store).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeledger import Client, Status
from pipeledger.artifacts.files import MANIFEST
from pipeledger.maintenance import find_orphans
from pipeledger.stack.registry import get_stack
from tests.s3 import MotoS3, register_s3_stack
from tests.test_caching import (  # noqa: F401  (collected here, with this module's fixtures)
    code,
    test_changed_upstream_output_invalidates_downstream_but_not_further_upstream,
    test_changing_a_step_body_invalidates_only_that_step_and_what_its_output_changes,
    test_first_run_misses_and_unchanged_or_reformatted_code_hits,
    test_new_materializer_version_invalidates_the_step_producing_that_type,
    test_recomputed_upstream_with_identical_content_lets_downstream_hit,
    test_refresh_all_recomputes_and_becomes_the_cache_entry,
)
from tests.test_concurrency import REPO, python_env
from tests.test_crash import INTERVAL, TIMEOUT, WORKER, crashy, invoke, wait_for
from tests.test_deletion import (  # noqa: F401
    test_a_dry_run_lists_what_only_the_runs_it_deletes_together_use,
    test_delete_run_keeps_what_other_runs_use,
    test_run_delete_command_reports_kept_artifacts,
)
from tests.test_examples import test_quickstart_as_a_script_reruns_from_the_cache  # noqa: F401
from tests.test_lineage import (  # noqa: F401
    test_chain_through_cached_steps_leads_to_the_true_producers,
    test_diamond_upstream_downstream_and_both,
    test_openlineage_events_of_a_completed_run,
    test_openlineage_of_a_lineage_graph_across_runs,
)

pytestmark = pytest.mark.filterwarnings("ignore::pipeledger.PipeledgerWarning")


@pytest.fixture(autouse=True)
def s3_artifacts(home: Path, s3_server: MotoS3, monkeypatch: pytest.MonkeyPatch) -> str:
    """The active stack stores artifacts in a new bucket (``s3`` flavor); its root."""
    return register_s3_stack(monkeypatch, s3_server.endpoint, s3_server.new_bucket())


@pytest.fixture
def backend() -> str:
    """The default SQLite metadata store (the imported tests take a ``backend``)."""
    return "sqlite"


def test_artifacts_of_these_tests_are_in_the_bucket(s3_artifacts: str) -> None:
    """The fixture works: what runs here writes to S3."""
    from tests import pipelines as P

    run = P.training()
    assert run.steps["train"].outputs["model"].uri.startswith(s3_artifacts + "/")


def test_a_run_killed_while_writing_leaves_nothing_half_visible_and_reruns(
    s3_artifacts: str, s3_server: MotoS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tests/test_crash.py's scenario on S3: the second step's materializer is blocked half-way
    when the process is killed; the bucket holds no trace of that output, the store checks
    clean, the run reads crashed, and a rerun reuses the first step and completes."""
    monkeypatch.setenv("PIPELEDGER_HEARTBEAT_INTERVAL", INTERVAL)
    monkeypatch.setenv("PIPELEDGER_HEARTBEAT_TIMEOUT", TIMEOUT)
    release, saving = tmp_path / "release", tmp_path / "saving"
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(release), str(saving)],
        cwd=REPO, env=python_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: saving.exists() or proc.poll() is not None, "the second step to save its output")
        assert proc.poll() is None, proc.communicate()[1]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()

    client = Client()
    (run,) = client.list_runs(pipeline="crashy")
    assert {s.name: s.status for s in client.store.list_step_runs(run.id)} == {
        "prepare": Status.COMPLETED,
        "slow_total": Status.RUNNING,
    }
    stored = s3_server.filesystem().find(s3_artifacts.removeprefix("s3://"))
    assert not [o for o in stored if "/slow_total-" in o]  # nothing of the interrupted output
    artifact_dirs = {o.rsplit("/", 1)[0] for o in stored if "/output/" in o}  # prepare's output
    assert artifact_dirs and all(f"{d}/{MANIFEST}" in stored for d in artifact_dirs)
    monkeypatch.setenv("PIPELEDGER_HEARTBEAT_TIMEOUT", "600")
    status, out, err = invoke("metadata-store", "check", "--deep")
    assert (status, err) == (0, ""), out + err
    monkeypatch.setenv("PIPELEDGER_HEARTBEAT_TIMEOUT", TIMEOUT)
    wait_for(lambda: client.get_run(run.id).status is Status.CRASHED, "the run to read crashed", timeout=10)
    status, out, _ = invoke("run", "list")
    assert status == 0 and "crashed" in out
    assert find_orphans(client.store, get_stack().artifact_store, grace=0).paths == []

    release.touch()
    rerun = crashy(release=str(release), saving=str(saving))
    assert {n: s.status for n, s in rerun.steps.items()} == {
        "prepare": Status.CACHED,
        "slow_total": Status.COMPLETED,
        "report": Status.COMPLETED,
    }
    assert rerun.steps["report"].output.read() == "total=6"
    status, out, err = invoke("metadata-store", "check", "--deep")
    assert (status, err) == (0, ""), out + err

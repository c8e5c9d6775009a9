"""Concurrent writers: several processes run pipelines against ONE store at the same time.

Every worker is a separate Python process (``subprocess``) with the same ``$PIPELEDGER_HOME``,
whose active stack records into one SQLite file, MariaDB database or PostgreSQL database.
The workers wait at a barrier and then all open the (fresh) store and run at once, so the
schema creation, run numbering, cache look-ups and every write race each other. Afterwards
every run and step run is recorded exactly once, run names are unique, every artifact is
readable, the store passes its integrity check, and no worker saw an error.

Janitors run beside writers too: writers whose steps are cache hits of earlier runs while
``gc --keep-last`` (retention and deletion, twice at once) and ``run delete`` (the command)
delete those runs. No janitor aborts, no run fails (a hit whose original is deleted is
computed again), every run is deleted at most once, and what is left reads back and passes
``metadata-store check --deep``.

Size: 4 processes x 5 runs x 3 steps; 8 x 25 x 5 with ``PIPELEDGER_STRESS=1``. Janitors:
3 writers x 5 runs x 3 steps beside 3 janitors; 8 x 25 x 5 beside 3 with ``PIPELEDGER_STRESS=1``.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Table, func, select

from pipeledger import Client, Status, pipeline, step
from pipeledger.artifacts.materializers import default_registry
from pipeledger.artifacts.store import read_artifact
from pipeledger.cli.main import cli
from pipeledger.maintenance import check_store
from pipeledger.metadata_store.flavors.sqlite import SqliteMetadataStoreConfig, open_sqlite_store
from pipeledger.metadata_store.sql import SqlMetadataStore
from pipeledger.metadata_store.sql.migrate import current_revision
from pipeledger.metadata_store.sql.schema import (
    SCHEMA_REVISION,
    artifacts,
    pipeline_runs,
    projects,
    step_runs,
    store_identity,
)
from pipeledger.stack.registry import close_stacks, get_stack
from tests.servers import enabled_backends, rest_enabled, scratch_database, server_config

pytestmark = pytest.mark.stress

REPO = Path(__file__).resolve().parents[1]
STRESS = os.environ.get("PIPELEDGER_STRESS") == "1"
PROCESSES, RUNS, STEPS = (8, 25, 5) if STRESS else (4, 5, 3)
WRITERS, WRITER_RUNS, WRITER_STEPS = (8, 25, 5) if STRESS else (3, 5, 3)  # beside the janitors
VARIANTS = 2  # runs of one variant compute the same: each step a cache hit of an earlier run
KEEP_LAST = 2


# --- the pipeline the workers run -----------------------------------------------------------


@step
def shared_config() -> dict:
    """The same in every run: computed once (or a few times, racing), then cached."""
    return {"scale": 2}


@step
def seed(config: dict, worker: int = 0, run: int = 0) -> dict:
    return {"worker": worker, "run": run, "trail": [config["scale"]]}


@step
def extend(data: dict, index: int = 0) -> dict:
    return {**data, "trail": [*data["trail"], index]}


@pipeline(name="concurrent")
def chain(worker: int = 0, run: int = 0, steps: int = 3):
    """``steps`` steps: shared_config -> seed -> extend_2 -> ... -> extend_<steps-1>."""
    data = seed(shared_config(), worker=worker, run=run)
    for index in range(2, steps):
        data = extend(data, index=index, id=f"extend_{index}")


@pipeline(name="reused")
def reused(variant: int = 0, steps: int = 3):
    """The chain with the same parameters in every run of a ``variant``: after its first run,
    every step is a cache hit, of a run the janitors may be deleting."""
    data = seed(shared_config(), worker=variant)
    for index in range(2, steps):
        data = extend(data, index=index, id=f"extend_{index}")


def step_names(steps: int) -> list[str]:
    return ["shared_config", "seed", *(f"extend_{i}" for i in range(2, steps))]


# --- helpers shared with the other reliability tests ------------------------------------------


@contextmanager
def use_backend(backend: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make the active stack of ``$PIPELEDGER_HOME`` record into a fresh, empty store of ``backend``:
    the default SQLite file, or a scratch database on the server registered as the ``mysql`` /
    ``postgresql`` component ``shared`` of the active stack ``shared`` (through the CLI)."""
    if backend == "sqlite":
        yield
        return
    with scratch_database(backend) as url:
        if url.password:
            monkeypatch.setenv("PIPELEDGER_TEST_DB_PASSWORD", url.password)
        values = server_config(backend, url)
        runner = CliRunner()
        options = [f"--{k}={v}" for k, v in values.items()]
        result = runner.invoke(cli, ["metadata-store", "register", "shared", f"--flavor={backend}", *options])
        assert result.exit_code == 0, result.output
        result = runner.invoke(cli, ["stack", "register", "shared", "-m", "shared", "--set"])
        assert result.exit_code == 0, result.output
        try:
            yield
        finally:
            close_stacks()  # no connection of this process may hold the database being dropped


def python_env(**extra: str) -> dict[str, str]:
    """The environment of a worker process: this one's (``$PIPELEDGER_HOME`` included) with the
    repository on ``sys.path`` so that it imports ``tests.*``."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


_WARNING = re.compile(r"^.*:\d+: \w*Warning: ")


def errors_in(stderr: str) -> list[str]:
    """The lines of ``stderr`` that are not Python warnings (a warning's header line and the
    indented source line after it)."""
    errors: list[str] = []
    in_warning = False
    for line in stderr.splitlines():
        if _WARNING.match(line):
            in_warning = True
        elif in_warning and line.startswith((" ", "\t")):
            continue
        else:
            in_warning = False
            if line.strip():
                errors.append(line)
    return errors


def run_workers(code: str, args: Sequence[Sequence[str]], barrier: Path, *, timeout: float) -> None:
    """Start one ``python -c code`` per argument list; release them together once all are ready
    (each touches ``<barrier>/ready-<i>`` and waits for ``<barrier>/go``); assert that every one
    exited 0 with nothing but warnings on stderr."""
    barrier.mkdir(parents=True, exist_ok=True)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(barrier), str(i), *a],
            cwd=REPO,
            env=python_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, a in enumerate(args)
    ]
    try:
        deadline = time.monotonic() + timeout
        while len(list(barrier.glob("ready-*"))) < len(procs):
            crashed = [p for p in procs if p.poll() is not None]
            if crashed:
                break
            assert time.monotonic() < deadline, "workers did not get ready in time"
            time.sleep(0.02)
        (barrier / "go").touch()
        results = [p.communicate(timeout=max(1.0, deadline - time.monotonic())) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    failures = [
        f"worker {i} exited {p.returncode}:\n{err}"
        for i, (p, (_out, err)) in enumerate(zip(procs, results))
        if p.returncode != 0 or errors_in(err)
    ]
    assert not failures, "\n\n".join(failures)


BARRIER = """
import sys, time
from pathlib import Path
barrier, index = Path(sys.argv[1]), sys.argv[2]
def wait_for_the_others():
    (barrier / f"ready-{index}").touch()
    while not (barrier / "go").exists():
        time.sleep(0.005)
"""

RUN_PIPELINES = (
    BARRIER
    + """
from tests.test_concurrency import chain
wait_for_the_others()
runs, steps = int(sys.argv[3]), int(sys.argv[4])
for run in range(runs):
    chain(worker=int(index), run=run, steps=steps)
"""
)

WRITE_OR_COLLECT = (
    BARRIER
    + """
from tests.test_concurrency import collect, write
wait_for_the_others()
(write if sys.argv[3] == "write" else collect)(barrier, int(index), *sys.argv[4:])
"""
)


def write(barrier: Path, index: int, runs: str, steps: str) -> None:
    """A writer: ``runs`` runs of :func:`reused`; then it counts its cache hits and the hits whose
    original was deleted meanwhile (computed again) into ``<barrier>/writer-<index>.json``."""
    hits = recomputed = 0
    try:
        for run in range(int(runs)):
            view = reused(variant=(index + run) % VARIANTS, steps=int(steps))
            for step_view in view.steps.values():  # empty if a janitor deleted the run already
                hits += step_view.status is Status.CACHED
                recomputed += "was deleted while being reused" in step_view.config["cache"]["explanation"]
    finally:  # also when a run failed: the janitors stop once every writer is done
        (barrier / f"writer-{index}.json").write_text(json.dumps({"hits": hits, "recomputed": recomputed}))


def collect(barrier: Path, index: int, kind: str, writers: str) -> None:
    """A janitor, until every writer is done (then one more pass): ``gc --keep-last`` of the
    ``reused`` runs (the command: crash marking, retention, deletion and orphan removal, beside
    steps whose outputs are being moved into place), or ``run delete`` (the command) of a recent
    finished run, not one of the
    ``KEEP_LAST`` latest (so that some runs are left to check). Counts the runs it
    deleted and those another janitor took first into ``<barrier>/janitor-<index>.json``."""
    store = Client().store
    rng = random.Random(index)
    deleted = skipped = 0
    while True:
        last = len(list(barrier.glob("writer-*.json"))) >= int(writers)
        if kind == "gc":
            result = CliRunner().invoke(cli, ["gc", "--keep-last", str(KEEP_LAST), "--pipeline", "reused", "--yes"])
            # before a writer recorded the pipeline, there is nothing to collect yet
            assert result.exit_code == 0 or "no pipeline named 'reused'" in result.stderr, result.output
            deleted += result.stdout.count("Deleted run ")
            skipped += result.stdout.count("Skipped run ")
        else:
            recent = store.list_runs(pipeline="reused", offset=KEEP_LAST, limit=10)  # as gc, keep the latest
            finished = [r.name for r in recent if r.status is not Status.RUNNING]
            if finished:
                name = rng.choice(finished)
                result = CliRunner().invoke(cli, ["run", "delete", name, "--yes"])
                if result.exit_code == 0:
                    gone = "already deleted by another process" in result.stdout
                    deleted, skipped = deleted + (not gone), skipped + gone
                else:  # only a run a `gc` deleted before this command looked it up may be missing
                    assert f"no run named {name!r}" in result.stderr, result.output
                    skipped += 1
        if last:
            break
        time.sleep(0.02)
    (barrier / f"janitor-{index}.json").write_text(json.dumps({"deleted": deleted, "skipped": skipped}))


OPEN_STORE = (
    BARRIER
    + """
from pipeledger.metadata_store.flavors.sqlite import SqliteMetadataStoreConfig, open_sqlite_store
wait_for_the_others()
open_sqlite_store(SqliteMetadataStoreConfig(path=sys.argv[3])).close()
"""
)


OPEN_ACTIVE_STORE = (
    BARRIER
    + """
from pipeledger.stack.registry import get_stack
wait_for_the_others()
assert get_stack().metadata_store.list_pipelines() == []
"""
)


def count(store: SqlMetadataStore, table: Table) -> int:
    with store.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


# --- the tests --------------------------------------------------------------------------------


@pytest.fixture(params=enabled_backends())
def backend(request: pytest.FixtureRequest, home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with use_backend(request.param, monkeypatch):
        yield request.param


def test_concurrent_writers_record_every_run_exactly_once(backend: str, tmp_path: Path) -> None:
    run_workers(
        RUN_PIPELINES,
        [[str(RUNS), str(STEPS)]] * PROCESSES,
        tmp_path / "barrier",
        timeout=600 if STRESS else 180,
    )

    client = Client()
    store = client.store
    assert isinstance(store, SqlMetadataStore)
    runs = client.list_runs(pipeline="concurrent", limit=None)
    assert len(runs) == PROCESSES * RUNS
    assert count(store, pipeline_runs) == PROCESSES * RUNS
    assert [r.name for r in runs if r.status is not Status.COMPLETED] == []
    names = [r.name for r in runs]
    assert len(set(names)) == len(names)
    assert sorted(r.number for r in runs) == list(range(1, PROCESSES * RUNS + 1))
    assert {(r.parameters["worker"], r.parameters["run"]) for r in runs} == {
        (w, r) for w in range(PROCESSES) for r in range(RUNS)
    }

    computed = 0
    for run in runs:
        steps = run.steps
        assert list(steps) == step_names(STEPS), run.name
        assert all(s.status in (Status.COMPLETED, Status.CACHED) for s in steps.values()), run.name
        assert all(s.status is Status.COMPLETED for n, s in steps.items() if n != "shared_config"), run.name
        computed += sum(s.status is Status.COMPLETED for s in steps.values())
        final = steps[step_names(STEPS)[-1]].output.read()
        assert final == {
            "worker": run.parameters["worker"],
            "run": run.parameters["run"],
            "trail": [2, *range(2, STEPS)],
        }
        assert steps["shared_config"].output.read() == {"scale": 2}
    assert count(store, step_runs) == PROCESSES * RUNS * STEPS
    # shared_config: computed at least once, at most once per process (before it finds the cache)
    assert 1 <= computed - PROCESSES * RUNS * (STEPS - 1) <= PROCESSES

    # Every artifact recorded (one per computed step) has its files and reads back.
    assert count(store, artifacts) == computed
    registry = default_registry()
    for batch in store.iter_artifacts():
        for artifact in batch:
            assert read_artifact(artifact, registry) is not None

    report = check_store(store, deep=True)
    assert report.ok, report.problems
    assert report.artifacts_checked == computed


def test_janitors_beside_writers_lose_nothing(backend: str, tmp_path: Path) -> None:
    janitors = [["collect", "gc", str(WRITERS)], ["collect", "gc", str(WRITERS)], ["collect", "delete", str(WRITERS)]]
    barrier = tmp_path / "barrier"
    run_workers(
        WRITE_OR_COLLECT,
        [["write", str(WRITER_RUNS), str(WRITER_STEPS)]] * WRITERS + janitors,
        barrier,
        timeout=900 if STRESS else 180,
    )  # every writer and every janitor exited 0, without an error

    def totals(pattern: str) -> dict[str, int]:
        counts = [json.loads(p.read_text()) for p in barrier.glob(pattern)]
        return {key: sum(c[key] for c in counts) for key in counts[0]}

    writers, cleaned = totals("writer-*.json"), totals("janitor-*.json")
    print(f"writers: {writers}; janitors: {cleaned}")
    assert writers["hits"] > 0 and cleaned["deleted"] > 0  # the races were run

    client = Client()
    store = client.store
    assert isinstance(store, SqlMetadataStore)
    runs = client.list_runs(pipeline="reused", limit=None)
    assert len(runs) == KEEP_LAST  # the janitors' last passes ran after the last writer
    assert len(runs) + cleaned["deleted"] == WRITERS * WRITER_RUNS  # each run deleted once, or kept
    names = step_names(WRITER_STEPS)
    for run in runs:
        assert run.status is Status.COMPLETED, run.name
        assert list(run.steps) == names, run.name
        assert all(s.status in (Status.COMPLETED, Status.CACHED) for s in run.steps.values()), run.name
        variant = run.parameters["variant"]
        expected = {"worker": variant, "run": 0, "trail": [2, *range(2, WRITER_STEPS)]}
        assert run.steps[names[-1]].output.read() == expected, run.name
        assert run.steps["shared_config"].output.read() == {"scale": 2}, run.name

    registry = default_registry()
    for batch in store.iter_artifacts():
        for artifact in batch:
            assert read_artifact(artifact, registry) is not None
    report = check_store(store, deep=True)
    assert report.ok, report.problems


def test_many_processes_open_a_fresh_sqlite_store_at_once(tmp_path: Path) -> None:
    """The schema is created once; the other processes wait for it instead of failing."""
    path = tmp_path / "fresh.db"
    run_workers(OPEN_STORE, [[str(path)]] * (PROCESSES + 2), tmp_path / "barrier", timeout=120)
    store = open_sqlite_store(SqliteMetadataStoreConfig(path=str(path)))
    try:
        assert current_revision(store.db) == SCHEMA_REVISION
        assert check_store(store).ok
    finally:
        store.close()


def test_many_processes_create_a_fresh_store_once(backend: str, tmp_path: Path) -> None:
    """Processes opening the same empty database together (a new file, a new server database)
    create its schema once, under the schema lock: one identity, one ``default`` project."""
    run_workers(OPEN_ACTIVE_STORE, [[]] * (PROCESSES + 2), tmp_path / "barrier", timeout=120)
    store = get_stack().metadata_store
    assert isinstance(store, SqlMetadataStore)
    assert current_revision(store.db) == SCHEMA_REVISION
    assert count(store, store_identity) == 1 and count(store, projects) == 1
    assert check_store(store).ok


@pytest.mark.skipif(not rest_enabled(), reason="rest is not among PIPELEDGER_TEST_BACKENDS")
def test_concurrent_writers_through_the_server(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writers' test once through a real ``pipeledger server`` (in front of PostgreSQL when it
    is tested, else SQLite), artifacts included (``rest`` artifact store): every run and step run
    recorded once, numbers unique, every output read back through the server, the store clean."""
    from tests.rest_server import ServerProcess

    database = "postgresql" if "postgresql" in enabled_backends() else "sqlite"
    with ExitStack() as scratch:
        url = scratch.enter_context(scratch_database(database)) if database != "sqlite" else None
        (tmp_path / "server").mkdir()
        server = ServerProcess(database, tmp_path / "server", url).start()
        try:
            runner = CliRunner()
            for args in (
                ["metadata-store", "register", "team", "--flavor=rest", f"--url={server.url}"],
                ["artifact-store", "register", "team", "--flavor=rest", f"--url={server.url}"],
                ["stack", "register", "team", "-m", "team", "-a", "team", "--set"],
            ):
                result = runner.invoke(cli, args)
                assert result.exit_code == 0, result.output
            run_workers(RUN_PIPELINES, [[str(RUNS), str(STEPS)]] * PROCESSES, tmp_path / "barrier", timeout=600)
            client = Client()
            runs = client.list_runs(pipeline="concurrent", limit=None)
            assert len(runs) == PROCESSES * RUNS
            assert sorted(r.number for r in runs) == list(range(1, PROCESSES * RUNS + 1))
            assert [r.name for r in runs if r.status is not Status.COMPLETED] == []
            for run in runs:
                steps = run.steps
                assert list(steps) == step_names(STEPS), run.name
                final = steps[step_names(STEPS)[-1]].output.read()
                assert final["worker"] == run.parameters["worker"] and final["run"] == run.parameters["run"]
            assert sum(len(client.store.list_step_runs(r.id)) for r in runs) == PROCESSES * RUNS * STEPS
            report = check_store(client.store, deep=True)
            assert report.ok, report.problems
        finally:
            close_stacks()
            server.stop()

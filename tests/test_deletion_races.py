"""Deletion racing running pipelines and other janitors, made deterministic.

Each test stops one side at the moment the race is lost (a SQLAlchemy ``before_cursor_execute``
hook on a real database, or a pipeline's cache look-up, or a confirmation prompt) and lets the
other side run there: a cache hit whose original is deleted meanwhile recomputes the step; a
deletion and a concurrent cache hit on its step runs never break a foreign key (whichever takes
the rows first wins, the other waits); retention selection does not shift while runs are added;
a ``gc`` or ``run delete`` whose run another process deleted skips it. On SQLite, MariaDB and
PostgreSQL (the locking differs: SQLite's write lock, PostgreSQL's READ COMMITTED, MariaDB's
REPEATABLE READ).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from pipeledger import Client, Status
from pipeledger.exceptions import CacheEntryGoneError
from pipeledger.maintenance import delete_run, runs_to_retire
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.metadata_store.sql import SqlMetadataStore
from pipeledger.metadata_store.sql.schema import pipeline_runs
from pipeledger.models import CacheHit, RunCreate, StepRunCreate, utcnow
from pipeledger.stack.home import pipeledger_home
from pipeledger.stack.registry import get_stack
from pipeledger.stack.stack import build_stack
from tests import pipelines as P
from tests.servers import enabled_backends
from tests.test_concurrency import python_env, use_backend
from tests.test_deletion import invoke, set_start, sql_store

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(params=enabled_backends())
def backend(request: pytest.FixtureRequest, home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with use_backend(request.param, monkeypatch):
        yield request.param


def second_store() -> SqlMetadataStore:
    """Another connection pool to the active stack's store, as another process would have."""
    store = build_stack(get_stack().name, pipeledger_home()).metadata_store
    assert isinstance(store, SqlMetadataStore)
    return store


def pause_before(store: SqlMetadataStore, prefix: str, other_side: Callable[[], None]) -> dict[str, Any]:
    """Before ``store`` first sends a statement starting with ``prefix``, start ``other_side`` in a
    thread and give it 3 s; what happened is in the returned dict (``blocked``: it was still waiting
    then, ``error``: what it raised, ``thread``)."""
    state: dict[str, Any] = {"blocked": None, "error": None}

    def run_other_side() -> None:
        try:
            other_side()
        except Exception as exc:
            state["error"] = exc

    def hook(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if state["blocked"] is None and statement.lstrip().upper().startswith(prefix):
            thread = threading.Thread(target=run_other_side)
            state["thread"] = thread
            thread.start()
            thread.join(3.0)
            state["blocked"] = thread.is_alive()

    event.listen(store.db.engine, "before_cursor_execute", hook)
    return state


def cached_train(store: MetadataStore, run_id: str, source: Any) -> Callable[[], None]:
    """Record a cache hit of step ``train`` in run ``run_id`` reusing the step run ``source``."""
    outputs = {name: artifact.id for name, artifact in source.outputs.items()}
    create = StepRunCreate(run_id=run_id, name="train", cache_key="f" * 64)

    def record() -> None:
        store.record_cached_step(create, cached_from_id=source.id, outputs=outputs)

    return record


# --- (a) the cache hit's original is deleted between the look-up and the record ----------------


def test_cache_hit_whose_original_is_deleted_meanwhile_recomputes(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = P.training(lr=0.4)
    original = SqlMetadataStore.find_cached_step
    deleted: list[str] = []

    def found_then_deleted(self: SqlMetadataStore, key: str, **kw: Any) -> CacheHit | None:
        hit = original(self, key, **kw)
        if hit is not None and not deleted:  # another process deletes the run's records after the look-up
            deleted.append(second_store().delete_run(hit.step_run.run_id).run.name)
        return hit

    monkeypatch.setattr(SqlMetadataStore, "find_cached_step", found_then_deleted)
    second = P.training(lr=0.4)  # every step would be a cache hit of `first`

    assert deleted == [first.name] and second.status is Status.COMPLETED
    load = second.steps["load"]
    assert load.status is Status.COMPLETED  # computed again, not a failed run
    explanation = load.config["cache"]["explanation"]
    assert explanation == (
        f"cache miss: the cached result of step `load` of run `{first.name}` was deleted while being reused"
    )
    assert all(s.status is Status.COMPLETED for s in second.steps.values())
    assert second.steps["train"].outputs["model"].read() == {"w": 0.4, "n": 4}
    assert sql_store().integrity_problems() == []


def test_explaining_a_miss_whose_earlier_entry_is_deleted_meanwhile(monkeypatch: pytest.MonkeyPatch) -> None:
    first = P.training(lr=0.6)
    P.training(lr=0.6)  # cached: its steps point to `first`'s
    Client().store.invalidate_cache(at=utcnow())  # the next run misses, and explains why
    original = SqlMetadataStore.latest_step_run
    deleted: list[str] = []

    def found_then_deleted(self: SqlMetadataStore, *args: Any, **kw: Any) -> Any:
        previous = original(self, *args, **kw)
        if previous is not None and previous.cached_from_id and not deleted:
            deleted.append(delete_run(second_store(), first.id).run.name)
        return previous

    monkeypatch.setattr(SqlMetadataStore, "latest_step_run", found_then_deleted)
    third = P.training(lr=0.6)
    assert deleted == [first.name]
    assert third.status is Status.COMPLETED and third.steps["load"].status is Status.COMPLETED


# --- (b) a deletion and a concurrent cache hit on its step runs ----------------------------------


def test_cache_hit_recorded_during_a_deletion_waits_and_is_refused(backend: str) -> None:
    source_run = P.training(lr=0.7)
    source = source_run.steps["train"]
    janitor, writer = sql_store(), second_store()
    reusing = writer.create_run(RunCreate(pipeline_name="training", name="reusing"))
    # The janitor holds its locks and is about to delete: the writer records a hit on its step run.
    state = pause_before(janitor, "DELETE", cached_train(writer, reusing.id, source))

    deletion = janitor.delete_run(source_run.id)
    state["thread"].join(60)

    assert deletion.run.id == source_run.id
    assert state["blocked"] is True  # the cache hit waited for the deletion...
    assert isinstance(state["error"], CacheEntryGoneError)  # ...then found its original gone
    assert writer.list_step_runs(reusing.id) == []  # nothing half-recorded
    assert janitor.integrity_problems() == []


def test_deletion_during_a_cache_hit_waits_and_keeps_its_artifacts(backend: str) -> None:
    source_run = P.training(lr=0.8)
    source = source_run.steps["train"]
    janitor, writer = sql_store(), second_store()
    reusing = writer.create_run(RunCreate(pipeline_name="training", name="reusing"))
    deletions: list[Any] = []
    # The writer has inserted its cache hit (not committed yet): the janitor deletes the source run.
    state = pause_before(writer, "INSERT INTO METADATA", lambda: deletions.append(janitor.delete_run(source_run.id)))

    cached_train(writer, reusing.id, source)()
    state["thread"].join(60)

    assert state["error"] is None, state["error"]
    assert state["blocked"] is True  # the deletion waited for the cache hit to commit...
    (deletion,) = deletions
    kept = {a.id for a in deletion.kept_artifacts}
    assert kept == {a.id for a in source.outputs.values()}  # ...and kept what it reuses
    assert not kept & {a.id for a in deletion.deleted_artifacts}
    (step,) = writer.list_step_runs(reusing.id)
    assert step.status is Status.CACHED and step.cached_from_id is None  # its original is gone
    for artifact in source.outputs.values():
        assert Path(artifact.uri).exists()
    writer.finish_run(reusing.id, Status.COMPLETED, end_time=utcnow())
    assert janitor.integrity_problems() == []


# --- (c) retention selection and overlapping janitors ---------------------------------------------


def test_retention_selects_each_run_once_while_runs_are_added(monkeypatch: pytest.MonkeyPatch) -> None:
    store = sql_store()
    for _ in range(520):
        run = store.create_run(RunCreate(pipeline_name="busy", name="busy-{n}"))
        store.finish_run(run.id, Status.COMPLETED, end_time=utcnow())
    expected = {r.id for r in store.list_runs(pipeline="busy")[2:]}
    original = SqlMetadataStore.list_runs

    def while_another_process_adds_runs(self: SqlMetadataStore, **kw: Any) -> Any:
        found = original(self, **kw)
        added = self.create_run(RunCreate(pipeline_name="busy", name="busy-{n}"))
        self.finish_run(added.id, Status.COMPLETED, end_time=utcnow())
        return found

    monkeypatch.setattr(SqlMetadataStore, "list_runs", while_another_process_adds_runs)
    selected = [r.id for r in runs_to_retire(store, keep_last=2)]
    assert len(selected) == len(set(selected))  # a run selected twice made `gc` abort
    assert set(selected) == expected


def _start_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", "from pipeledger.cli.main import main; main()", *args],
        cwd=REPO,
        env=python_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_prompt(process: subprocess.Popen[str], prompt: str) -> str:
    assert process.stdout is not None
    seen = ""
    while prompt not in seen:
        char = process.stdout.read(1)
        assert char, f"no prompt {prompt!r}; output: {seen}{process.communicate()}"
        seen += char
    return seen


def test_gc_and_run_delete_skip_runs_another_process_deleted(backend: str) -> None:
    names = [P.training(lr=lr).name for lr in (0.1, 0.2, 0.3)]

    gc = _start_cli("gc", "--keep-last", "0")  # selects the three, then asks
    _wait_for_prompt(gc, "Delete 3 runs")
    Client().delete_run(names[1])  # another janitor takes one meanwhile
    out, err = gc.communicate("y\n", timeout=120)
    assert (gc.returncode, err) == (0, ""), out + err
    assert f"Skipped run {names[1]}: already deleted by another process." in out
    assert f"Deleted run {names[0]}" in out and f"Deleted run {names[2]}" in out
    assert "Removed 0 orphaned paths." in out  # it went on to the end
    assert Client().list_runs() == []

    name = P.training(lr=0.5).name
    delete = _start_cli("run", "delete", name)
    _wait_for_prompt(delete, f"Delete run {name}")
    Client().delete_run(name)
    out, err = delete.communicate("y\n", timeout=120)
    assert (delete.returncode, err) == (0, ""), out + err
    assert f"Run {name} was already deleted by another process." in out


# --- gc checks its arguments first ---------------------------------------------------------------


def test_gc_checks_every_argument_before_changing_anything() -> None:
    store = sql_store()
    stale = store.create_run(RunCreate(pipeline_name="training", name="stale"))
    set_start(["stale"], days_ago=1)  # no heartbeat for a day: gc would mark it crashed

    for args in (["--older-than", "30x"], ["--keep-last", "-1"], ["--older-than", "1d", "--pipeline", "nope"]):
        code, _, err = invoke("gc", *args, "--yes")
        assert code != 0 and "Traceback" not in err, args
        with store.db.read() as conn:
            status = conn.execute(select(pipeline_runs.c.status).where(pipeline_runs.c.id == stale.id)).scalar()
        assert status == Status.RUNNING.value, args  # nothing was marked crashed
    code, _, err = invoke("gc", "--older-than", "30x")
    assert code == 1 and err.strip() == "Error: invalid age '30x': use a number and a unit, e.g. 30d, 12h, 45m, 2w"

    code, out, err = invoke("gc", "--older-than", "30d", "--yes")  # valid: now it marks the crash
    assert (code, err) == (0, ""), out + err
    assert "Marked 1 run without heartbeat as crashed." in out

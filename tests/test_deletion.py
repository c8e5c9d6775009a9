"""Deleting runs, retention (``gc``), orphaned files and ``metadata-store check``.

Deleting a run removes its records and the files of the artifacts no other run uses; an
artifact another run uses (as an input, or as the output of a cached step) survives with its
files, the command says so, and the other run still reads it and its lineage. ``gc`` selects
runs by age, count and pipeline; ``--dry-run`` changes nothing (files and records compared);
orphaned artifact directories are collected; without ``--yes`` and without a terminal nothing
is deleted. Run deletion and retention run on SQLite, MariaDB and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from pipeledger import Client, NotFoundError, RunFailedError, Status
from pipeledger.cli.main import cli
from pipeledger.maintenance import runs_to_retire
from pipeledger.metadata_store.sql import SqlMetadataStore
from pipeledger.metadata_store.sql.schema import metadata, pipeline_runs
from pipeledger.models import RunCreate, utcnow
from pipeledger.stack.registry import get_stack
from tests import pipelines as P
from tests.servers import enabled_backends
from tests.test_concurrency import use_backend

FAKE_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture(params=enabled_backends())
def backend(request: pytest.FixtureRequest, home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with use_backend(request.param, monkeypatch):
        yield request.param


def invoke(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def sql_store() -> SqlMetadataStore:
    store = Client().store
    assert isinstance(store, SqlMetadataStore)
    return store


def present(uri: str) -> bool:
    """Whether anything is at ``uri`` (a file, or a directory with files) in the active stack's
    artifact store, local or remote (tests/test_s3_suites.py runs some tests here on ``s3``)."""
    store = get_stack().artifact_store
    return bool(store.fs.exists(store.path_of(uri)))


def artifacts_root() -> Path:
    return Path(get_stack().artifact_store.root)


def records() -> dict[str, list[tuple[str, ...]]]:
    """Every row of every table, as sorted tuples of strings."""
    store = sql_store()
    with store.db.read() as conn:
        return {
            table.name: sorted(tuple(str(v) for v in row) for row in conn.execute(select(table)))
            for table in metadata.sorted_tables
        }


def files(root: Path) -> dict[str, str]:
    """Every path under ``root`` (the SQLite database and lock files aside) with its content hash."""
    return {
        str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if not p.name.startswith("metadata.db") and not p.name.endswith(".lock")
    }


def set_start(names: list[str], days_ago: float) -> None:
    """Pretend these runs started ``days_ago`` days ago."""
    moment = utcnow() - timedelta(days=days_ago)
    with sql_store().db.transaction() as conn:
        conn.execute(
            update(pipeline_runs).where(pipeline_runs.c.name.in_(names)).values(start_time=moment, heartbeat_at=moment)
        )


def age(path: Path, hours: float = 2) -> Path:
    """Pretend ``path`` and everything in it were last modified ``hours`` ago (past gc's grace period)."""
    moment = time.time() - hours * 3600
    for p in [path, *path.rglob("*")]:
        os.utime(p, (moment, moment))
    return path


def owned_orphan(name: str = "o") -> Path:
    """An unrecorded artifact directory where this metadata store keeps its files, untouched for hours."""
    owner = sql_store().store_id()
    assert owner is not None
    orphan = artifacts_root() / "stores" / owner / "p" / f"r-{FAKE_ID}" / f"s-{FAKE_ID}" / name / FAKE_ID
    orphan.mkdir(parents=True)
    (orphan / "data.json").write_text("{}")
    return age(orphan)


def listed(out: str, label: str) -> list[str]:
    """The paths of the lines ``<label>: <path>`` of a command's output."""
    return [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith(label + ": ")]


def run_names(store: SqlMetadataStore) -> set[str]:
    return {r.name for r in store.list_runs()}


def check_passes() -> None:
    code, out, err = invoke("metadata-store", "check", "--deep")
    assert (code, err) == (0, ""), out + err
    assert "no problem found" in out


# --- deleting runs ------------------------------------------------------------------------------


def test_delete_run_keeps_what_other_runs_use(backend: str) -> None:
    first = P.training(lr=0.1)  # computes load, train, evaluate
    second = P.training(lr=0.2)  # load cached from `first`; train reads that artifact as its input
    data = first.steps["load"].output
    model = first.steps["train"].outputs["model"]
    accuracy = first.steps["train"].outputs["accuracy"]
    assert second.steps["load"].is_cached and second.steps["train"].inputs["data"].id == data.id
    logs = [s.logs_uri for s in sql_store().list_step_runs(first.id) if s.logs_uri]
    assert len(logs) == 1 and all(present(p) for p in logs)  # only `load` prints (silent steps have no file)

    deletion = Client().delete_run(first.name)

    assert deletion.run.id == first.id
    assert sorted(a.id for a in deletion.deleted_artifacts) == sorted([model.id, accuracy.id])
    assert [a.id for a in deletion.kept_artifacts] == [data.id]
    assert not present(model.uri) and not present(accuracy.uri)
    assert present(data.uri)
    assert not any(present(p) for p in logs)
    client = Client()
    with pytest.raises(NotFoundError):
        client.get_run(first.name)
    with pytest.raises(NotFoundError):
        client.get_artifact(model.id)

    # The other run still reads everything it used, and its lineage still reaches the kept data.
    second = client.get_run(second.name)
    assert second.steps["load"].output.read() == {"x": [0, 1, 2, 3]}
    assert second.steps["train"].inputs["data"].read() == {"x": [0, 1, 2, 3]}
    assert second.steps["train"].outputs["model"].read() == {"w": 0.2, "n": 4}
    kept = client.get_artifact(data.id)
    assert kept.producer.id == second.steps["load"].id  # type: ignore[union-attr]  # the cached step that output it
    lineage = second.steps["train"].outputs["model"].lineage()
    assert {n.name for n in lineage.steps} == {"load", "train"}
    assert data.id in {n.id for n in lineage.artifacts}
    assert lineage.node(data.id).name == "load.output"
    downstream = kept.lineage(direction="downstream")
    assert {n.name for n in downstream.steps} >= {"train", "evaluate"}
    check_passes()

    # Once the last run using it is deleted, the artifact goes too.
    deletion = client.delete_run(second.name)
    assert data.id in {a.id for a in deletion.deleted_artifacts} and deletion.kept_artifacts == []
    assert not present(data.uri)
    check_passes()


def test_run_delete_command_reports_kept_artifacts() -> None:
    computed = P.training(lr=0.3, n_rows=5)
    cached = P.training(lr=0.3, n_rows=5)  # every step cached: its outputs are `computed`'s artifacts
    assert all(s.is_cached for s in cached.steps.values())
    outputs = {a.id: a.uri for s in computed.steps.values() for a in s.outputs.values()}
    assert len(outputs) == 3

    code, out, err = invoke("run", "delete", computed.name, "--yes")
    assert (code, err) == (0, ""), out + err
    assert f"Deleted run {computed.name} and 0 artifacts." in out
    assert out.count("still used by another run") == 3
    for artifact_id, uri in outputs.items():
        assert f"kept {artifact_id} ({uri}): still used by another run" in out
        assert present(uri)
    cached = Client().get_run(cached.name)
    assert cached.steps["train"].outputs["model"].read() == {"w": 0.3, "n": 5}
    assert cached.steps["load"].cached_from is None  # the step run it reused is gone
    lineage = cached.steps["evaluate"].lineage()
    assert set(outputs) & {n.id for n in lineage.artifacts}
    check_passes()

    code, out, err = invoke("run", "delete", cached.name, "--yes")
    assert (code, err) == (0, ""), out + err
    assert f"Deleted run {cached.name} and 3 artifacts." in out and "still used" not in out
    assert not any(present(uri) for uri in outputs.values())
    assert run_names(sql_store()) == set()
    check_passes()

    code, _, err = invoke("run", "delete", computed.name, "--yes")
    assert code == 1 and f"no run named {computed.name!r}" in err and len(err.strip().splitlines()) == 1


def test_nothing_is_deleted_without_yes_and_without_a_terminal() -> None:
    run = P.training()
    (home_files, before) = files(artifacts_root()), records()
    code, out, err = invoke("run", "delete", run.name)  # stdin is empty: the confirmation aborts
    assert code == 1 and "Delete run training-1 of pipeline training?" in out and "Aborted" in err
    code, out, err = invoke("gc", "--keep-last", "0")
    assert code == 1 and "Delete 1 run and 0 orphaned paths?" in out and "Aborted" in err
    code, out, err = invoke("run", "delete", run.name, input="n\n")
    assert code == 1 and "Aborted" in err
    assert (files(artifacts_root()), records()) == (home_files, before)
    code, out, _ = invoke("run", "delete", run.name, input="y\n")
    assert code == 0 and f"Deleted run {run.name}" in out


# --- retention ----------------------------------------------------------------------------------


def test_gc_selects_runs_by_age_count_and_pipeline(backend: str, home: Path) -> None:
    for lr in (0.1, 0.2, 0.3, 0.4):
        P.training(lr=lr)  # training-1 ... training-4 (load computed once, then cached)
    for _ in range(2):
        with pytest.raises(RunFailedError):
            P.failing()  # failing-1, failing-2
    set_start(["training-1", "training-2", "failing-1"], days_ago=40)
    store = sql_store()
    running = store.create_run(RunCreate(pipeline_name="training", name="still-running"))
    set_start(["still-running"], days_ago=50)
    store.heartbeat(running.id, utcnow())  # alive: never selected

    def selected(**policy: object) -> set[str]:
        return {r.name for r in runs_to_retire(store, **policy)}  # type: ignore[arg-type]

    assert selected(older_than=timedelta(days=30)) == {"training-1", "training-2", "failing-1"}
    assert selected(keep_last=1) == {"training-1", "training-2", "training-3", "failing-1"}
    assert selected(keep_last=1, older_than=timedelta(days=30)) == {"training-1", "training-2", "failing-1"}
    assert selected(keep_last=3, older_than=timedelta(days=30)) == {"training-1"}
    assert selected(keep_last=0, pipeline="failing") == {"failing-1", "failing-2"}
    assert selected(older_than=timedelta(days=30), pipeline="failing") == {"failing-1"}
    assert selected(older_than=timedelta(days=60)) == set()

    # An orphaned artifact directory, for the dry run to report.
    orphan = owned_orphan()
    before = (files(home), records())

    code, out, err = invoke("gc", "--older-than", "30d", "--dry-run")
    assert (code, err) == (0, ""), out + err
    for name in ("training-1", "training-2", "failing-1"):
        assert name in out
    for name in ("training-3", "training-4", "failing-2", "still-running"):
        assert name not in out
    assert listed(out, "orphaned") == [str(orphan)]
    paths = listed(out, "file of a deleted run")
    assert f"Dry run: 3 runs with {len(paths)} paths of their files, and 1 orphaned path" in out
    code, out, err = invoke("gc", "--keep-last", "3", "--pipeline", "training", "--dry-run")
    assert code == 0 and "Dry run: 1 run " in out and "training-1" in out and "training-2" not in out
    code, out, err = invoke("gc", "--keep-last", "1", "--older-than", "1w", "--dry-run", "--yes")
    assert code == 0 and "Dry run: 3 runs" in out
    code, dry, err = invoke("gc", "--older-than", "30d", "--keep-last", "1", "--dry-run")
    assert (code, err) == (0, ""), dry + err
    assert (files(home), records()) == before  # the dry runs changed nothing
    would_go = listed(dry, "file of a deleted run") + listed(dry, "orphaned")
    assert len(would_go) == len(set(would_go)) >= 6

    code, _, err = invoke("gc", "--older-than", "30 days")
    assert code == 1 and "invalid age '30 days'" in err and len(err.strip().splitlines()) == 1
    code, _, err = invoke("gc", "--pipeline", "nope", "--keep-last", "1")
    assert code == 1 and "no pipeline named 'nope'" in err and len(err.strip().splitlines()) == 1

    shared = Client().get_run("training-1").steps["load"].output  # cached by training-2 ... 4
    doomed = [Path(a.uri) for a in Client().get_run("training-2").steps["train"].outputs.values()]
    code, out, err = invoke("gc", "--older-than", "30d", "--keep-last", "1", "--yes")
    assert (code, err) == (0, ""), out + err
    assert "Removed 1 orphaned path." in out and not orphan.exists()
    assert f"kept {shared.id}" in out
    # The dry run listed every path that went (besides the directories they left empty), and each went.
    gone = [home / p for p in before[0] if not (home / p).exists()]
    listed_or_emptied = [
        p for p in gone if any(p == Path(w) or Path(w) in p.parents or p in Path(w).parents for w in would_go)
    ]
    assert gone and listed_or_emptied == gone
    assert not any(Path(w).exists() for w in would_go)
    assert run_names(store) == {"training-3", "training-4", "failing-2", "still-running"}
    assert Client().get_run("training-4").steps["load"].output.read() == {"x": [0, 1, 2, 3]}
    assert Client().get_run("training-3").steps["train"].outputs["model"].read() == {"w": 0.3, "n": 4}
    assert len(doomed) == 2 and not any(p.exists() for p in doomed)
    assert Path(shared.uri).exists()
    store.finish_run(running.id, Status.COMPLETED, end_time=utcnow())
    check_passes()


# --- orphans and checks (files only: the default SQLite store) ----------------------------------


def test_orphaned_artifact_directories_are_collected() -> None:
    run = P.training()
    root = artifacts_root()
    recorded = {Path(a.uri) for s in run.steps.values() for a in s.outputs.values()}
    orphan = owned_orphan()
    (orphan / "nested").mkdir()
    (orphan / "nested" / "data.bin").write_bytes(b"\0" * 10)
    age(orphan)
    young = owned_orphan("young").parent  # written a moment ago: in gc's grace period
    age(young, hours=0.5)
    not_an_artifact = orphan.parent / "notes"
    not_an_artifact.mkdir()
    deeper = orphan.parent / "x" / FAKE_ID.replace("0", "f")  # not where artifacts live
    deeper.mkdir(parents=True)
    legacy = root / "p" / "r" / "s" / "o" / FAKE_ID  # the old layout: no owner, never an orphan
    legacy.mkdir(parents=True)
    age(legacy)

    code, out, err = invoke("gc")  # no --yes, no terminal: aborted
    assert code == 1 and f"orphaned: {orphan}" in out and "Aborted" in err
    assert orphan.exists()

    code, out, err = invoke("gc", "--yes")
    assert (code, err) == (0, ""), out + err
    assert "Removed 1 orphaned path." in out
    assert not orphan.exists()
    assert not_an_artifact.exists() and deeper.exists() and legacy.exists() and young.exists()
    assert all(p.exists() for p in recorded)
    code, out, _ = invoke("gc", "--yes")
    assert code == 0 and "Nothing to collect." in out
    check_passes()


def test_check_reports_missing_and_changed_files() -> None:
    run = P.training()
    check_passes()
    model = Path(run.steps["train"].outputs["model"].uri)
    data = Path(run.steps["load"].output.uri)

    (model / "data.json").write_text('{"w": 0.99, "n": 4}')  # same shape, other content
    code, out, err = invoke("metadata-store", "check")
    assert (code, err) == (0, ""), out + err  # the files exist; only --deep re-hashes them
    code, out, err = invoke("metadata-store", "check", "--deep")
    assert code == 1
    assert (
        f"problem: 1 artifact whose content does not match the recorded hash (files changed or removed): {model}" in err
    )
    assert "Traceback" not in out + err

    for file in data.iterdir():
        file.unlink()
    data.rmdir()
    code, out, err = invoke("metadata-store", "check")
    assert code == 1
    assert err.strip() == f"problem: 1 artifact whose files are missing: {data}"
    code, out, err = invoke("metadata-store", "check", "--deep")
    assert code == 1 and len(err.strip().splitlines()) == 2


def test_a_dry_run_lists_what_only_the_runs_it_deletes_together_use() -> None:
    """training-2 reuses training-1's outputs (all cached): deleting both removes them, and the
    dry run must say so (each run alone keeps them: the other one uses them)."""
    P.training()
    P.training()
    produced = [a.uri for s in Client().get_run("training-1").steps.values() for a in s.outputs.values()]
    assert produced and all(present(p) for p in produced)

    code, dry, err = invoke("gc", "--keep-last", "0", "--dry-run")
    assert (code, err) == (0, ""), dry + err
    would_go = set(listed(dry, "file of a deleted run"))
    store = get_stack().artifact_store
    assert {store.path_of(p) for p in produced} <= {store.path_of(p) for p in would_go}

    code, out, err = invoke("gc", "--keep-last", "0", "--yes")
    assert (code, err) == (0, ""), out + err
    assert not any(present(p) for p in would_go)
    assert run_names(sql_store()) == set()
